"""Exception classes of the analysis package."""

from __future__ import annotations

__all__ = ["AnalysisError", "InputError"]


class AnalysisError(Exception):
    """Base class of every error the analysis raises on purpose."""


class InputError(AnalysisError, ValueError):
    """The dataset cannot be analysed as asked (missing variable, too few budgets, ...)."""
