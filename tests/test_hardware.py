"""One device declaration (collector.shared.hardware): the factors, the backends, the environment and the simulator
derive from it and agree with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collector.dataset import schema
from collector.measuring import devices, environment
from collector.shared import factors, hardware, sim


def test_the_factors_take_their_choices_from_the_declaration() -> None:
    assert factors.BY_NAME["device"].choices == hardware.DEVICES
    assert factors.BY_NAME["dtype"].choices == hardware.DTYPES
    assert factors.BY_NAME["dtype"].default == hardware.DTYPES[:1]
    assert schema.DEVICES == hardware.DEVICES and schema.DTYPES == hardware.DTYPES
    for name in hardware.DEVICES:
        assert name in factors.BY_NAME["device"].help


def test_every_real_device_has_a_backend_and_no_other() -> None:
    assert devices.DEVICES == hardware.REAL_DEVICES
    assert devices.DTYPES == hardware.DTYPES
    assert set(devices._BACKENDS) == set(hardware.REAL_DEVICES)
    for name, cls in devices._BACKENDS.items():
        assert cls.name == name
    assert [d.name for d in hardware.DEVICE_TABLE if not d.real] == ["sim", "http"]


def test_every_dtype_is_a_torch_dtype() -> None:
    for name in hardware.DTYPES:
        assert devices.torch_dtype(name) is getattr(torch, name)


def test_the_simulator_knows_every_device_and_dtype() -> None:
    assert list(sim.DEVICE_SPEED) == list(hardware.DEVICES)
    model = sim.LatencyModel()
    rng = np.random.default_rng(0)
    for device in hardware.DEVICES:
        for dtype in hardware.DTYPES:
            out = model.simulate_runs(model="tiny-gpt2", device=device, dtype=dtype, cache=True,
                                      prompt_len=np.array([8]), budget=np.array([4]), position=np.array([0.0]),
                                      rng=rng)
            assert np.all(np.isfinite(out["latency"])) and np.all(out["latency"] > 0)


@pytest.mark.parametrize(
    ("here", "best"),
    [(["cpu"], "cpu"), (["cpu", "cuda"], "cuda"), (["cpu", "mps"], "mps"), (["cpu", "cuda", "mps"], "mps")],
)
def test_best_device_follows_the_declared_preference(monkeypatch: pytest.MonkeyPatch, here: list[str],
                                                     best: str) -> None:
    monkeypatch.setattr(environment, "available_devices", lambda **_: list(here))
    assert environment.best_device() == best
    assert hardware.PREFERENCE == ("mps", "cuda", "cpu")  # cpu, always available, comes last
