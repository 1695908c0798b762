"""Shared building blocks of the paralinguistics recipe collection.

Modules: :mod:`audio` (loading, resampling), :mod:`metrics` (UAR, WA, ...),
:mod:`pooling`, :mod:`dataio` (datasets, label encoders), :mod:`brain` (the
shared Brain logic), :mod:`reports` (test reports), :mod:`inference`
(pretrained-model interfaces), :mod:`hub` (export) and :mod:`testing`
(tiny offline models).
"""

__version__ = "0.1.0"
