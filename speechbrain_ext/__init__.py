"""Shared building blocks of the paralinguistics recipe collection, in sub-packages by role.

Lower layers never import higher ones (``tests/test_layout.py`` checks the graph drawn from the code):

- :mod:`~speechbrain_ext.utils`, :mod:`~speechbrain_ext.testing`: file writes, run lock, plain YAML values;
  tiny offline models.
- :mod:`~speechbrain_ext.evaluation`: metrics and test reports.
- :mod:`~speechbrain_ext.data`: audio, manifests, datasets, batching, augmentation, transcription.
- :mod:`~speechbrain_ext.nn`: encoders, pooling, losses, heads, Bayesian layer, kNN.
- :mod:`~speechbrain_ext.training`: recipe runs, Brains, tasks, post-training stages, checkpoints, DDP, folds.
- :mod:`~speechbrain_ext.methods`: fusion and FLEA.
- :mod:`~speechbrain_ext.serving`: inference interfaces, classification, ONNX, hub export, demo.
- :mod:`~speechbrain_ext.analysis`: analyses of trained models (``python -m speechbrain_ext.analysis``).

The top-level ``classify``, ``hub``, ``fuse``, ``transcribe``, ``demo`` and ``inference`` modules keep the
commands' and the interfaces' names; their code lives in the sub-packages.
"""

__version__ = "0.1.0"
