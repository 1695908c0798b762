"""Analyses of trained models (w2v2_info_recovery, segment_triplet, supcon_knn figures), one verb per module:
``python -m speechbrain_ext.analysis --help``. Finished runs are found and read by
:mod:`~speechbrain_ext.analysis.runs`.

Imports: every layer below (utils, evaluation, data, nn, training, methods, serving); nothing imports it but
the recipes' ``run_folds.py`` (the fold figures) and the command line.
"""
