"""Analyses of trained models (w2v2_info_recovery, segment_triplet, supcon_knn figures): ``python -m speechbrain_ext.analysis --help``."""
