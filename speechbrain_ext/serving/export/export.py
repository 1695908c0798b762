"""Exporting a trained run, or a late fusion of runs, as a stand-alone model folder (and its ONNX graph).

A folder holds ``hyperparams.yaml`` (:mod:`~speechbrain_ext.serving.export.document`), ``model.ckpt``, the
label encoder, the packed tokenizers and Whisper, ``custom_interface.py`` (the package's inference code generated
into one file, :mod:`~speechbrain_ext.serving.export.standalone`, so the folder loads with SpeechBrain alone) and
the model card (:mod:`~speechbrain_ext.serving.export.card`).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from speechbrain_ext.serving.export.card import ONNX_CARD, calibration_card, model_card
from speechbrain_ext.serving.export.document import INFERENCE_HEADER, Exporter, inference_document
from speechbrain_ext.serving.export.nodes import detach, node_class
from speechbrain_ext.serving.export.run import RunModel
from speechbrain_ext.serving.export.standalone import INTERFACE_MODULES, interface_source, rewrite_tags
from speechbrain_ext.serving.inference import interface_for
from speechbrain_ext.serving.model_interface import EXPORTED_MODULE, read_origins
from speechbrain_ext.utils.fileio import atomic_write_text
from speechbrain_ext.utils.hyperparams import dump_yaml, load_yaml

logger = logging.getLogger(__name__)
KNN_DATASTORE = "knn_datastore.pt"  # written by a run's kNN stage (knn_eval: True)
CALIBRATION = "calibration.json"  # written by a run's calibration stage (calibrate: True)
ONNX_MODULE = "speechbrain_ext.serving.onnx_model"  # the ONNX loader, in custom_interface.py beside model.onnx


def _task_class(task_node):
    """The task class named by a ``!new:`` task node."""
    import importlib

    module, _, name = str(task_node.tag.value).removeprefix("!new:").rpartition(".")
    return getattr(importlib.import_module(module), name)


def _fused_node(branches: list, head=None, activation=None, weights=None, log_probs: bool = True):
    """A ``!new:speechbrain_ext.nn.models.FusedModel`` node over the given branch nodes."""
    text = "m: !new:speechbrain_ext.nn.models.FusedModel\n    branches: []\n"
    node = load_yaml(text)["m"]
    node["branches"].extend(branches)
    if head is not None:
        node["head"], node["activation"] = head, activation
    else:
        node["weights"], node["log_probs"] = [float(w) for w in weights], bool(log_probs)
    return node


def export_model(
    train_hparams: str | Path,
    out: str | Path,
    checkpoint: str | Path | None = None,
    whisper: str | None = None,
    knn: bool = True,
) -> Path:
    """Build a stand-alone model folder from a training run (audio, text or early-fusion).

    Arguments
    ---------
    train_hparams : str or Path
        The ``hyperparams.yaml`` that a recipe run saved in its output folder.
    out : str or Path
        Model folder to create.
    checkpoint : str or Path, optional
        A ``CKPT+...`` folder; default: the one the run selected (with a
        Bayesian stage, the stage's own).
    whisper : str, optional
        Whisper hub id or folder to pack for a text model, instead of the one
        the run's transcripts came from.
    knn : bool
        Carry the run's kNN datastore (``knn_datastore.pt``, when its kNN
        stage ran) so that the model answers with the tuned ``k`` and ``alpha``.

    The run's ``calibration.json`` (calibration stage) travels as
    ``calibration.ckpt`` with ``entry`` set to what the model answers with
    (``knn`` when the datastore is carried, else ``run``), unless the exported
    checkpoint is not the one it was fitted for.

    Returns
    -------
    Path
        The model folder.
    """
    run = RunModel.read(train_hparams)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    exporter = Exporter(out)
    if "features" in run.inputs:  # early fusion: the fused runs' models feed the trained head
        sources = [
            RunModel.read(Path(str(folder)) / "hyperparams.yaml", stage_one=True)
            for folder in run.values["fusion_runs"]
        ]
        state = {
            f"branches.{k}.{key}": value
            for k, source in enumerate(sources)
            for key, value in source.state_dict().items()
        }
        state.update(run.state_dict(checkpoint))
        model = _fused_node(
            [source.node for source in sources], head=run.node["head"], activation=run.node["activation"]
        )
        inputs = sorted({i for source in sources for i in source.inputs}, key=["sig", "transcript"].index)
        text_run = next((source for source in sources if "transcript" in source.inputs), None)
    else:
        state, model, inputs = run.state_dict(checkpoint), run.node, run.inputs
        text_run = run if "transcript" in inputs else None
    carry_knn = knn and (run.folder / KNN_DATASTORE).is_file() and "features" not in run.inputs
    calibration = run_calibration(run.folder, carry_knn, checkpoint)
    return _write_folder(out, exporter, model, state, run, inputs, text_run, whisper, carry_knn, calibration)


def run_calibration(folder: Path, knn: bool, checkpoint: str | Path | None = None) -> dict | None:
    """The run's ``calibration.json`` with ``entry``: ``knn`` when the export carries the kNN datastore, else ``run``.

    None when the run has none, when it was fitted for another checkpoint than
    ``checkpoint``, or when it predates the stored validation scores.
    """
    path = Path(folder) / CALIBRATION
    if not path.is_file():
        return None
    document = json.loads(path.read_text())
    entries = document.get("entries") or {}
    if checkpoint is not None and Path(str(checkpoint)).name != document.get("checkpoint"):
        logger.warning("%s: fitted for %s, not %s; exported without it", path, document.get("checkpoint"), checkpoint)
        return None
    entry = "knn" if knn and "knn" in entries else "run"
    if entry not in entries or any("scores" not in e for e in entries.values()):
        logger.warning("%s: no %r entry with validation scores (re-run the stage); exported without it", path, entry)
        return None
    return {**document, "entry": entry}


def export_fusion(fusion_folder: str | Path, out: str | Path, whisper: str | None = None) -> Path:
    """Build a stand-alone model folder from a late fusion of finished runs (``python -m speechbrain_ext.fuse``).

    The fused runs' models become the branches of a
    :class:`~speechbrain_ext.nn.models.FusedModel` with the fusion's weights.
    Majority votes and kNN folders are not models and are refused.
    """
    fusion_folder = Path(fusion_folder)
    info_file = fusion_folder / "fusion.json"
    if not info_file.is_file():
        raise FileNotFoundError(
            f"{info_file}: not found; is {fusion_folder} an output folder of python -m speechbrain_ext.fuse?"
        )
    info = json.loads(info_file.read_text())
    if info["method"] != "late_fusion":
        raise ValueError(
            f"{fusion_folder}: a {info['method']} combines decisions, not outputs; export a late fusion (weights) instead"
        )
    if info.get("subtask"):
        raise ValueError(
            f"{fusion_folder}: fuses joint-label runs on their {info['subtask']!r} decisions; export the runs of one label set instead"
        )
    for folder in info["runs"]:
        if not (Path(folder) / "hyperparams.yaml").is_file():
            raise FileNotFoundError(
                f"{folder}: no hyperparams.yaml; only recipe runs can be exported (a kNN folder cannot)"
            )
    runs = [RunModel.read(Path(folder) / "hyperparams.yaml") for folder in info["runs"]]
    classification = "label_encoder_file" in runs[0].values["task"]
    model = _fused_node([run.node for run in runs], weights=info["weights"], log_probs=classification)
    state = {f"branches.{k}.{key}": value for k, run in enumerate(runs) for key, value in run.state_dict().items()}
    inputs = sorted({i for run in runs for i in run.inputs}, key=["sig", "transcript"].index)
    text_run = next((run for run in runs if "transcript" in run.inputs), None)
    report_run = RunModel(
        fusion_folder, runs[0].values, model, runs[0].save_folder
    )  # task and preparation of the fused runs; reports of the fusion
    return _write_folder(Path(out), Exporter(Path(out)), model, state, report_run, inputs, text_run, whisper)


def _write_folder(
    out: Path,
    exporter: Exporter,
    model,
    state: dict,
    run: RunModel,
    inputs: list[str],
    text_run: RunModel | None,
    whisper: str | None,
    knn: bool = False,
    calibration: dict | None = None,
) -> Path:
    """Write every file of an exported model folder (``knn``: also the run's kNN datastore, as ``knn.ckpt``;
    ``calibration``: :func:`run_calibration`'s document, as ``calibration.ckpt``)."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    detach(model)
    exporter.encoders(model)
    if text_run is not None:
        exporter.whisper(text_run, whisper)
    tmp = out / "model.ckpt.tmp"
    torch.save(state, tmp)
    tmp.replace(out / "model.ckpt")
    task = run.values["task"]
    label_file = Path(str(task.get("label_encoder_file", "")))
    if label_file.is_file():
        shutil.copyfile(label_file, out / "label_encoder.txt")
        shutil.copyfile(label_file, out / "label_encoder.ckpt")  # the name the Pretrainer fetches
    if knn:
        shutil.copyfile(run.folder / KNN_DATASTORE, out / "knn.ckpt")
    if calibration is not None:
        atomic_write_text(out / "calibration.ckpt", json.dumps(calibration, indent=1) + "\n")
    doc = inference_document(model, task, inputs, exporter, knn=knn, calibration=calibration is not None)
    interface = interface_for(doc).__name__
    yaml_text, classes = rewrite_tags(dump_yaml(doc))
    source = interface_source(classes)  # refuses before the folder's YAML is written
    atomic_write_text(out / "hyperparams.yaml", INFERENCE_HEADER.format(interface=interface) + yaml_text)
    atomic_write_text(out / "custom_interface.py", source)
    report = None
    for name in ("test_report.json", "valid_report.json"):
        if (run.folder / name).is_file():
            report = json.loads((run.folder / name).read_text())
            if report.get("summary_metrics"):
                break
    prep_options = (
        Path(str(run.values["prep_folder"])) / "prepare_options.json" if "prep_folder" in run.values else None
    )
    preparation = json.loads(prep_options.read_text()) if prep_options and prep_options.is_file() else None
    card_metrics = _task_class(task).card_metrics
    card = model_card(
        report,
        preparation,
        interface,
        card_metrics,
        exporter.base_models,
        repo_id=out.name,
        transcribes="transcript" in inputs,
        calibration=calibration_card(calibration, _entry_report(run.folder, calibration)) if calibration else None,
    )
    atomic_write_text(out / "README.md", card)
    return out


def _entry_report(folder: Path, calibration: dict) -> dict | None:
    """The test report of the calibration entry the model answers with (its ``conformal`` section)."""
    path = folder / calibration["entries"][calibration["entry"]].get("report", "test_report.json")
    return json.loads(path.read_text()) if path.is_file() else None


def onnx_refusal(train_hparams: str | Path | None = None, fusion: str | Path | None = None) -> str | None:
    """Why ``export --onnx`` cannot export a run, read from its YAML before anything is written; None when it can."""
    from speechbrain_ext.serving.onnx_model import refusal

    if fusion is not None:
        return refusal("FusedModel")
    run = RunModel.read(train_hparams)
    if "features" in run.inputs:  # early fusion: the export builds a FusedModel
        return refusal("FusedModel")
    head = run.node.get("head")
    sampling = node_class(head) == "speechbrain_ext.nn.bayesian.BayesianLinear" and head.get("mean_weights") is not True
    return refusal(
        node_class(run.node).rpartition(".")[2],
        node_class(run.node.get("activation")).rpartition(".")[2] or None,
        sampling,
    )


def add_onnx(folder: str | Path) -> Path:
    """Write ``model.onnx`` into an exported folder (:func:`speechbrain_ext.serving.onnx_model.export_folder`), add its loader
    to ``custom_interface.py`` and describe it in the model card."""
    from speechbrain_ext.serving.onnx_model import export_folder

    folder = Path(folder)
    path = export_folder(folder)
    interface = folder / f"{EXPORTED_MODULE}.py"  # now with the ONNX loader
    atomic_write_text(interface, interface_source(read_origins(interface), (*INTERFACE_MODULES, ONNX_MODULE)))
    card_file = folder / "README.md"
    if card_file.is_file():
        card = card_file.read_text(encoding="utf-8")
        if "## ONNX" not in card:
            card = (
                card.replace("## Limitations", ONNX_CARD + "## Limitations", 1)
                if "## Limitations" in card
                else card + "\n" + ONNX_CARD
            )
            atomic_write_text(card_file, card)
    return path
