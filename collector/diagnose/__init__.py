"""``collector diagnose``: from a regime to the follow-up sweeps that say what moves it (issue 22).

:func:`diagnose` (``python -m collector diagnose RUN.nc``) plans the follow-up
sweeps of every regime :func:`analysis.regimes` finds in the file
(:func:`make_plan`; ``--plan`` shows it), runs them with the sweep runner, as
many trials per cell as its sequential test needs, within ``max_minutes``,
and judges each factor: moved, vanished, stayed or not tested
(:class:`Verdict`). The modules: :mod:`~collector.diagnose.plan` (the
questions and their cost), :mod:`~collector.diagnose.target` (what the file
says of a regime), :mod:`~collector.diagnose.sprt` (Wald's test of one cell),
:mod:`~collector.diagnose.evidence` (one condition's sides and effect),
:mod:`~collector.diagnose.sweeps` (how it measures; one question's sweep and journal),
:mod:`~collector.diagnose.execute` (the questions in order, resumable),
:mod:`~collector.diagnose.verdict` (the table), :mod:`~collector.diagnose.diagnosis`
(all of it, and the dataset). This package imports :mod:`analysis` (inside
functions) to find the regimes; analysis never imports it.
"""

from __future__ import annotations

from collector.diagnose.diagnosis import Diagnosis, diagnose, study_runs
from collector.diagnose.execute import Settings
from collector.diagnose.plan import QUESTIONS, Plan, Question, RegimePlan, make_plan
from collector.diagnose.verdict import VERDICTS, Verdict

__all__ = ["QUESTIONS", "VERDICTS", "Diagnosis", "Plan", "Question", "RegimePlan", "Settings", "Verdict", "diagnose",
           "make_plan", "study_runs"]
