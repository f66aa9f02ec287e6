"""The stable public path of the dataset contract: :mod:`collector.dataset.schema` under its first name.

Scripts outside the package import ``collector.schema`` (``SCHEMA_VERSION``, ``SchemaError``,
``validate(ds)``, ``save(ds, path)``, ``load``, ...); the module itself lives in
:mod:`collector.dataset` beside the other file modules. Code inside the package imports
:mod:`collector.dataset.schema`; this module only re-exports its public names (``__all__``).
"""

from __future__ import annotations

from collector.dataset.schema import *  # noqa: F403
from collector.dataset.schema import __all__ as __all__
