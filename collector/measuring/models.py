"""Models: presets with random weights, or hub ids / local paths loaded offline.

Latency depends on shapes, not on weight values, so a preset built from a
model's published architecture config with random weights is a faithful
offline stand-in for it. A name that is not a preset is a local directory
or a Hugging Face hub id, read with ``local_files_only=True``: nothing is
ever downloaded.

``weights``:

``random``
    build from the config with seeded random weights;
``pretrained``
    load the real weights (refused before loading if none are available offline);
``auto``
    ``pretrained`` when available offline, else ``random``; the record's
    ``weights`` says which was used.

:func:`model_spec` resolves and validates a name without building the model
(it reads at most a ``config.json``); :func:`build_model` builds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, BloomConfig, GPT2Config, OPTConfig, PretrainedConfig
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from collector.measuring.devices import Backend, torch_dtype
from collector.shared.errors import ConfigError, UnknownModelError
from collector.shared.protocol import WEIGHTS

__all__ = [
    "PRESETS",
    "WEIGHTS",
    "LoadedModel",
    "ModelSpec",
    "PresetInfo",
    "build_model",
    "check_attn",
    "count_params",
    "model_spec",
    "preset_names",
    "presets",
]


_GPT2 = dict(vocab_size=50257, n_positions=1024, bos_token_id=50256, eos_token_id=50256)
_OPT = dict(vocab_size=50272, max_position_embeddings=2048, bos_token_id=2, eos_token_id=2, pad_token_id=1)


def _preset_table() -> dict[str, tuple[str | None, type[PretrainedConfig], dict[str, Any], str]]:
    # name -> (hub id of the published model, config class, published architecture, note)
    return {
        "tiny-gpt2": (
            None,
            GPT2Config,
            dict(n_layer=2, n_embd=64, n_head=4, n_positions=512, vocab_size=1024, bos_token_id=1023, eos_token_id=1023),
            "small GPT-2 for tests (random weights only)",
        ),
        "distilgpt2": ("distilbert/distilgpt2", GPT2Config, dict(_GPT2, n_layer=6, n_embd=768, n_head=12), ""),
        "gpt2": ("openai-community/gpt2", GPT2Config, dict(_GPT2, n_layer=12, n_embd=768, n_head=12), ""),
        "gpt2-medium": ("openai-community/gpt2-medium", GPT2Config, dict(_GPT2, n_layer=24, n_embd=1024, n_head=16), ""),
        "gpt2-large": ("openai-community/gpt2-large", GPT2Config, dict(_GPT2, n_layer=36, n_embd=1280, n_head=20), ""),
        "bloom-560m": (
            "bigscience/bloom-560m",
            BloomConfig,
            dict(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16, seq_length=2048,
                 bos_token_id=1, eos_token_id=2, pad_token_id=3),
            "ALiBi positions; max positions = training sequence length",
        ),
        "opt-125m": (
            "facebook/opt-125m",
            OPTConfig,
            dict(_OPT, hidden_size=768, num_hidden_layers=12, ffn_dim=3072, num_attention_heads=12,
                 word_embed_proj_dim=768, do_layer_norm_before=True),
            "",
        ),
        "opt-350m": (
            "facebook/opt-350m",
            OPTConfig,
            dict(_OPT, hidden_size=1024, num_hidden_layers=24, ffn_dim=4096, num_attention_heads=16,
                 word_embed_proj_dim=512, do_layer_norm_before=False),
            "512-wide embedding projection; post-attention layer norm",
        ),
    }


PRESETS = _preset_table()

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def preset_names() -> list[str]:
    """Names of the presets."""
    return list(PRESETS)


def _max_positions(config: PretrainedConfig) -> int | None:
    for attr in ("max_position_embeddings", "n_positions", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _architecture(config: PretrainedConfig) -> str:
    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.model_type)
    if isinstance(name, (tuple, list)):
        name = name[0]
    return name or ""


def _hub_has_weights(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        if not isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
            return False
        return any(isinstance(try_to_load_from_cache(repo_id, f), str) for f in _WEIGHT_FILES)
    except Exception:  # noqa: BLE001 - an invalid repo id simply has nothing cached
        return False


@dataclass(frozen=True)
class ModelSpec:
    """A model name resolved without building the model.

    Attributes
    ----------
    name
        The name as given (preset, local path or hub id).
    kind
        ``"preset"``, ``"path"`` or ``"hub"``.
    config
        The transformers config the model is built from.
    architecture
        Causal-LM class name, e.g. ``"GPT2LMHeadModel"``.
    max_positions
        Longest sequence (prompt + new tokens) the model takes; None if unbounded.
    vocab_size
        Vocabulary size (prompt ids are drawn from ``range(vocab_size)``).
    weights
        Resolved weights: ``"pretrained"`` or ``"random"``.
    source
        Where pretrained weights are read from (path or hub id), or None.
    """

    name: str
    kind: str
    config: PretrainedConfig = field(repr=False)
    architecture: str
    max_positions: int | None
    vocab_size: int
    weights: str
    source: str | None = None


def model_spec(name: str, weights: str = "auto") -> ModelSpec:
    """Resolve and validate a model name and weights choice without building it.

    Raises
    ------
    ConfigError
        For an unknown ``weights``.
    UnknownModelError
        For a name that is neither a preset, nor a local model directory, nor a
        hub id in the local cache; or ``weights='pretrained'`` where none are
        available offline.
    """
    if weights not in WEIGHTS:
        raise ConfigError(f"unknown weights {weights!r}; choices: {', '.join(WEIGHTS)}")
    if not isinstance(name, str) or not name:
        raise UnknownModelError(f"unknown model {name!r}; presets: {', '.join(PRESETS)}")
    if name in PRESETS:
        hub_id, cls, kwargs, _ = PRESETS[name]
        config = cls(**kwargs)
        kind, source = "preset", hub_id
        available = hub_id is not None and weights != "random" and _hub_has_weights(hub_id)
    else:
        is_dir = os.path.isdir(name)
        try:
            config = AutoConfig.from_pretrained(name, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means: not loadable offline
            where = "a local directory without a readable config.json" if is_dir else (
                "not a preset, not a local directory, and not in the local Hugging Face cache"
            )
            raise UnknownModelError(
                f"unknown model {name!r}: {where} ({type(exc).__name__}); presets: {', '.join(PRESETS)}"
            ) from exc
        if _architecture(config) == "":
            raise UnknownModelError(
                f"model {name!r} has model_type {config.model_type!r}, which has no causal-LM class "
                f"in transformers {transformers.__version__}"
            )
        kind, source = ("path", name) if is_dir else ("hub", name)
        if weights == "random":
            available = False
        elif is_dir:
            available = any(os.path.exists(os.path.join(name, f)) for f in _WEIGHT_FILES)
        else:
            available = _hub_has_weights(name)
    if weights == "pretrained" and not available:
        why = "it is a random-weights preset" if source is None else f"no weights for {source!r} are available offline"
        raise UnknownModelError(
            f"weights='pretrained' for model {name!r} cannot be met: {why}; choices: 'auto' or 'random'"
        )
    resolved = "pretrained" if (weights != "random" and available) else "random"
    return ModelSpec(
        name=name,
        kind=kind,
        config=config,
        architecture=_architecture(config),
        max_positions=_max_positions(config),
        vocab_size=int(config.vocab_size),
        weights=resolved,
        source=source if resolved == "pretrained" else None,
    )


def check_attn(spec: ModelSpec, attn: str) -> None:
    """Refuse an attention implementation the model's class does not have (``default`` always works).

    Raises
    ------
    ConfigError
        ``attn`` is ``sdpa`` and the architecture has no SDPA attention in this transformers
        (e.g. BLOOM), or ``attn`` is not a known choice.
    """
    if attn in ("default", "eager"):
        return
    if attn != "sdpa":
        raise ConfigError(f"unknown attn {attn!r}; choices: default, sdpa, eager")
    try:
        cls: Any = MODEL_FOR_CAUSAL_LM_MAPPING[type(spec.config)]
    except (KeyError, ValueError):  # pragma: no cover - every resolved spec has a causal-LM class
        return
    if not getattr(cls, "_supports_sdpa", False):
        raise ConfigError(f"model {spec.name!r} ({cls.__name__}) has no 'sdpa' attention in transformers "
                          f"{transformers.__version__}; choices: default, eager")


def count_params(config: PretrainedConfig) -> int:
    """Number of parameters of the model a config describes (built on the meta device)."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class PresetInfo:
    """One row of :func:`presets`."""

    name: str
    architecture: str
    n_params: int
    n_layers: int
    hidden_size: int
    vocab_size: int
    max_positions: int | None
    hub_id: str | None
    note: str


def presets() -> list[PresetInfo]:
    """The presets with their sizes (parameter counts from a meta-device build)."""
    rows = []
    for name, (hub_id, cls, kwargs, note) in PRESETS.items():
        config = cls(**kwargs)
        rows.append(
            PresetInfo(
                name=name,
                architecture=_architecture(config),
                n_params=count_params(config),
                n_layers=int(config.num_hidden_layers),
                hidden_size=int(config.hidden_size),
                vocab_size=int(config.vocab_size),
                max_positions=_max_positions(config),
                hub_id=hub_id,
                note=note,
            )
        )
    return rows


@dataclass(frozen=True)
class LoadedModel:
    """A model built on a device, reusable across runs (pass as ``loaded=`` to measure).

    Attributes
    ----------
    spec
        The resolved :class:`ModelSpec`.
    module
        The ``torch.nn.Module`` in eval mode on the device.
    device, dtype, attn
        Names as given.
    n_params
        Parameter count (tied weights once).
    architecture
        Class name of ``module``.
    """

    spec: ModelSpec
    module: Any = field(repr=False)
    device: str
    dtype: str
    n_params: int
    architecture: str
    attn: str = "default"
    backend: Backend | None = field(default=None, repr=False)

    @property
    def load_values(self) -> dict[str, str]:
        """The model-load key of :mod:`collector.shared.factors` by name (model, device, dtype, attn)."""
        return {"model": self.spec.name, "device": self.device, "dtype": self.dtype, "attn": self.attn}

    @property
    def weights(self) -> str:
        """``"pretrained"`` or ``"random"``."""
        return self.spec.weights


def build_model(spec: ModelSpec, backend: Backend, dtype: str, attn: str = "default", seed: int = 0) -> LoadedModel:
    """Build (random) or load (pretrained) the model of ``spec`` on ``backend``'s device.

    Random weights are drawn after ``torch.manual_seed(seed)``, so a preset is
    the same model in every process. ``attn`` is passed as transformers'
    ``attn_implementation`` (``default``: not passed). Inputs are assumed
    validated (:func:`collector.measuring.measurement.check_request`).
    """
    dt = torch_dtype(dtype)
    kw: dict[str, Any] = {"dtype": dt}
    if attn != "default":
        kw["attn_implementation"] = attn
    module: Any
    if spec.weights == "pretrained":
        assert spec.source is not None, "model_spec() gives every pretrained spec its source"
        try:
            module = AutoModelForCausalLM.from_pretrained(spec.source, local_files_only=True, **kw)
        except OSError as exc:
            raise UnknownModelError(f"cannot load pretrained weights of {spec.name!r} offline: {exc}") from exc
    else:
        torch.manual_seed(seed)
        module = AutoModelForCausalLM.from_config(spec.config, **kw)
    module = module.to(backend.torch_device()).eval()
    gen = getattr(module, "generation_config", None)
    if gen is not None and gen.pad_token_id is None:
        eos = gen.eos_token_id if gen.eos_token_id is not None else spec.config.eos_token_id
        gen.pad_token_id = eos[0] if isinstance(eos, (list, tuple)) else eos
    return LoadedModel(
        spec=spec,
        module=module,
        device=backend.name,
        dtype=dtype,
        n_params=sum(p.numel() for p in module.parameters()),
        architecture=type(module).__name__,
        attn=attn,
        backend=backend,
    )
