"""Data in: audio loading and resampling, the one manifest reader (``{data_root}`` filled once), datasets and
label encoders, length-bucketed batching, augmentation, Whisper transcription, and packing local model folders.

Imports: :mod:`speechbrain_ext.utils` and :mod:`speechbrain_ext.evaluation`; never the model, training,
method, serving or analysis layers.
"""
