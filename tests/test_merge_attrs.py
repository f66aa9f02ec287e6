"""collector merge keeps what the inputs say: model names of any length, and a readable provenance."""

from __future__ import annotations

import pytest
import xarray as xr

from collector.__main__ import main


def _sweep(path, model: str, seed: int) -> None:
    assert main(["run", "--devices", "sim", "--models", model, "--budgets", "4:12:4", "--trials", "2",
                 "--cache", "on", "--seed", str(seed), "--quiet", "-o", str(path)]) == 0


@pytest.mark.process
def test_merge_keeps_long_model_names_and_records_its_command(tmp_path):
    """A merge of 'distilgpt2' with shorter names once stored 'distilgp' (the coordinate took the
    first shorter input's string width); its command attr held this machine's path to __main__.py."""
    a, b, out = tmp_path / "a.nc", tmp_path / "b.nc", tmp_path / "m.nc"
    _sweep(a, "distilgpt2", 1)
    _sweep(b, "gpt2", 2)
    assert main(["merge", str(b), str(a), "--title", "two models", "-o", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        assert sorted(ds["model"].values.tolist()) == ["distilgpt2", "gpt2"]
        assert ds.attrs["title"] == "two models"
        assert ds.attrs["command"].startswith("python -m collector merge ")
        assert "__main__" not in ds.attrs["command"]
