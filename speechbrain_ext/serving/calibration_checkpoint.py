"""The calibration as a loadable of SpeechBrain's ``Pretrainer``: what an exported ``hyperparams.yaml`` builds.

Kept apart from :mod:`speechbrain_ext.serving.calibration` so that the ONNX
loader, which reads the same calibration from the graph's metadata, runs
without importing speechbrain.
"""

from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, mark_as_transfer, register_checkpoint_hooks

from speechbrain_ext.serving.calibration import ModelCalibration


@register_checkpoint_hooks
class PretrainedCalibration(ModelCalibration):
    """:class:`~speechbrain_ext.serving.calibration.ModelCalibration` with the checkpoint hooks the Pretrainer calls.

    Example
    -------
    >>> PretrainedCalibration().document is None
    True
    """

    @mark_as_saver
    def _save_hook(self, path) -> None:
        self.save(path)

    @mark_as_loader
    def _load_hook(self, path, end_of_epoch: bool = False) -> None:
        self.load(path)

    @mark_as_transfer
    def _transfer_hook(self, path) -> None:
        self.load(path)
