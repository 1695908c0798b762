"""The pretrained-model interfaces under their user-facing name::

    from speechbrain_ext.inference import EmotionClassifier, EmotionRegressor

The code lives in :mod:`speechbrain_ext.serving.inference`.
"""

from speechbrain_ext.serving.inference import EmotionClassifier, EmotionRegressor, Segment

__all__ = ["EmotionClassifier", "EmotionRegressor", "Segment"]
