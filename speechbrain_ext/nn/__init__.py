"""Neural building blocks, each a ``torch.nn.Module`` or a function over tensors: SSL encoders with layer
selection, the transcript encoder, pooling (mean, segment, attention), losses (segment NLL, triplet, SupCon),
the classifier heads, the Bayesian linear layer, kNN interpolation and MC predictive summaries.

Imports: :mod:`speechbrain_ext.utils`, :mod:`speechbrain_ext.evaluation` and :mod:`speechbrain_ext.data`;
nothing that trains, serves or analyses.
"""
