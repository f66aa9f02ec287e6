"""Measure one generation of exactly ``budget`` new tokens: :func:`measure`, :func:`warmup`.

Where the clocks start and stop (docs/methods.md, "What is timed", says the same):

* Before the clock: prompt ids are drawn (seeded) and moved to the device,
  the memory monitor takes its first read (and starts its sampler).
* ``t0``: the device is synchronised, then the host clock is read
  (``timing=events`` also records the first device event here).
* A *mark* is taken right after token k is chosen (k = 0 is the token that
  the prompt forward yields; loop: after the ``argmax``; generate: in a
  ``StoppingCriteria`` that transformers calls once per new token, after the
  token was appended). What a mark does depends on ``timing``:
  ``step`` synchronises and reads the host clock; ``events`` records a device
  event without waiting (host clock on cpu, which is synchronous, so exact);
  ``ends`` synchronises and reads the host clock at the first mark only (the
  prefill boundary) and does nothing at the others.
* ``t_end``: after the last token (loop) or when ``generate`` returns, the
  device is synchronised, then the host clock is read.

``latency = t_end - t0`` (host clock, all modes); ``prefill_time`` = ``t0`` to
the first mark (events: device time between the first two events);
``decode_time = latency - prefill_time``; ``step_times[0]`` is the prefill
time and ``step_times[k]`` the time between marks k-1 and k (step: the last
step ends at ``t_end``, so the steps add up to the latency exactly; events:
device-event differences, which add up to the latency within the host-device
clock offset at the two ends).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import gc
import inspect
import operator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from collector.devices import Backend, EventTimer, get_backend, now, torch_dtype
from collector.errors import ConfigError
from collector.memory import MemoryFigures, MemoryMonitor, check_memory_mode
from collector.models import LoadedModel, ModelSpec, build_model, model_spec
from collector.record import RunRecord

__all__ = ["ENGINES", "TIMINGS", "Request", "check_request", "load_model", "measure", "warmup"]

#: Generation engines.
ENGINES: tuple[str, ...] = ("loop", "generate")
#: Timing modes.
TIMINGS: tuple[str, ...] = ("step", "events", "ends")

_NAN = float("nan")


# --------------------------------------------------------------------------- validation
def _check_int(name: str, value: Any, minimum: int) -> int:
    try:
        ivalue = operator.index(value)
    except TypeError:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if isinstance(value, bool) or ivalue < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return ivalue


def _check_scalars(
    *, budget: Any, prompt_len: Any, cache: Any, dtype: Any, engine: Any, timing: Any,
    seed: Any, memory: Any, memory_interval: Any,
) -> None:
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; choices: {', '.join(ENGINES)}")
    if timing not in TIMINGS:
        raise ConfigError(f"unknown timing {timing!r}; choices: {', '.join(TIMINGS)}")
    if not isinstance(cache, bool):
        raise ConfigError(f"cache must be True or False, got {cache!r}")
    _check_int("budget", budget, 1)
    _check_int("prompt_len", prompt_len, 1)
    _check_int("seed", seed, 0)
    torch_dtype(dtype)
    check_memory_mode(memory, memory_interval)


def _check_positions(spec: ModelSpec, prompt_len: int, budget: int) -> None:
    if spec.max_positions is not None and prompt_len + budget > spec.max_positions:
        raise ConfigError(
            f"prompt_len + budget = {prompt_len} + {budget} = {prompt_len + budget} exceeds the "
            f"{spec.max_positions} positions of model {spec.name!r}; choose prompt_len + budget <= {spec.max_positions}"
        )


@dataclass(frozen=True)
class Request:
    """A validated measurement request (what :func:`check_request` returns)."""

    spec: ModelSpec
    backend: Backend
    budget: int
    prompt_len: int
    cache: bool
    dtype: str
    engine: str
    timing: str
    seed: int
    memory: str
    memory_interval: float


def check_request(
    *, model: str, device: str = "cpu", budget: int, cache: bool = True, prompt_len: int = 8,
    dtype: str = "float32", engine: str = "loop", timing: str = "ends", weights: str = "auto",
    seed: int = 0, memory: str = "endpoints", memory_interval: float = 0.005,
) -> Request:
    """Validate a measurement request without loading any model.

    Checks, in this order: engine, timing, cache, budget >= 1, prompt_len >= 1,
    seed, dtype name, memory mode and interval; the model name and weights
    (reads at most a config); prompt_len + budget against the model's positions;
    the device's availability; a tiny matmul in ``dtype`` on the device.

    Raises
    ------
    ConfigError
        A bad setting (message quotes the value and names the choices).
    UnknownModelError
        The model cannot be resolved (or pretrained weights are not available offline).
    DeviceUnavailableError
        Unknown device, or not available here.
    """
    _check_scalars(budget=budget, prompt_len=prompt_len, cache=cache, dtype=dtype, engine=engine,
                   timing=timing, seed=seed, memory=memory, memory_interval=memory_interval)
    spec = model_spec(model, weights)
    _check_positions(spec, int(prompt_len), int(budget))
    backend = get_backend(device)
    backend.check_dtype(dtype)
    return Request(spec=spec, backend=backend, budget=int(budget), prompt_len=int(prompt_len), cache=cache,
                   dtype=dtype, engine=engine, timing=timing, seed=int(seed), memory=memory,
                   memory_interval=float(memory_interval))


def load_model(*, model: str, device: str = "cpu", dtype: str = "float32", weights: str = "auto",
               seed: int = 0) -> LoadedModel:
    """Validate, then build or load a model once, to pass as ``loaded=`` to many runs.

    Raises the same exceptions as :func:`check_request`, before anything is built.
    """
    torch_dtype(dtype)
    _check_int("seed", seed, 0)
    spec = model_spec(model, weights)
    backend = get_backend(device)
    backend.check_dtype(dtype)
    return build_model(spec, backend, dtype, seed=int(seed))


# --------------------------------------------------------------------------- clocks
class _Clock:
    """The marks of one generation for one timing mode (see the module docstring)."""

    def __init__(self, backend: Backend, timing: str, budget: int) -> None:
        self.backend = backend
        self.timing = timing
        self.count = 0
        self._host: list[float] = []
        self._events = EventTimer(backend, capacity=budget + 1) if timing == "events" else None
        self.t0 = self.t_first = self.t_end = _NAN

    def start(self) -> None:
        self.backend.synchronize()
        self.t0 = now()
        if self._events is not None:
            self._events.record()

    def mark(self) -> None:
        self.count += 1
        if self.timing == "step":
            self.backend.synchronize()
            self._host.append(now())
        elif self.timing == "events":
            self._events.record()  # type: ignore[union-attr]
        elif self.count == 1:  # ends: the prefill boundary only
            self.backend.synchronize()
            self.t_first = now()

    def stop(self) -> None:
        self.backend.synchronize()
        self.t_end = now()

    def result(self) -> tuple[float, float, tuple[float, ...]]:
        """(latency, prefill_time, step_times)."""
        latency = self.t_end - self.t0
        if self.count == 0:
            return latency, _NAN, ()
        if self.timing == "step":
            marks = [self.t0, *self._host[:-1], self.t_end]
            steps = tuple(b - a for a, b in zip(marks[:-1], marks[1:]))
            return latency, steps[0], steps
        if self.timing == "events":
            elapsed = self._events.elapsed()  # type: ignore[union-attr]
            steps = tuple(b - a for a, b in zip(elapsed[:-1], elapsed[1:]))
            return latency, steps[0], steps
        return latency, self.t_first - self.t0, ()


class _Marker(StoppingCriteria):
    """Never stops; takes a clock mark each time generate has appended a token."""

    def __init__(self, clock: _Clock, batch: int, device: torch.device) -> None:
        self.clock = clock
        self._false = torch.zeros((batch,), dtype=torch.bool, device=device)

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        self.clock.mark()
        return self._false  # type: ignore[return-value]


# --------------------------------------------------------------------------- engines
def _cache_kwarg(module: Any) -> str:
    params = inspect.signature(module.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _out_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def _run_loop(module: Any, ids: torch.Tensor, budget: int, cache: bool, clock: _Clock) -> int:
    params = inspect.signature(module.forward).parameters
    extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    ckw = _cache_kwarg(module)
    tokens: list[torch.Tensor] = []
    clock.start()
    if cache:
        out = module(input_ids=ids, use_cache=True, **extra)
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


def _run_generate(module: Any, ids: torch.Tensor, budget: int, cache: bool, clock: _Clock) -> int:
    cfg = module.config
    eos = cfg.eos_token_id
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else (eos[0] if isinstance(eos, list) else eos)
    gen = GenerationConfig(
        max_new_tokens=budget, min_new_tokens=budget, do_sample=False, num_beams=1, use_cache=cache,
        bos_token_id=cfg.bos_token_id, eos_token_id=eos, pad_token_id=pad,
    )
    marker = StoppingCriteriaList([_Marker(clock, ids.shape[0], ids.device)])
    mask = torch.ones_like(ids)
    clock.start()
    out = module.generate(input_ids=ids, attention_mask=mask, generation_config=gen, stopping_criteria=marker)
    clock.stop()
    return int(out.shape[1] - ids.shape[1])


_ENGINES = {"loop": _run_loop, "generate": _run_generate}


def _failure_status(exc: BaseException) -> str:
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if isinstance(exc, oom) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()):
        return "oom"
    return "error"


def _message(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 2000 else text[:2000] + " ..."


# --------------------------------------------------------------------------- measure
def measure(
    *, model: str, device: str = "cpu", budget: int, cache: bool = True, prompt_len: int = 8,
    dtype: str = "float32", engine: str = "loop", timing: str = "ends", weights: str = "auto",
    seed: int = 0, memory: str = "endpoints", memory_interval: float = 0.005,
    loaded: LoadedModel | None = None,
) -> RunRecord:
    """Run one greedy generation of exactly ``budget`` new tokens and time it.

    Parameters
    ----------
    model
        Preset name (:func:`collector.models.presets`), local directory or hub id.
    device
        ``"cpu"``, ``"cuda"`` or ``"mps"``.
    budget
        New tokens to generate (EOS ignored), >= 1.
    cache
        Pass the KV cache on (True) or re-run the whole sequence every step.
    prompt_len
        Length of the seeded random prompt, >= 1.
    dtype
        ``"float32"``, ``"float16"`` or ``"bfloat16"``.
    engine
        ``"loop"`` (manual prefill + per-token forward) or ``"generate"`` (HF generate).
    timing
        ``"step"``, ``"events"`` or ``"ends"`` (module docstring says what each times).
    weights
        ``"auto"``, ``"pretrained"`` or ``"random"``.
    seed
        Seeds the prompt ids and random weights.
    memory, memory_interval
        Memory mode (``off``, ``endpoints``, ``sampled``) and sampling period in seconds.
    loaded
        A model from :func:`load_model` to reuse (must match model, device, dtype);
        when None the model is loaded for this run.

    Returns
    -------
    RunRecord
        ``status`` ``ok``, or ``error`` / ``oom`` with the message in ``error``
        (exceptions inside the run never escape; bad input does, before any loading).

    Raises
    ------
    ConfigError, UnknownModelError, DeviceUnavailableError
        Bad input (see :func:`check_request`).
    """
    if loaded is None:
        req = check_request(model=model, device=device, budget=budget, cache=cache, prompt_len=prompt_len,
                            dtype=dtype, engine=engine, timing=timing, weights=weights, seed=seed,
                            memory=memory, memory_interval=memory_interval)
        spec, backend = req.spec, req.backend
    else:
        _check_scalars(budget=budget, prompt_len=prompt_len, cache=cache, dtype=dtype, engine=engine,
                       timing=timing, seed=seed, memory=memory, memory_interval=memory_interval)
        if not isinstance(loaded, LoadedModel):
            raise ConfigError(f"loaded must be a LoadedModel from load_model(), got {type(loaded).__name__!r}")
        wanted = (model, device, dtype)
        if (loaded.spec.name, loaded.device, loaded.dtype) != wanted:
            raise ConfigError(
                f"loaded model is {(loaded.spec.name, loaded.device, loaded.dtype)!r} "
                f"but the run asks for (model, device, dtype) = {wanted!r}"
            )
        if weights not in ("auto", loaded.weights):
            raise ConfigError(f"weights={weights!r} but the loaded model has {loaded.weights!r} weights")
        spec = loaded.spec
        _check_positions(spec, int(prompt_len), int(budget))
        backend = get_backend(device)

    base = RunRecord(
        model=model, device=device, dtype=dtype, cache=cache, prompt_len=int(prompt_len), budget=int(budget),
        engine=engine, timing=timing, weights=spec.weights, architecture=spec.architecture,
    )
    if loaded is None:
        try:
            loaded = build_model(spec, backend, dtype, seed=int(seed))
        except Exception as exc:  # noqa: BLE001 - a failed load is a failed run
            _recover(backend, exc)
            return base.failed(_failure_status(exc), _message(exc))
    base = dataclasses.replace(base, n_params=loaded.n_params, architecture=loaded.architecture)
    return _measure_loaded(base, loaded, backend, int(budget), int(prompt_len), cache, engine, timing,
                           int(seed), memory, float(memory_interval))


def _recover(backend: Backend, exc: BaseException) -> None:
    if _failure_status(exc) == "oom":
        gc.collect()
        try:
            backend.empty_cache()
        except Exception:  # noqa: BLE001 - best effort after an OOM
            pass


def _measure_loaded(
    base: RunRecord, loaded: LoadedModel, backend: Backend, budget: int, prompt_len: int, cache: bool,
    engine: str, timing: str, seed: int, memory: str, memory_interval: float,
) -> RunRecord:
    clock = _Clock(backend, timing, budget)
    monitor = MemoryMonitor(backend, memory, memory_interval)
    started = _dt.datetime.now(_dt.timezone.utc)
    status, error, tokens = "ok", "", 0
    try:
        gen = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, loaded.spec.vocab_size, (1, prompt_len), generator=gen).to(backend.torch_device())
        monitor.begin()
        started = _dt.datetime.now(_dt.timezone.utc)
        with torch.inference_mode():
            tokens = _ENGINES[engine](loaded.module, ids, budget, cache, clock)
        latency, prefill, steps = clock.result()
    except Exception as exc:  # noqa: BLE001 - a failed run becomes a record
        monitor.abandon()
        _recover(backend, exc)
        status, error = _failure_status(exc), _message(exc)
    try:
        figs = monitor.end()
    except Exception as exc:  # noqa: BLE001 - a broken probe fails the run, never the caller
        figs = MemoryFigures()
        if status == "ok":
            status, error = "error", _message(exc)
    rec = dataclasses.replace(
        base, started_at=started, tokens=tokens,
        mem_device_peak=figs.device_peak, mem_device_driver=figs.device_driver, mem_rss_peak=figs.rss_peak,
        mem_sys_available_min=figs.sys_available_min, swap_used=figs.swap_used,
    )
    if status != "ok":
        return rec.failed(status, error)
    if tokens != budget:
        return rec.failed("error", f"produced {tokens} new tokens, expected budget={budget}")
    if clock.count != budget:
        return rec.failed("error", f"took {clock.count} step marks, expected budget={budget}")
    return dataclasses.replace(rec, latency=latency, prefill_time=prefill, decode_time=latency - prefill,
                               step_times=steps)


def warmup(n: int, **kwargs: Any) -> LoadedModel:
    """Run ``n`` unrecorded generations of the same cell; return the model used.

    Takes the keyword arguments of :func:`measure`. The model is loaded once
    (or ``loaded=`` is reused); pass the returned model as ``loaded=`` to the
    measured runs. Failed warm-up runs are not raised: the measured runs
    record them. Bad input raises as in :func:`check_request`; a failure
    while loading raises as in :func:`load_model`.
    """
    n = _check_int("n", n, 0)
    loaded = kwargs.pop("loaded", None)
    if loaded is None:
        check_request(**kwargs)
        loaded = load_model(model=kwargs["model"], device=kwargs.get("device", "cpu"),
                            dtype=kwargs.get("dtype", "float32"), weights=kwargs.get("weights", "auto"),
                            seed=kwargs.get("seed", 0))
    for _ in range(n):
        measure(**kwargs, loaded=loaded)
    return loaded
