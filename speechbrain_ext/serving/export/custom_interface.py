"""Interface module for SpeechBrain's ``foreign_class``, copied as it is into every exported model folder.

    from speechbrain.inference.interfaces import foreign_class
    model = foreign_class(source="org/model", pymodule_file="custom_interface.py", classname="EmotionClassifier")

``classname`` is ``EmotionClassifier`` for a classifier and ``EmotionRegressor``
for a regressor (the folder's ``README.md`` gives the line for its model).
The classes live in the ``speechbrain_ext`` package of the paralinguistics
recipe collection; this file re-exports them so that SpeechBrain can load
them by name.
"""

try:
    from speechbrain_ext.serving.inference import EmotionClassifier, EmotionRegressor, Segment
except ImportError as err:  # pragma: no cover - a message for users without the package
    raise ImportError(
        "This model needs the speechbrain_ext package of the paralinguistics recipe collection: "
        "clone the collection and run `pip install -e .` in it."
    ) from err

__all__ = ["EmotionClassifier", "EmotionRegressor", "Segment"]
