"""``collector diagnose``: from a regime to the follow-up sweeps that would say what moves it (issue 22).

Only the plan exists so far (:func:`make_plan`, ``python -m collector diagnose
RUN.nc --plan``): which sweeps, how many runs, how many minutes by the file's
own run times, within ``--max-minutes``. Running the plan is not implemented.
This package imports :mod:`analysis` (inside functions) to find the regimes;
analysis never imports it.
"""

from __future__ import annotations

from collector.diagnose.plan import QUESTIONS, Plan, Question, RegimePlan, make_plan

__all__ = ["QUESTIONS", "Plan", "Question", "RegimePlan", "make_plan"]
