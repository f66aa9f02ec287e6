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
import operator
from dataclasses import dataclass
from typing import Any

import torch

from collector.measuring.clock import Clock
from collector.measuring.devices import Backend, get_backend
from collector.measuring.engines import ENGINES as _ENGINES
from collector.measuring.memory import MemoryFigures, MemoryMonitor, check_memory_mode
from collector.measuring.models import LoadedModel, ModelSpec, build_model, check_attn, model_spec
from collector.shared.errors import ConfigError
from collector.shared.factors import CELL_DIMS, LOAD_KEY, Cell, factor, inapplicable_reason
from collector.shared.protocol import ENGINES, TIMINGS, Protocol  # declared in protocol; re-exported here
from collector.shared.record import RunRecord
from collector.sweep import failures

__all__ = ["ENGINES", "TIMINGS", "Request", "check_request", "load_model", "measure", "measure_request", "warmup"]

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


def _check_cell(cell: dict[str, Any]) -> Cell:
    """The cell's factor values checked against their declarations (model and device are checked when resolved)."""
    for name in ("dtype", "attn", "cache_impl"):
        f = factor(name)
        if cell[name] not in (f.choices or ()):
            raise ConfigError(f"unknown {name} {cell[name]!r}; choices: {', '.join(f.choices or ())}")
    if not isinstance(cell["cache"], bool):
        raise ConfigError(f"cache must be True or False, got {cell['cache']!r}")
    cell["budget"] = _check_int("budget", cell["budget"], 1)
    cell["prompt_len"] = _check_int("prompt_len", cell["prompt_len"], 1)
    reason = inapplicable_reason(cell)
    if reason is not None:
        raise ConfigError(f"the run is not applicable: {reason}")
    return Cell(**cell)


def _check_protocol(protocol: Protocol) -> None:
    if protocol.engine not in ENGINES:
        raise ConfigError(f"unknown engine {protocol.engine!r}; choices: {', '.join(ENGINES)}")
    if protocol.timing not in TIMINGS:
        raise ConfigError(f"unknown timing {protocol.timing!r}; choices: {', '.join(TIMINGS)}")
    check_memory_mode(protocol.memory, protocol.memory_interval)


def _check_positions(spec: ModelSpec, prompt_len: int, budget: int) -> None:
    if spec.max_positions is not None and prompt_len + budget > spec.max_positions:
        raise ConfigError(
            f"prompt_len + budget = {prompt_len} + {budget} = {prompt_len + budget} exceeds the "
            f"{spec.max_positions} positions of model {spec.name!r}; choose prompt_len + budget <= {spec.max_positions}"
        )


@dataclass(frozen=True)
class Request:
    """A validated measurement request: the cell, the protocol, the seed, the resolved model and device.

    Made by :func:`check_request` (keywords) or :meth:`for_model` (a loaded
    model and a cell); it travels through :func:`load_model`,
    :func:`warmup` and :func:`measure_request`. The cell's factors are also
    attributes (``req.budget``, ``req.cache_impl``...).
    """

    cell: Cell
    protocol: Protocol
    seed: int
    spec: ModelSpec
    backend: Backend

    def __getattr__(self, name: str) -> Any:
        if name in CELL_DIMS:
            return getattr(self.cell, name)
        raise AttributeError(f"'Request' object has no attribute {name!r}")

    @classmethod
    def for_model(cls, loaded: LoadedModel, cell: Cell, protocol: Protocol, seed: int) -> "Request":
        """A request for ``cell`` on an already loaded model (checks the cell, the protocol and the positions).

        Raises
        ------
        ConfigError
            A bad value, or the cell's model-load key is not the loaded model's.
        """
        checked = _check_cell(cell._asdict())
        _check_protocol(protocol)
        _check_int("seed", seed, 0)
        wanted = {d: getattr(checked, d) for d in LOAD_KEY}
        if wanted != loaded.load_values:
            raise ConfigError(f"loaded model is {loaded.load_values!r} but the run asks for {wanted!r}")
        if protocol.weights not in ("auto", loaded.weights):
            raise ConfigError(f"weights={protocol.weights!r} but the loaded model has {loaded.weights!r} weights")
        _check_positions(loaded.spec, checked.prompt_len, checked.budget)
        return cls(cell=checked, protocol=protocol, seed=int(seed), spec=loaded.spec,
                   backend=loaded.backend or get_backend(loaded.device))  # build_model always sets the backend


def check_request(
    *, model: str, device: str = "cpu", budget: int, cache: bool = True, prompt_len: int = 8,
    dtype: str = "float32", attn: str = "default", cache_impl: str = "dynamic", engine: str = "loop",
    timing: str = "ends", weights: str = "auto", seed: int = 0, memory: str = "endpoints",
    memory_interval: float = 0.005,
) -> Request:
    """Validate a measurement request without loading any model.

    Checks, in this order: the cell's factors (dtype, attn, cache_impl,
    cache, budget >= 1, prompt_len >= 1, applicability), engine, timing,
    memory mode and interval, seed; the model name and weights (reads at most
    a config) and whether it has ``attn``; prompt_len + budget against the
    model's positions; the device's availability; a tiny matmul in ``dtype``
    on the device.

    Raises
    ------
    ConfigError
        A bad setting (message quotes the value and names the choices).
    UnknownModelError
        The model cannot be resolved (or pretrained weights are not available offline).
    DeviceUnavailableError
        Unknown device, or not available here.
    """
    cell = _check_cell(dict(model=model, device=device, dtype=dtype, attn=attn, cache=cache, cache_impl=cache_impl,
                            prompt_len=prompt_len, budget=budget))
    protocol = Protocol(engine=engine, timing=timing, weights=weights, memory=memory,
                        memory_interval=memory_interval)
    _check_protocol(protocol)
    _check_int("seed", seed, 0)
    spec = model_spec(model, weights)
    check_attn(spec, attn)
    _check_positions(spec, cell.prompt_len, cell.budget)
    backend = get_backend(device)
    backend.check_dtype(dtype)
    return Request(cell=cell, protocol=protocol, seed=int(seed), spec=spec, backend=backend)


def load_model(*, model: str, device: str = "cpu", dtype: str = "float32", attn: str = "default",
               weights: str = "auto", seed: int = 0) -> LoadedModel:
    """Validate, then build or load a model once, to pass as ``loaded=`` to many runs.

    Raises the same exceptions as :func:`check_request`, before anything is built.
    """
    req = check_request(model=model, device=device, dtype=dtype, attn=attn, budget=1, prompt_len=1,
                        weights=weights, seed=seed)
    return _build(req)


def _build(req: Request) -> LoadedModel:
    return build_model(req.spec, req.backend, req.dtype, attn=req.attn, seed=req.seed)


# --------------------------------------------------------------------------- measure
def measure(
    *, model: str, device: str = "cpu", budget: int, cache: bool = True, prompt_len: int = 8,
    dtype: str = "float32", attn: str = "default", cache_impl: str = "dynamic", engine: str = "loop",
    timing: str = "ends", weights: str = "auto", seed: int = 0, memory: str = "endpoints",
    memory_interval: float = 0.005, loaded: LoadedModel | None = None,
) -> RunRecord:
    """Run one greedy generation of exactly ``budget`` new tokens and time it.

    Parameters
    ----------
    model
        Preset name (:func:`collector.measuring.models.presets`), local directory or hub id.
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
    attn
        Attention implementation: ``"default"`` (transformers' choice), ``"sdpa"`` or ``"eager"``.
    cache_impl
        KV cache: ``"dynamic"`` or ``"static"`` (pre-allocated for prompt + budget; needs ``cache=True``).
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
        A model from :func:`load_model` to reuse (must match model, device, dtype, attn);
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
    cell: dict[str, Any] = dict(model=model, device=device, dtype=dtype, attn=attn, cache=cache, cache_impl=cache_impl,
                                prompt_len=prompt_len, budget=budget)
    protocol = Protocol(engine=engine, timing=timing, weights=weights, memory=memory, memory_interval=memory_interval)
    if loaded is None:
        req = check_request(**cell, engine=engine, timing=timing, weights=weights, seed=seed, memory=memory,
                            memory_interval=memory_interval)
    else:
        if not isinstance(loaded, LoadedModel):
            raise ConfigError(f"loaded must be a LoadedModel from load_model(), got {type(loaded).__name__!r}")
        req = Request.for_model(loaded, _check_cell(cell), protocol, seed)
    return measure_request(req, loaded)


def measure_request(req: Request, loaded: LoadedModel | None = None) -> RunRecord:
    """Measure a validated request, on ``loaded`` (which must be its model) or on a model built for it.

    Returns
    -------
    RunRecord
        As :func:`measure`; a failure to build the model is a failed record too.
    """
    base = RunRecord(**req.cell._asdict(), engine=req.protocol.engine, timing=req.protocol.timing,
                     weights=req.spec.weights, architecture=req.spec.architecture)
    if loaded is None:
        try:
            loaded = _build(req)
        except Exception as exc:  # noqa: BLE001 - a failed load is a failed run
            _recover(req.backend, exc)
            return base.failed(failures.classify_exception(exc), failures.message(exc))
    base = dataclasses.replace(base, n_params=loaded.n_params, architecture=loaded.architecture)
    return _measure_loaded(base, loaded, req)


def _recover(backend: Backend, exc: BaseException) -> None:
    if failures.classify_exception(exc) == failures.OOM:
        gc.collect()
        try:
            backend.empty_cache()
        except Exception:  # noqa: BLE001 - best effort after an OOM
            pass


def _measure_loaded(base: RunRecord, loaded: LoadedModel, req: Request) -> RunRecord:
    budget, p = req.budget, req.protocol
    clock = Clock(req.backend, p.timing, budget)
    monitor = MemoryMonitor(req.backend, p.memory, p.memory_interval)
    started = _dt.datetime.now(_dt.timezone.utc)
    status, error, tokens = "ok", "", 0
    try:
        gen = torch.Generator().manual_seed(req.seed)
        ids = torch.randint(0, loaded.spec.vocab_size, (1, req.prompt_len), generator=gen)
        ids = ids.to(req.backend.torch_device())
        monitor.begin()
        started = _dt.datetime.now(_dt.timezone.utc)
        with torch.inference_mode():
            tokens = _ENGINES[p.engine](loaded.module, ids, budget, req.cache, req.cache_impl, clock)
        latency, prefill, steps = clock.result()
    except Exception as exc:  # noqa: BLE001 - a failed run becomes a record
        monitor.abandon()
        _recover(req.backend, exc)
        status, error = failures.classify_exception(exc), failures.message(exc)
    try:
        figs = monitor.end()
    except Exception as exc:  # noqa: BLE001 - a broken probe fails the run, never the caller
        figs = MemoryFigures()
        if status == "ok":
            status, error = failures.ERROR, failures.message(exc)
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
        req = check_request(**kwargs)
        loaded = _build(req)
    for _ in range(n):
        measure(**kwargs, loaded=loaded)
    return loaded
