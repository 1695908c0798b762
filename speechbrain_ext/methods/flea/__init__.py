"""FLEA (flea_hubert): continued pre-training of the SSL encoder on the target corpus
(:mod:`~speechbrain_ext.methods.flea.pretraining`) chained with the recipe's fine-tuning
(:mod:`~speechbrain_ext.methods.flea.chain`).

Imports: :mod:`speechbrain_ext.training` and the layers below it.
"""
