"""The generation engines: ``loop`` (manual prefill + per-token forward) and ``generate`` (HF generate).

Each engine runs one greedy generation of exactly ``budget`` new tokens on
a loaded module and takes one clock mark per token. ``cache_impl`` picks the
KV cache: ``dynamic`` (transformers' default, grown by concatenation every
step) or ``static`` (a :class:`transformers.StaticCache` pre-allocated for
the run's full length, prompt + budget, before the clock starts, and
updated in place: no per-step concatenation). With the cache off the whole
sequence is recomputed every step and there is no cache to choose.
``generate`` never compiles the model (``disable_compile``: transformers
would otherwise compile the forward of a static-cache run on CUDA, which
would measure the compiler, not the cache).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from transformers import GenerationConfig, StaticCache, StoppingCriteriaList

from collector.measuring.clock import Clock, Marker

__all__ = ["ENGINES", "run_loop", "run_generate", "static_cache"]


def _cache_kwarg(module: Any) -> str:
    params = inspect.signature(module.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _out_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def static_cache(module: Any, max_len: int, ids: torch.Tensor) -> StaticCache:
    """A static KV cache for ``max_len`` tokens, its tensors allocated now on ``ids``' device.

    Heads and head size come from the model config (``num_key_value_heads``
    where the model has grouped keys, else ``num_attention_heads``;
    ``head_dim``, else ``hidden_size / num_attention_heads``).
    """
    cfg = module.config.get_text_config(decoder=True)
    heads = int(cfg.num_attention_heads)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    cache = StaticCache(config=module.config, max_cache_len=int(max_len))
    dtype = next(module.parameters()).dtype
    cache.early_initialization(batch_size=int(ids.shape[0]), num_heads=kv_heads, head_dim=head_dim, dtype=dtype,
                               device=ids.device)
    return cache


def run_loop(module: Any, ids: torch.Tensor, budget: int, cache: bool, cache_impl: str, clock: Clock) -> int:
    """Prefill, then one forward per new token (cache on: the new token only; off: the whole sequence)."""
    params = inspect.signature(module.forward).parameters
    extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    ckw = _cache_kwarg(module)
    tokens: list[torch.Tensor] = []
    first = {ckw: static_cache(module, ids.shape[1] + budget, ids)} if cache and cache_impl == "static" else {}
    clock.start()
    if cache:
        out = module(input_ids=ids, use_cache=True, **first, **extra)
        past = _out_cache(out)
        tok = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
        tokens.append(tok)
        clock.mark()
        for _ in range(budget - 1):
            out = module(input_ids=tok, use_cache=True, **{ckw: past})
            past = _out_cache(out)
            tok = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
            tokens.append(tok)
            clock.mark()
    else:
        seq = ids
        for _ in range(budget):
            out = module(input_ids=seq, use_cache=False, **extra)
            tok = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
            seq = torch.cat([seq, tok], dim=1)
            tokens.append(tok)
            clock.mark()
    clock.stop()
    return int(torch.cat(tokens, dim=1).shape[1])


def run_generate(module: Any, ids: torch.Tensor, budget: int, cache: bool, cache_impl: str, clock: Clock) -> int:
    """``module.generate`` with min = max new tokens = ``budget`` (greedy, EOS ignored by the minimum)."""
    cfg = module.config
    eos = cfg.eos_token_id
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else (eos[0] if isinstance(eos, list) else eos)
    gen = GenerationConfig(
        max_new_tokens=budget, min_new_tokens=budget, do_sample=False, num_beams=1, use_cache=cache,
        bos_token_id=cfg.bos_token_id, eos_token_id=eos, pad_token_id=pad, disable_compile=True,
    )
    marker = StoppingCriteriaList([Marker(clock, ids.shape[0], ids.device)])
    mask = torch.ones_like(ids)
    static = cache and cache_impl == "static"
    extra = {_cache_kwarg(module): static_cache(module, ids.shape[1] + budget, ids)} if static else {}
    clock.start()
    out = module.generate(input_ids=ids, attention_mask=mask, generation_config=gen, stopping_criteria=marker, **extra)
    clock.stop()
    return int(out.shape[1] - ids.shape[1])


#: Engine name -> function(module, ids, budget, cache, cache_impl, clock) -> tokens produced.
ENGINES: dict[str, Callable[[Any, torch.Tensor, int, bool, str, Clock], int]] = {
    "loop": run_loop,
    "generate": run_generate,
}
