"""Presets, offline resolution of names, weights auto|pretrained|random (real tiny models)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config

from collector.measuring import measurement, models
from collector.measuring.devices import CPUBackend
from collector.measuring.models import build_model, model_spec, presets
from collector.shared.errors import ConfigError, UnknownModelError

REQUIRED = ["tiny-gpt2", "distilgpt2", "gpt2", "gpt2-medium", "gpt2-large", "bloom-560m", "opt-125m", "opt-350m"]


@pytest.fixture(autouse=True)
def no_hub_cache(monkeypatch):
    """Presets never find hub weights in these tests, whatever this machine's cache holds."""
    monkeypatch.setattr(models, "_hub_has_weights", lambda repo_id: False)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny GPT-2 with seeded weights saved with save_pretrained."""
    path = tmp_path_factory.mktemp("models") / "tiny-saved"
    torch.manual_seed(123)
    config = GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=64, vocab_size=128, bos_token_id=127,
                        eos_token_id=127)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(path)
    return path, model


def test_presets_cover_the_published_models_with_their_sizes():
    rows = {p.name: p for p in presets()}
    assert set(REQUIRED) <= set(rows)
    # parameter counts of the published checkpoints (tied embeddings counted once)
    assert rows["gpt2"].n_params == 124_439_808
    assert rows["gpt2-medium"].n_params == 354_823_168
    assert rows["gpt2-large"].n_params == 774_030_080
    assert rows["opt-125m"].n_params == pytest.approx(125.2e6, rel=1e-3)
    assert rows["opt-350m"].n_params == pytest.approx(331.2e6, rel=1e-3)
    assert rows["bloom-560m"].n_params == pytest.approx(559.2e6, rel=1e-3)
    assert rows["distilgpt2"].n_layers == 6 and rows["gpt2-medium"].n_layers == 24
    assert rows["bloom-560m"].architecture == "BloomForCausalLM"
    assert rows["tiny-gpt2"].n_params < 1_000_000 and rows["tiny-gpt2"].max_positions == 512


def test_opt_350m_has_projection_and_post_layer_norm():
    spec = model_spec("opt-350m")
    assert spec.config.word_embed_proj_dim == 512
    assert spec.config.hidden_size == 1024
    assert spec.config.do_layer_norm_before is False
    assert spec.max_positions == 2048 and spec.architecture == "OPTForCausalLM"


def test_preset_auto_falls_back_to_random_offline():
    spec = model_spec("gpt2", "auto")
    assert spec.kind == "preset" and spec.weights == "random" and spec.max_positions == 1024


def test_preset_auto_uses_cached_weights(monkeypatch):
    monkeypatch.setattr(models, "_hub_has_weights", lambda repo_id: repo_id == "openai-community/gpt2")
    spec = model_spec("gpt2", "auto")
    assert spec.weights == "pretrained" and spec.source == "openai-community/gpt2"
    assert model_spec("gpt2", "random").weights == "random"


def test_unknown_model_names_the_choices():
    with pytest.raises(UnknownModelError, match=r"unknown model 'no-such-model-xyz'.*presets: tiny-gpt2, distilgpt2"):
        model_spec("no-such-model-xyz")


def test_bad_weights_choice():
    with pytest.raises(ConfigError, match=r"unknown weights 'real'; choices: auto, pretrained, random"):
        model_spec("gpt2", "real")


def test_pretrained_refused_when_not_available_offline():
    with pytest.raises(UnknownModelError, match=r"weights='pretrained' for model 'gpt2' cannot be met.*offline"):
        model_spec("gpt2", "pretrained")
    with pytest.raises(UnknownModelError, match=r"'tiny-gpt2' cannot be met: it is a random-weights preset"):
        model_spec("tiny-gpt2", "pretrained")


def test_local_directory_weights_auto_pretrained_random(saved_model):
    path, reference = saved_model
    assert model_spec(str(path), "auto").weights == "pretrained"
    assert model_spec(str(path), "pretrained").weights == "pretrained"
    spec = model_spec(str(path), "random")
    assert spec.kind == "path" and spec.weights == "random" and spec.max_positions == 64

    loaded = build_model(model_spec(str(path), "pretrained"), CPUBackend(), "float32")
    ref = dict(reference.named_parameters())
    for name, p in loaded.module.named_parameters():
        torch.testing.assert_close(p, ref[name])
    random = build_model(spec, CPUBackend(), "float32", seed=5)
    assert not torch.equal(random.module.transformer.h[0].mlp.c_fc.weight, ref["transformer.h.0.mlp.c_fc.weight"])
    assert loaded.n_params == sum(p.numel() for p in reference.parameters())
    assert loaded.architecture == "GPT2LMHeadModel"


def test_measure_records_weights_used(saved_model):
    path, _ = saved_model
    for weights, expected in [("auto", "pretrained"), ("pretrained", "pretrained"), ("random", "random")]:
        rec = measurement.measure(model=str(path), budget=3, prompt_len=4, weights=weights)
        assert rec.ok and rec.weights == expected and rec.model == str(path)
        assert rec.architecture == "GPT2LMHeadModel" and rec.n_params > 0


def test_directory_without_weights_falls_back_to_random(tmp_path):
    GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=32, vocab_size=64).save_pretrained(tmp_path)
    assert model_spec(str(tmp_path), "auto").weights == "random"
    rec = measurement.measure(model=str(tmp_path), budget=2, prompt_len=2)
    assert rec.ok and rec.weights == "random"
    with pytest.raises(UnknownModelError, match=r"no weights for .* are available offline"):
        model_spec(str(tmp_path), "pretrained")


def test_directory_without_config_is_unknown(tmp_path):
    with pytest.raises(UnknownModelError, match=r"a local directory without a readable config\.json"):
        model_spec(str(tmp_path))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_build_in_dtype(dtype):
    loaded = build_model(model_spec("tiny-gpt2"), CPUBackend(), dtype)
    assert {p.dtype for p in loaded.module.parameters()} == {getattr(torch, dtype)}
    assert loaded.weights == "random" and loaded.dtype == dtype


def test_random_weights_are_seeded():
    a = build_model(model_spec("tiny-gpt2"), CPUBackend(), "float32", seed=7).module
    b = build_model(model_spec("tiny-gpt2"), CPUBackend(), "float32", seed=7).module
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def test_sim_knows_the_positions_of_every_preset():
    # device sim refuses prompt_len + budget past them, as the real devices do (issue 13)
    from collector.shared.sim import MAX_POSITIONS

    assert {p.name: p.max_positions for p in presets()} == MAX_POSITIONS
