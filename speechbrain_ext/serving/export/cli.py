"""Export a trained recipe run as a model folder, and publish it on the Hugging Face hub.

    python -m speechbrain_ext.hub export --train-hparams results/.../hyperparams.yaml --out my_model
    python -m speechbrain_ext.hub export --fusion results/.../late_fusion --out my_fused_model
    python -m speechbrain_ext.hub export --train-hparams results/.../hyperparams.yaml --out my_model --onnx
    python -m speechbrain_ext.hub export --train-hparams results/.../hyperparams.yaml --out my_model --space
    python -m speechbrain_ext.hub publish my_model --repo-id org/name [--private] [--dry-run]

The export writes what SpeechBrain's ``foreign_class`` needs, with SpeechBrain and
transformers alone installed, and nothing outside the folder: ``hyperparams.yaml`` holds the run's own
``model`` node (the module the recipe trained and evaluated, see
:mod:`speechbrain_ext.nn.models`; with a Bayesian stage, the stage's model) with
each encoder's Hugging Face configuration written into it, so loading builds
the architecture offline and fills it from ``model.ckpt``. A text encoder's
tokenizer and, for models that read transcripts, the Whisper model of the
training run are packed into ``text_tokenizer_<k>.ckpt`` and ``whisper.ckpt``
(:mod:`speechbrain_ext.data.packaging`). An early-fusion run exports the fused
runs' models with its head, a late fusion (``fuse`` output) the runs' models
with its weights (:class:`~speechbrain_ext.nn.models.FusedModel`). Also:
``label_encoder.txt`` (and the ``label_encoder.ckpt`` copy the ``Pretrainer``
fetches) for classifiers; ``custom_interface.py``, the package's inference code
generated into one file (:mod:`~speechbrain_ext.serving.export.standalone`), whose
classes the YAML names as ``custom_interface.<Name>`` (the package's own
``from_hparams`` loads the same folder with the package's classes); and a model card
``README.md`` whose metrics are read from the run's ``test_report.json`` (or
``valid_report.json`` when the test split had no labels). The checkpoint the
run selected (by its task's metric) is used unless ``--checkpoint`` names one.
With ``--onnx``, an audio classifier's folder also gets ``model.onnx``
(:mod:`speechbrain_ext.serving.onnx_model`); a model that cannot be exported is
refused before anything is written. With ``--space``, the folder also gets the
demo page as ``app.py`` and its ``requirements.txt`` (a Gradio Space,
:mod:`~speechbrain_ext.serving.export.space`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from speechbrain_ext.serving.export.export import KNN_DATASTORE, add_onnx, export_fusion, export_model, onnx_refusal
from speechbrain_ext.serving.export.publish import publish
from speechbrain_ext.serving.export.space import write_space


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="build a model folder from a training run, or from a late fusion of runs")
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--train-hparams", help="the hyperparams.yaml of a recipe run (audio, text or early fusion)")
    source.add_argument("--fusion", help="an output folder of python -m speechbrain_ext.fuse (late fusion)")
    export.add_argument("--checkpoint")
    export.add_argument("--whisper", help="text models: Whisper hub id or folder to pack instead of the run's")
    export.add_argument("--out", required=True)
    export.add_argument(
        "--onnx",
        action="store_true",
        help="also write model.onnx, run by onnxruntime (audio classifiers; see speechbrain_ext.serving.onnx_model)",
    )
    export.add_argument(
        "--no-knn",
        dest="knn",
        action="store_false",
        help="leave out the run's kNN datastore (a supcon/knn_eval run answers with it by default)",
    )
    export.add_argument("--space", action="store_true", help="also write app.py + requirements.txt (a Gradio Space)")
    pub = sub.add_parser("publish", help="upload an exported folder to the Hugging Face hub")
    pub.add_argument("folder")
    pub.add_argument("--repo-id", required=True)
    pub.add_argument("--private", action="store_true")
    pub.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "export":
        reason = onnx_refusal(args.train_hparams, args.fusion) if args.onnx else None
        if (
            args.onnx
            and args.knn
            and args.train_hparams
            and (Path(args.train_hparams).parent / KNN_DATASTORE).is_file()
        ):
            reason = "the run has a kNN datastore, which the ONNX graph cannot carry; export with --no-knn for a graph that answers as the model alone"
        if reason:
            parser.error(f"--onnx: {reason}")  # before anything is written
        folder = (
            export_fusion(args.fusion, args.out, args.whisper)
            if args.fusion
            else export_model(args.train_hparams, args.out, args.checkpoint, args.whisper, knn=args.knn)
        )
        if args.onnx:
            print(f"ONNX graph: {add_onnx(folder)}")
        if args.space:
            print(f"Space files: {', '.join(p.name for p in write_space(folder))}")
        print(f"exported to {folder}")
    else:
        publish(args.folder, args.repo_id, private=args.private, dry_run=args.dry_run)


if __name__ == "__main__":
    main()
