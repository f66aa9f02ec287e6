"""docs/http.md's LitServe recipe, checked for real: a LitServe server (its own ``OpenAISpec``) of the tiny
random-weight preset (tests/litserve_server.py), swept with ``--engine http --api chat``, plain and with a
fresh server per configuration (``--server-cmd``). Skipped where LitServe is not installed (it is not a
dependency). A server without ``/v1/models`` (LitServe's case) is checked without LitServe too, through the
test server's ``--no-models-route``.
"""

from __future__ import annotations

import importlib.util
import shlex
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from collector.__main__ import main
from collector.dataset import schema
from test_http_engine import ROOT, free_port, served, sweep_args

pytestmark = pytest.mark.process

LITSERVE = ROOT / "tests" / "litserve_server.py"
needs_litserve = pytest.mark.skipif(importlib.util.find_spec("litserve") is None,
                                    reason="litserve is not installed (pip install litserve): not a dependency")


def test_a_server_without_a_models_route_is_ready_by_its_health_route(tmp_path: Path) -> None:
    out = tmp_path / "h.nc"
    with served("--no-models-route") as (url, _):
        assert main(sweep_args(url, out, "--budgets", "2,4", "--trials", "2")) == 0
    ds = schema.load(out)
    assert np.all(ds.status.values == schema.STATUS["ok"])
    # named by its Server header and its /version route, as no /v1/models owner is there
    assert ds.attrs["server_software"] == "decode-regimes-test" and ds.attrs["server_version"] == "1.0-test"


@needs_litserve
def test_a_litserve_server_swept_with_engine_http(tmp_path: Path) -> None:
    import analysis

    out = tmp_path / "ls.nc"
    with served(script=LITSERVE) as (url, _):
        assert main(sweep_args(url, out, "--api", "chat", "--budgets", "2:24:2", "--trials", "3")) == 0
    ds = analysis.open_dataset(str(out))
    assert ds.attrs["server_software"] == "litserve" and ds.attrs["api"] == "chat"
    assert ds.attrs["endpoint"] == url.rsplit("/v1", 1)[0] and ds.attrs["prompt_tokenizer"] == "approximate (words)"
    assert np.all(ds.status.values == schema.STATUS["ok"])
    np.testing.assert_array_equal(ds.tokens.squeeze().values, np.broadcast_to(ds.budget.values[:, None], (12, 3)))
    np.testing.assert_array_equal(ds.server_completion_tokens.values, ds.tokens.values)  # LitServe's usage
    assert np.all(ds.server_prompt_tokens.values == 8)
    steps, latency = ds.step_time.sum("step").values.ravel(), ds.latency.values.ravel()
    assert np.all(steps <= latency + 1e-6) and np.all(latency - steps < 0.05 + 0.05 * latency)
    assert analysis.regimes(ds).attrs["summary"]  # every analysis reads it


@needs_litserve
def test_a_fresh_litserve_server_per_configuration(tmp_path: Path) -> None:
    port = free_port()
    cmd = f"{shlex.quote(sys.executable)} {shlex.quote(str(LITSERVE))} --model {{model}} --port {{port}}"
    out = tmp_path / "cell.nc"
    assert main(["run", "--engine", "http", "--api", "chat", "--endpoint", f"http://127.0.0.1:{port}/v1",
                 "--isolation", "cell", "--server-cmd", cmd, "--models", "tiny-gpt2", "--prompt-lens", "8",
                 "--budgets", "2,4", "--trials", "2", "--quiet", "-o", str(out)]) == 0
    ds = schema.load(out)
    assert np.all(ds.status.values == schema.STATUS["ok"])
    start = ds.server_start_time.values
    assert np.all(np.isfinite(start)) and len(np.unique(start)) == 2  # one LitServe server per cell
    with pytest.raises(OSError):  # and each was stopped, workers and all
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
