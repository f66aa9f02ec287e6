"""A regimes result as a tidy pandas table: one row per regime (:func:`regime_table`).

:func:`analysis.regimes` returns a Dataset over every series dim x budget (or x segment), the right shape
for xarray and the wrong one for a reader: ``reg.to_dataframe()`` is one row per cell of the outer product of
every factor. :func:`regime_table` is what a reader wants to filter, sort and save: one row per regime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from analysis.core.labels import scalar
from analysis.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["REGIME_COLUMNS", "regime_table"]

#: The columns of :func:`regime_table` after the series factors, in order.
REGIME_COLUMNS: tuple[str, ...] = (
    "first_budget", "last_budget", "kind", "effect", "effect_lo", "effect_hi", "q", "mde", "mde_4",
    "confounded", "reproducible", "start_lo", "start_hi", "end_lo", "end_hi", "n_cells",
)
#: Segment variable of the result behind each column (the budget bounds have their own names there).
_SOURCE = {"first_budget": "start", "last_budget": "end"}
_PER_SERIES = ("mde", "mde_4")
_NEEDED = ("kind", "segment_anomalous", "start", "end", "effect", "effect_lo", "effect_hi", "q", "confounded")


def regime_table(reg: xr.Dataset, *, every_segment: bool = False) -> pd.DataFrame:
    """The regimes of a :func:`analysis.regimes` result, one row each, as a pandas DataFrame.

    Parameters
    ----------
    reg
        The Dataset returned by :func:`analysis.regimes`.
    every_segment
        Also list the normal stretches between regimes (``kind == "normal"``) and the candidates that are
        not regimes (a time-confounded step keeps its kind, with ``confounded`` True); default: only the
        anomalous segments.

    Returns
    -------
    pandas.DataFrame
        One row per regime, in series order then budget order, with a default integer index. Columns:

        - one per series factor (``model``, ``device``, ``cache``, ... and ``origin`` or ``experiment``
          where the data has them; for several files stacked on ``series``, one per level), holding the
          series' value;
        - ``first_budget``, ``last_budget``: the regime's first and last budget (measured budgets);
        - ``kind``: ``slow`` or ``fast`` (``normal`` with ``every_segment``);
        - ``effect``, ``effect_lo``, ``effect_hi``: median latency / expected inside, and its 95 % CI;
        - ``q``: the p-value corrected for every test made (Benjamini-Hochberg);
        - ``mde``, ``mde_4``: the smallest slowdown the series could have shown over one (four) budgets
          with 80 % power (the same on every row of a series; NaN: too few budgets, inf: time-confounded);
        - ``confounded``: budget and execution time cannot be separated;
        - ``reproducible``: share of trials that show the regime on their own (NaN with one trial);
        - ``start_lo``, ``start_hi``, ``end_lo``, ``end_hi``: 95 % intervals of the first and last budget;
        - ``n_cells``: measured cells inside.

        No series or budget the data did not measure appears.

    Raises
    ------
    InputError
        When ``reg`` is not a regimes result (a variable of it is missing).

    Examples
    --------
    >>> reg = analysis.regimes(analysis.open_dataset("mps-m3max-study"))   # doctest: +SKIP
    >>> analysis.regime_table(reg).sort_values("effect", ascending=False)  # doctest: +SKIP
    """
    import pandas as pd

    if not isinstance(reg, xr.Dataset):
        raise InputError(f"regime_table(): reg must be the xarray.Dataset returned by analysis.regimes(), "
                         f"got {type(reg).__name__!r}")
    missing = [v for v in (*_NEEDED, *_PER_SERIES) if v not in reg.data_vars]
    if missing or "segment" not in reg["kind"].dims:
        raise InputError(f"regime_table(): reg lacks {missing or ['segment dim']!r}; pass the Dataset returned by "
                         "analysis.regimes()")
    dims = [str(d) for d in reg["kind"].dims if d != "segment"]
    order = [*dims, "segment"]
    seg = {name: np.asarray(reg[name].transpose(*order).values) for name in
           {*_NEEDED, *(_SOURCE.get(c, c) for c in REGIME_COLUMNS if c not in _PER_SERIES)} if name in reg}
    per_series = {name: np.asarray(reg[name].transpose(*dims).values) for name in _PER_SERIES}
    kind = seg["kind"].astype(str)
    chosen = (kind != "") if every_segment else seg["segment_anomalous"].astype(bool)
    idx = np.argwhere(chosen)  # C order: series by series, segments in budget order
    rows: dict[str, list] = {}
    for d in dims:
        index = reg.indexes.get(d)
        if isinstance(index, pd.MultiIndex):  # stacked series (several files): a column per level
            for name in index.names:
                values = index.get_level_values(name)
                rows[str(name)] = [scalar(values[i]) for i in idx[:, dims.index(d)]]
            continue
        values = reg[d].values
        rows[d] = [scalar(values[i]) for i in idx[:, dims.index(d)]]
    for col in REGIME_COLUMNS:
        if col in _PER_SERIES:
            rows[col] = [float(per_series[col][tuple(i[:-1])]) for i in idx]
            continue
        src = _SOURCE.get(col, col)
        if src not in seg:
            rows[col] = [np.nan] * len(idx)
            continue
        rows[col] = [scalar(seg[src][tuple(i)]) for i in idx]
    frame = pd.DataFrame(rows, columns=list(rows))
    for col in ("first_budget", "last_budget"):  # a segment's bounds are always measured budgets
        frame[col] = frame[col].astype(np.int64)
    frame["kind"] = frame["kind"].astype(str)
    frame["confounded"] = frame["confounded"].astype(bool)
    return frame
