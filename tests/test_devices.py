"""Device backends, event timers, memory probes and the sampler (cpu real; cuda and mps faked)."""

from __future__ import annotations

import math
import mmap
import sys
import threading
import time

import numpy as np
import pytest
import torch

from collector.measuring import clock, devices, measurement
from collector.measuring.devices import CPUBackend, CUDABackend, EventTimer, MPSBackend, get_backend
from collector.measuring.memory import HostReader, MemoryMonitor, MemorySampler, check_memory_mode
from collector.shared.errors import ConfigError, DeviceUnavailableError


# --------------------------------------------------------------------------- fakes
class _Log(list):
    def add(self, what: str) -> None:
        self.append(what)


class _FakeEvent:
    """Records on a fake device timeline that advances 1 ms per recorded event."""

    clock = [0.0]

    def __init__(self, log: _Log, enable_timing: bool = False) -> None:
        assert enable_timing, "events must be created with enable_timing=True"
        self.log = log
        self.t: float | None = None
        self.stream: object = None

    def record(self, stream: object = None) -> None:
        _FakeEvent.clock[0] += 1.0
        self.t = _FakeEvent.clock[0]
        self.stream = stream
        self.log.add("record")

    def synchronize(self) -> None:
        self.log.add("event_sync")

    def elapsed_time(self, end: "_FakeEvent") -> float:
        assert self.t is not None and end.t is not None, "elapsed_time on an unrecorded event"
        return end.t - self.t  # milliseconds


@pytest.fixture
def clock_log(monkeypatch):
    """Log host-clock reads (in measurement and devices) next to the fake device calls."""
    log = _Log()
    real = time.perf_counter

    def fake_now() -> float:
        log.add("clock")
        return real()

    monkeypatch.setattr(clock, "now", fake_now)
    monkeypatch.setattr(devices, "now", fake_now)
    return log


@pytest.fixture
def fake_mps(monkeypatch, clock_log):
    """torch.mps / torch.backends.mps replaced by fakes; tensors stay on cpu."""
    log = clock_log
    allocated = iter(range(1000, 10_000_000, 1000))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "synchronize", lambda: log.add("sync"))
    monkeypatch.setattr(torch.mps, "Event", lambda enable_timing=False: _FakeEvent(log, enable_timing))
    monkeypatch.setattr(torch.mps, "current_allocated_memory", lambda: next(allocated))
    monkeypatch.setattr(torch.mps, "driver_allocated_memory", lambda: 123_456_789)
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 8 << 30)
    monkeypatch.setattr(torch.mps, "empty_cache", lambda: log.add("empty_cache"))
    monkeypatch.setattr(MPSBackend, "torch_device", lambda self: torch.device("cpu"))
    return log


@pytest.fixture
def fake_cuda(monkeypatch, clock_log):
    """torch.cuda replaced by fakes (bf16 unsupported); tensors stay on cpu."""
    log = clock_log
    stream = object()
    fake = {
        "is_available": lambda: True,
        "synchronize": lambda: log.add("sync"),
        "Event": lambda enable_timing=False: _FakeEvent(log, enable_timing),
        "current_stream": lambda: stream,
        "reset_peak_memory_stats": lambda: log.add("reset_peak"),
        "memory_allocated": lambda: 1000,
        "max_memory_allocated": lambda: 5000,
        "memory_reserved": lambda: 8000,
        "is_bf16_supported": lambda: False,
        "empty_cache": lambda: None,
    }
    for name, value in fake.items():
        monkeypatch.setattr(torch.cuda, name, value)
    monkeypatch.setattr(CUDABackend, "torch_device", lambda self: torch.device("cpu"))
    log.stream = stream  # type: ignore[attr-defined]
    return log


def _start_index(log: list[str]) -> int:
    # the run starts at the first "sync" immediately followed by "clock"
    for i in range(len(log) - 1):
        if log[i] == "sync" and log[i + 1] == "clock":
            return i
    raise AssertionError(f"no sync+clock start in {log}")


def _after_run_start(log: list[str]) -> list[str]:
    return log[_start_index(log):]


# --------------------------------------------------------------------------- availability
def test_cpu_backend_is_available_and_uses_host_clock():
    backend = get_backend("cpu")
    assert isinstance(backend, CPUBackend)
    timer = EventTimer(backend, capacity=4)
    assert not timer.uses_events
    for _ in range(3):
        timer.record()
    elapsed = timer.elapsed()
    assert elapsed[0] == 0.0 and len(elapsed) == 3 and elapsed == sorted(elapsed)
    assert math.isnan(backend.device_peak()) and math.isnan(backend.device_driver())


def test_unavailable_mps_names_reason_and_choices(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(
        DeviceUnavailableError,
        match=r"device 'mps' is not available: torch\.backends\.mps\.is_available\(\) is False; choices here: cpu",
    ):
        get_backend("mps")


def test_unavailable_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match=r"device 'cuda' is not available: torch\.cuda\.is_available"):
        get_backend("cuda")


def test_unknown_device():
    with pytest.raises(DeviceUnavailableError, match=r"unknown device 'tpu'; choices: cpu, cuda, mps"):
        get_backend("tpu")


def test_unknown_dtype_name():
    with pytest.raises(ConfigError, match=r"unknown dtype 'float8'; choices: float32, float16, bfloat16"):
        CPUBackend().check_dtype("float8")


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_cpu_runs_each_dtype(dtype):
    CPUBackend().check_dtype(dtype)


def test_dtype_the_device_cannot_run(fake_cuda):
    with pytest.raises(ConfigError, match=r"dtype 'bfloat16' cannot run on device 'cuda'.*choices here: float32, float16"):
        get_backend("cuda").check_dtype("bfloat16")


def test_dtype_matmul_failure_becomes_config_error(monkeypatch):
    def broken(self):  # a device on which no tensor can be made
        raise RuntimeError("no kernel for this dtype")

    monkeypatch.setattr(CPUBackend, "torch_device", broken)
    with pytest.raises(ConfigError, match=r"dtype 'float16' cannot run on device 'cpu': no kernel"):
        CPUBackend().check_dtype("float16")


def test_unsupported_dtype_refused_before_loading(fake_cuda, monkeypatch):
    monkeypatch.setattr(measurement, "build_model", _must_not_load)
    with pytest.raises(ConfigError, match=r"'bfloat16'"):
        measurement.measure(model="tiny-gpt2", device="cuda", budget=2, dtype="bfloat16")


def _must_not_load(*args, **kwargs):
    raise AssertionError("a model was loaded before the input was validated")


# --------------------------------------------------------------------------- mps fakes
def test_mps_probes_read_torch_mps(fake_mps):
    backend = get_backend("mps")
    assert isinstance(backend, MPSBackend)
    assert backend.device_allocated() == 1000
    assert backend.device_driver() == 123_456_789
    assert backend.device_limit() == 8 << 30
    assert math.isnan(backend.device_peak())  # mps keeps no peak: it is sampled


def test_mps_step_timing_syncs_before_every_clock_read(fake_mps):
    rec = measurement.measure(model="tiny-gpt2", device="mps", budget=5, prompt_len=4, timing="step")
    assert rec.ok and rec.tokens == 5 and len(rec.step_times) == 5
    run = _after_run_start(list(fake_mps))
    clocks = [i for i, what in enumerate(run) if what == "clock"]
    assert len(clocks) == 1 + 5 + 1  # start, one per token, end
    assert all(run[i - 1] == "sync" for i in clocks)
    assert "record" not in run


def test_mps_ends_timing_syncs_at_start_first_token_and_end(fake_mps):
    rec = measurement.measure(model="tiny-gpt2", device="mps", budget=6, prompt_len=4, timing="ends")
    assert rec.ok and rec.step_times == ()
    run = _after_run_start(list(fake_mps))
    timed = run[: max(i for i, w in enumerate(run) if w == "clock") + 1]
    assert timed == ["sync", "clock", "sync", "clock", "sync", "clock"]


def test_mps_events_recorded_per_token_and_one_sync(fake_mps):
    rec = measurement.measure(model="tiny-gpt2", device="mps", budget=7, prompt_len=4, timing="events")
    assert rec.ok and rec.tokens == 7
    run = _after_run_start(list(fake_mps))
    assert run[:3] == ["sync", "clock", "record"]
    assert run.count("record") == 7 + 1
    # one device sync and one clock read at the end, then one wait on the last event
    assert run[-3:] == ["sync", "clock", "event_sync"]
    assert run.count("sync") == 2
    # the fake device timeline advances 1 ms per event
    np.testing.assert_allclose(rec.step_times, [1e-3] * 7)
    assert rec.prefill_time == pytest.approx(1e-3)
    assert rec.prefill_time + rec.decode_time == pytest.approx(rec.latency, abs=1e-12)


def test_mps_memory_peak_is_the_largest_sampled_allocation(fake_mps):
    rec = measurement.measure(model="tiny-gpt2", device="mps", budget=3, prompt_len=4, memory="endpoints")
    # the fake's current_allocated_memory grows by 1000 per read: the end read is the peak
    assert rec.mem_device_peak >= 2000 and rec.mem_device_peak % 1000 == 0
    assert rec.mem_device_driver == 123_456_789
    assert rec.mem_rss_peak > 0 and rec.mem_sys_available_min > 0 and rec.swap_used >= 0


def test_mps_out_of_memory_becomes_oom_record(fake_mps, monkeypatch):
    loaded = measurement.load_model(model="tiny-gpt2", device="mps")

    def oom(*args, **kwargs):
        raise RuntimeError("MPS backend out of memory (MPS allocated: 8.00 GB)")

    monkeypatch.setattr(loaded.module, "forward", oom)
    rec = measurement.measure(model="tiny-gpt2", device="mps", budget=3, loaded=loaded)
    assert rec.status == "oom" and "MPS backend out of memory" in rec.error
    assert math.isnan(rec.latency) and rec.step_times == ()
    assert "empty_cache" in fake_mps


# --------------------------------------------------------------------------- cuda fakes
def test_cuda_events_are_recorded_on_the_current_stream(fake_cuda, monkeypatch):
    streams = []
    real_record = _FakeEvent.record

    def record(self, stream=None):
        streams.append(stream)
        real_record(self, stream)

    monkeypatch.setattr(_FakeEvent, "record", record)
    rec = measurement.measure(model="tiny-gpt2", device="cuda", budget=4, prompt_len=4, timing="events")
    assert rec.ok and len(streams) == 5
    assert all(s is fake_cuda.stream for s in streams)


def test_cuda_peak_is_reset_before_the_run_and_read_after(fake_cuda):
    rec = measurement.measure(model="tiny-gpt2", device="cuda", budget=3, prompt_len=4, timing="ends")
    run = list(fake_cuda)
    assert run.count("reset_peak") == 1 and run.index("reset_peak") < _start_index(run)
    assert rec.mem_device_peak == 5000 and rec.mem_device_driver == 8000


# --------------------------------------------------------------------------- memory
#: Longest wait for a sampler thread's reads: only a hung thread takes this long (a loaded machine may not run it
#: for a while, so the tests wait for the reads themselves, not for a time).
SAMPLER_WAIT = 60.0


class _SpikyBackend(CPUBackend):
    has_device_memory = True  # like mps: no allocator peak, so the sampler reads it

    def __init__(self) -> None:
        self.reads = 0
        self.five_reads = threading.Event()

    def device_allocated(self) -> float:
        self.reads += 1
        if self.reads >= 5:
            self.five_reads.set()
        return 9e9 if self.reads == 3 else 1e6


def _more_samples(sampler: MemorySampler, n: int) -> None:
    """Return once ``sampler``'s thread has taken ``n`` more samples than it has now."""
    done, target, sample = threading.Event(), sampler.samples + n, sampler.sample

    def counted() -> None:
        sample()
        if sampler.samples >= target:
            done.set()

    sampler.sample = counted
    try:
        assert done.wait(SAMPLER_WAIT), f"the sampler took {sampler.samples - target + n} of {n} samples"
    finally:
        sampler.sample = sample


def test_sampler_records_a_peak():
    backend = _SpikyBackend()
    with MemorySampler(backend, interval=0.002) as sampler:
        assert backend.five_reads.wait(SAMPLER_WAIT), f"the sampler read {backend.reads} times"
    assert sampler.samples >= 5
    assert sampler.device_peak == 9e9
    assert sampler.rss_peak > 0 and sampler.sys_available_min > 0


def test_sampled_mode_catches_a_transient_host_allocation():
    size = 100 << 20
    monitors = {mode: MemoryMonitor(CPUBackend(), mode, interval=0.002) for mode in ("endpoints", "sampled")}
    figures = {}
    for mode, mon in monitors.items():
        mon.begin()
        # fresh pages from the kernel, touched: resident (an allocator may reuse memory an earlier test freed
        # but kept, and then the resident size does not move)
        block = mmap.mmap(-1, size)
        block.write(b"\1" * size)
        sampler = mon._sampler
        if sampler is not None:  # the sampler sees the block (endpoints mode reads only at begin and end)
            _more_samples(sampler, 5)
        block.close()
        figures[mode] = mon.end()
    assert figures["sampled"].samples > figures["endpoints"].samples
    assert figures["sampled"].rss_peak - figures["endpoints"].rss_peak > 0.5 * size


def test_sampler_leaves_cuda_style_peaks_to_the_allocator():
    class Tracking(_SpikyBackend):
        keeps_peak = True

    backend = Tracking()
    sampler = MemorySampler(backend, interval=0.001)
    sampler.sample()
    assert backend.reads == 0 and math.isnan(sampler.device_peak) and sampler.rss_peak > 0


def test_host_reader_agrees_with_psutil():
    import psutil

    with HostReader() as reader:
        if sys.platform.startswith("linux"):
            assert reader.fast
        rss, avail = reader.rss(), reader.available()
        ref_rss, ref_avail = psutil.Process().memory_info().rss, psutil.virtual_memory().available
    assert rss == pytest.approx(ref_rss, rel=0.1)
    assert avail == pytest.approx(ref_avail, rel=0.1)
    assert not reader.fast and reader.rss() > 0  # closed: falls back to psutil


def test_memory_off_gives_nan():
    mon = MemoryMonitor(CPUBackend(), "off")
    mon.begin()
    figs = mon.end()
    assert math.isnan(figs.rss_peak) and figs.samples == 0


@pytest.mark.parametrize(
    ("mode", "interval", "match"),
    [
        ("always", 0.01, r"unknown memory mode 'always'; choices: off, endpoints, sampled"),
        ("sampled", 0, r"memory_interval must be a positive number of seconds, got 0"),
        ("sampled", float("nan"), r"memory_interval must be a positive number of seconds, got nan"),
    ],
)
def test_bad_memory_settings(mode, interval, match):
    with pytest.raises(ConfigError, match=match):
        check_memory_mode(mode, interval)
