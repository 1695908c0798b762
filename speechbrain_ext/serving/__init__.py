"""Using a trained model: the pretrained-model interfaces (``EmotionClassifier``, ``EmotionRegressor``), the
classification command line, ONNX export and runtime, the hub export (model card, folders, publishing) and the
demo.

Imports: every layer below (utils, evaluation, data, nn, training, methods); never analysis.
"""
