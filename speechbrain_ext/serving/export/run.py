"""A finished recipe run as the export reads it: its model node, the weights of its selected checkpoint, its inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from speechbrain_ext.serving.export.nodes import BAYES_STAGE, node_class
from speechbrain_ext.training.tasks import best_checkpoint
from speechbrain_ext.utils.hyperparams import plain_values


@dataclass
class RunModel:
    """What a training run exports: its model node, where its weights are, and what it was trained on."""

    folder: Path
    values: dict
    node: object
    save_folder: Path

    @classmethod
    def read(cls, train_hparams: str | Path, stage_one: bool = False) -> RunModel:
        """The run's final model: the enabled Bayesian stage's, else ``model`` (``stage_one``: always ``model``)."""
        train_hparams = Path(train_hparams)
        if not train_hparams.is_file():
            raise FileNotFoundError(f"{train_hparams}: no such file (give the hyperparams.yaml of a recipe run)")
        values = plain_values(train_hparams)
        missing = [k for k in ("model", "task", "save_folder") if k not in values]
        if missing:
            raise KeyError(f"{train_hparams}: missing {missing}; is this the hyperparams.yaml of a recipe run?")
        node, save_folder = values["model"], values["save_folder"]
        for stage in values.get("post_training") or []:
            if not stage_one and node_class(stage) == BAYES_STAGE and stage.get("enabled", True) is not False:
                node, save_folder = stage["model"], stage["save_folder"]
        return cls(Path(str(values.get("output_folder", train_hparams.parent))), values, node, Path(str(save_folder)))

    def state_dict(self, checkpoint: str | Path | None = None) -> dict:
        """The weights of the selected (or given) checkpoint."""
        import torch

        if checkpoint is None:
            found = best_checkpoint(self.save_folder)
            if found is None:
                raise FileNotFoundError(
                    f"{self.save_folder}: no checkpoint with a selection metric; train the run first"
                )
            checkpoint = found.path
        return torch.load(Path(checkpoint) / "model.ckpt", map_location="cpu")

    @property
    def inputs(self) -> list[str]:
        """The model's inputs (``sig``, ``transcript``, ``features``)."""
        return list(self.values.get("model_inputs", ["sig"]))
