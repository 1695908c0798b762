"""Data in: audio loading and resampling (and a cache of the resampled signals), the one manifest reader
(``{data_root}`` filled once), datasets and label encoders, loader options fitted to the machine,
length-bucketed batching, augmentation, Whisper transcription, and packing local model folders.

Imports: :mod:`speechbrain_ext.utils` and :mod:`speechbrain_ext.evaluation`; never the model, training,
method, serving or analysis layers.
"""
