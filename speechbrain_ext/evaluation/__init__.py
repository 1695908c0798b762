"""Scoring: the metrics of the papers' tables (UAR, WA, mean Spearman, CCC, bootstrap intervals, agreement;
:mod:`~speechbrain_ext.evaluation.metrics`), the test reports a run writes (JSON, Markdown, CSV;
:mod:`~speechbrain_ext.evaluation.reports`) and their plots (:mod:`~speechbrain_ext.evaluation.plots`).

Imports: :mod:`speechbrain_ext.utils` only; every other layer may import this one.
"""
