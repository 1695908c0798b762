"""Export a trained recipe run as a model folder that ``from_hparams`` loads.

    python -m speechbrain_ext.hub export --train-hparams results/.../hyperparams.yaml --out exported_model

The checkpoint of best validation UAR in the run's ``save_folder`` is used
unless ``--checkpoint`` names one.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

from ruamel.yaml import YAML
from speechbrain.utils.checkpoints import Checkpointer

from data_prep.common import atomic_write_text

TEMPLATE = Path(__file__).resolve().parents[1] / "pretrained_hparams" / "emotion_ssl_linear.yaml"
# Values copied from the training hparams into the inference hparams.
CARRIED_KEYS = ("ssl_hub", "encoder_dim", "n_classes")


def read_plain_values(hparams_file: str | Path, keys: Sequence[str]) -> dict:
    """Scalar values of a (resolved) HyperPyYAML file, read without building its objects."""
    data = YAML(typ="rt").load(Path(hparams_file).read_text(encoding="utf-8"))
    missing = [k for k in keys if k not in data]
    if missing:
        raise KeyError(f"{hparams_file}: missing keys {missing}")
    return {k: data[k] for k in keys}


def best_checkpoint(save_folder: str | Path) -> Path:
    """The checkpoint folder with the highest validation UAR."""
    ckpt = Checkpointer(str(save_folder)).find_checkpoint(max_key="UAR")
    if ckpt is None:
        raise FileNotFoundError(f"{save_folder}: no checkpoint with a UAR meta found")
    return Path(ckpt.path)


def export_model(train_hparams: str | Path, out: str | Path, checkpoint: str | Path | None = None, template: str | Path = TEMPLATE) -> Path:
    """Write ``hyperparams.yaml``, ``ssl.ckpt``, ``model.ckpt`` and ``label_encoder.ckpt`` to ``out``.

    Arguments
    ---------
    train_hparams : str or Path
        The ``hyperparams.yaml`` that a recipe run saved in its output folder.
    out : str or Path
        Model folder to create.
    checkpoint : str or Path, optional
        A ``CKPT+...`` folder; default: best validation UAR of the run.
    template : str or Path
        Inference hparams from ``pretrained_hparams/``.

    Returns
    -------
    Path
        The model folder.
    """
    values = read_plain_values(train_hparams, (*CARRIED_KEYS, "save_folder"))
    ckpt = Path(checkpoint) if checkpoint else best_checkpoint(values["save_folder"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("ssl", "model"):
        shutil.copyfile(ckpt / f"{name}.ckpt", out / f"{name}.ckpt")
    shutil.copyfile(Path(values["save_folder"]) / "label_encoder.txt", out / "label_encoder.ckpt")
    yaml = YAML(typ="rt")
    inference = yaml.load(Path(template).read_text(encoding="utf-8"))
    for key in CARRIED_KEYS:
        inference[key] = values[key]
    import io

    buffer = io.StringIO()
    yaml.dump(inference, buffer)
    atomic_write_text(out / "hyperparams.yaml", buffer.getvalue())
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="build a model folder from a training run")
    export.add_argument("--train-hparams", required=True)
    export.add_argument("--checkpoint")
    export.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    folder = export_model(args.train_hparams, args.out, args.checkpoint)
    print(f"exported to {folder}")


if __name__ == "__main__":
    main()
