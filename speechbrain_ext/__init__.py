"""Shared building blocks of the paralinguistics recipe collection.

Modules: :mod:`audio` (loading, resampling), :mod:`metrics` (UAR, WA,
Spearman, CCC, bootstrap intervals, agreement), :mod:`pooling` (mean,
segment and attention pooling), :mod:`losses` (segment NLL, triplet,
SupCon, multi-task), :mod:`bayesian` (Bayesian linear layer),
:mod:`uncertainty` (MC predictive summaries, calibration), :mod:`encoders`
(SSL encoders with layer selection), :mod:`knn` (kNN interpolation),
:mod:`manifests` (the one manifest reader), :mod:`hyperparams` (a YAML's
plain values, nothing built), :mod:`dataio` (datasets, label encoders),
:mod:`augment` (pitch shift, locally generated noise and room responses), :mod:`brain` (the Brain of
every method), :mod:`recipe` (a recipe run: preparation, training, test,
Bayesian and kNN stages), :mod:`folds` (the cross-validation runner),
:mod:`reports` (test reports), :mod:`inference` (pretrained-model
interfaces), :mod:`hub` (export) and :mod:`testing` (tiny offline models).
"""

__version__ = "0.1.0"
