"""Using a trained model: the pretrained-model interfaces (``EmotionClassifier``, ``EmotionRegressor`` in
:mod:`~speechbrain_ext.serving.inference`, their shared base in :mod:`~speechbrain_ext.serving.model_interface`,
the reading of many files in :mod:`~speechbrain_ext.serving.batches`), the classification command line, ONNX
export and runtime, the hub export (:mod:`speechbrain_ext.serving.export`: model card, folders, publishing),
the demo and the demo page (:mod:`~speechbrain_ext.serving.app`, Gradio).

Imports: every layer below (utils, evaluation, data, nn, training, methods); never analysis.
"""
