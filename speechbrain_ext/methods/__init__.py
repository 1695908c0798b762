"""Methods built from finished runs or chained runs: late fusion and ensembles
(:mod:`~speechbrain_ext.methods.fusion`, its command line in :mod:`~speechbrain_ext.methods.fusion_cli`) and
FLEA's continued pre-training chain (:mod:`speechbrain_ext.methods.flea`).

Imports: training and the layers below it; never serving or analysis.
"""
