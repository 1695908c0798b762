"""Exporting a trained run as a stand-alone model folder and publishing it (``python -m speechbrain_ext.hub``):
the run read from its YAML (:mod:`~speechbrain_ext.serving.export.run`, its nodes in
:mod:`~speechbrain_ext.serving.export.nodes`), the inference ``hyperparams.yaml``
(:mod:`~speechbrain_ext.serving.export.document`), the model card (:mod:`~speechbrain_ext.serving.export.card`),
the folder of a run or a late fusion with its ONNX graph (:mod:`~speechbrain_ext.serving.export.export`), the upload
(:mod:`~speechbrain_ext.serving.export.publish`), the command line (:mod:`~speechbrain_ext.serving.export.cli`) and
the ``custom_interface.py`` generated into every folder from the package's own modules, so that it loads with
SpeechBrain alone (:mod:`~speechbrain_ext.serving.export.standalone`).

Imports: the rest of serving (the interfaces) and every layer below it; never analysis, nor the top-level entry
modules.
"""
