"""Training: a recipe run from the command line (:mod:`~speechbrain_ext.training.recipe`), the Brain every
method shares (:mod:`~speechbrain_ext.training.recipe_brain`) and the methods' Brains
(:mod:`~speechbrain_ext.training.brains`), tasks (labels, loss, selection metric), the stages run after
training (Bayesian head, embeddings, kNN), checkpoints safe under DDP, the process group, and the fold runner.

Imports: the layers below (utils, evaluation, data, nn); never methods, serving or analysis (the fold runner
takes its figures as a callback).
"""
