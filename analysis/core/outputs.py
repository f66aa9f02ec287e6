"""Result variables declared once per analysis (like ``collector.dataset.schema.VARIABLES``), and the Dataset
built from them.

Each public analysis declares the variables it returns in a table: name ->
:class:`ResultVar` (which dims it has after the series dims, its
``long_name`` and its units). The function computes plain arrays keyed by
those names and builds its result with :func:`wrap`; a test checks that the
numpydoc ``Returns`` section of each function names every variable of its table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from analysis.core.common import Series

__all__ = ["SERIES", "ResultVar", "returns_names", "wrap"]

#: The :attr:`ResultVar.over` of a variable over the series dims alone.
SERIES = "series"


@dataclass(frozen=True)
class ResultVar:
    """One result variable.

    Attributes
    ----------
    over
        Which dims the variable has after the series dims: a key of the
        function's dims map (e.g. ``"budget"``, ``"segment"``, ``"series"``).
    long_name
        Its ``long_name`` attr; ``{field}`` placeholders are filled in from the
        settings of the call (see :meth:`attrs`).
    units
        Its ``units`` attr (placeholders allowed), or None for no ``units`` attr.
    """

    over: str
    long_name: str
    units: str | None = None

    def attrs(self, **fields: Any) -> dict[str, str]:
        """The variable's attrs with ``fields`` filled into the placeholders."""
        out = {"long_name": self.long_name.format(**fields)}
        if self.units is not None:
            out["units"] = self.units.format(**fields)
        return out


def wrap(
    table: Mapping[str, ResultVar],
    values: Mapping[str, np.ndarray],
    series: Series,
    over: Mapping[str, tuple[Sequence[str], Mapping[str, Any] | None] | Series],
    **fields: Any,
) -> dict[str, xr.DataArray]:
    """Every variable of ``table``, in its order, wrapped onto the series dims.

    ``values[name]`` has shape ``(n_series, *extra)``; ``over`` maps each
    :attr:`ResultVar.over` other than :data:`SERIES` to the extra dims and
    their coordinates, or to other series to wrap onto (values
    ``(n_other_series,)``); ``fields`` fill the placeholders of the attrs.
    """
    over = {SERIES: ((), None), **over}

    def one(name: str, v: ResultVar) -> xr.DataArray:
        spec = over[v.over]
        if isinstance(spec, Series):
            return spec.wrap(values[name], attrs=v.attrs(**fields))
        return series.wrap(values[name], *spec, v.attrs(**fields))

    return {name: one(name, v) for name, v in table.items()}


_RETURNS = re.compile(r"^\s*Returns\n\s*-+\n(.*?)(?:^\s*[A-Z][a-z]+\n\s*-+\n|\Z)", re.S | re.M)


def returns_names(doc: str | None) -> set[str]:
    """The names quoted as ````name```` in the ``Returns`` section of a numpydoc docstring."""
    m = _RETURNS.search(doc or "")
    return set(re.findall(r"``([A-Za-z_][A-Za-z0-9_]*)``", m.group(1))) if m else set()
