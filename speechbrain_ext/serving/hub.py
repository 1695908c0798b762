"""Export a trained recipe run as a model folder, and publish it on the Hugging Face hub.

    python -m speechbrain_ext.hub export --train-hparams results/.../hyperparams.yaml --out my_model
    python -m speechbrain_ext.hub export --fusion results/.../late_fusion --out my_fused_model
    python -m speechbrain_ext.hub export --train-hparams results/.../hyperparams.yaml --out my_model --onnx
    python -m speechbrain_ext.hub publish my_model --repo-id org/name [--private] [--dry-run]

The export writes what ``from_hparams`` and SpeechBrain's ``foreign_class``
need, and nothing outside the folder: ``hyperparams.yaml`` holds the run's own
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
fetches) for classifiers; ``custom_interface.py``; and a model card
``README.md`` whose metrics are read from the run's ``test_report.json`` (or
``valid_report.json`` when the test split had no labels). The checkpoint the
run selected (by its task's metric) is used unless ``--checkpoint`` names one.
With ``--onnx``, an audio classifier's folder also gets ``model.onnx``
(:mod:`speechbrain_ext.serving.onnx_model`); a model that cannot be exported is
refused before anything is written.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from speechbrain_ext.evaluation.reports import report_table
from speechbrain_ext.nn.encoders import export_config
from speechbrain_ext.serving.inference import interface_for
from speechbrain_ext.training.tasks import best_checkpoint
from speechbrain_ext.utils.fileio import atomic_write_text, is_local_path
from speechbrain_ext.utils.hyperparams import dump_yaml, load_yaml, plain_values, to_plain

CUSTOM_INTERFACE = '''"""Interface module for SpeechBrain's ``foreign_class``.

    from speechbrain.inference.interfaces import foreign_class
    model = foreign_class(source="{source}", pymodule_file="custom_interface.py", classname="{classname}")

The classes live in the ``speechbrain_ext`` package of the paralinguistics
recipe collection; this file re-exports them so that SpeechBrain can load
them by name.
"""

try:
    from speechbrain_ext.inference import EmotionClassifier, EmotionRegressor, Segment
except ImportError as err:  # pragma: no cover - a message for users without the package
    raise ImportError(
        "This model needs the speechbrain_ext package of the paralinguistics recipe collection: "
        "clone the collection and run `pip install -e .` in it."
    ) from err

__all__ = ["EmotionClassifier", "EmotionRegressor", "Segment"]
'''


def model_card(
    report: dict | None,
    preparation: dict | None,
    interface: str,
    card_metrics: Sequence[str],
    base_models: Sequence[str] = (),
    repo_id: str = "org/model",
    transcribes: bool = False,
) -> str:
    """The model card: hub metadata header, data, protocol, metrics from the report, usage, limitations, ethics.

    Arguments
    ---------
    report : dict or None
        The run's report (test, or valid when the test split had no labels).
    preparation : dict or None
        The run's ``prepare_options.json`` (corpus and protocol).
    interface : str
        Class name of the interface.
    card_metrics : sequence of str
        The task's hub metric names.
    base_models : sequence of str
        Hub ids of the encoders the run started from (local ones are left out).
    repo_id : str
        Hub id used in the usage snippets.
    transcribes : bool
        The model reads Whisper transcripts (a text or fused model).

    Returns
    -------
    str
        Markdown with a YAML front matter.
    """
    options = (preparation or {}).get("options", {})
    corpus = options.get("corpus", "unknown corpus")
    protocol = {k: v for k, v in options.items() if k not in ("corpus", "data_folder", "label_files")}
    header = ["---", "library_name: speechbrain", "language: " + {"FESC": "fi", "HealthCall30": "fr"}.get(corpus, "en")]
    header += ["tags: [speechbrain, audio-classification, emotion-recognition, paralinguistics]"]
    if base_models:
        header += [
            f"base_model: {base_models[0]}" if len(base_models) == 1 else f"base_model: [{', '.join(base_models)}]"
        ]
    header += [f"datasets: [{corpus}]", f"metrics: [{', '.join(card_metrics)}]", "---", ""]
    encoder = " and ".join(f"`{b}`" for b in base_models) if base_models else "a locally pre-trained encoder"
    lines = [
        f"# {corpus}: {encoder} fine-tuned",
        "",
        f"Encoders: {encoder}, fine-tuned with the paralinguistics recipe collection on **{corpus}**.",
        "",
    ]
    if transcribes:
        lines += [
            "The model reads what is said: each file is first transcribed by the Whisper model packed in `whisper.ckpt`,",
            "with the decoding options of the training run (`transcriber` in `hyperparams.yaml`).",
            "",
        ]
    if protocol:
        lines += [
            "Preparation and protocol options:",
            "",
            "```json",
            json.dumps(to_plain(protocol), indent=2, sort_keys=True),
            "```",
            "",
        ]
    lines += ["## Results", ""]
    if report:
        lines += [
            f"From the run's `{report.get('set', 'test')}` report (checkpoint selected on validation):",
            "",
            report_table(report, report.get("set", "test")),
            "",
        ]
    else:
        lines += ["No report was found in the run folder; the model was exported without figures.", ""]
    lines += [
        "## Use it",
        "",
        "```python",
        f"from speechbrain_ext.inference import {interface}",
        f'model = {interface}.from_hparams(source="{repo_id}", savedir="pretrained_models/model")',
    ]
    if interface == "EmotionClassifier":
        lines += [
            'out_prob, score, index, text_lab = model.classify_file("speech.wav")  # any rate, channels, length',
            'timeline = model.classify_file("call.wav", segments=True)             # (start, end, label, probabilities)',
        ]
    else:
        lines += ['model.predict_file("clip.wav")  # {name: intensity}']
    lines += [
        "```",
        "",
        "With SpeechBrain alone (the `speechbrain_ext` package installed):",
        "",
        "```python",
        "from speechbrain.inference.interfaces import foreign_class",
        f'model = foreign_class(source="{repo_id}", pymodule_file="custom_interface.py", classname="{interface}")',
        "```",
        "",
        "Loading needs no network beyond this repository: the encoders' configurations are in `hyperparams.yaml`, all weights in `model.ckpt`"
        + (", tokenizers and Whisper in their packed `.ckpt` files." if transcribes else "."),
        "From the command line: `python -m speechbrain_ext.classify --model "
        + repo_id
        + " a.wav b.wav [--segments] [--json]`.",
        "",
        "## Limitations",
        "",
        f"- Trained on {corpus} only; accuracy on other speakers, languages, recording conditions or spontaneous speech is unknown and likely lower.",
        "- The labels are the corpus's categories; real emotional states are richer, mixed and culturally shaped.",
        "- Audio is resampled to 16 kHz mono; recordings longer than 30 s are encoded in chunks.",
        "",
        "## Ethics",
        "",
        "Emotion recognition is a high-risk use under the EU AI Act: people must be told when it is applied to them, "
        "and its outputs must not decide matters about a person (work, education, health, access to services) on their own. "
        "Treat the outputs as uncertain estimates of how speech sounds, not as facts about what someone feels.",
        "",
    ]
    return "\n".join(header + lines)


INFERENCE_HEADER = """\
# Inference hyperparameters exported by speechbrain_ext.serving.hub from a training run.
# `model` is the run's own model node: the module that was trained and evaluated.
# Its encoders are built from the configurations below (no weights are fetched);
# every weight comes from model.ckpt, tokenizers and Whisper from their packed files.
#
#   from speechbrain_ext.inference import {interface}
#   model = {interface}.from_hparams(source="path/or/org-model")
"""
SSL_ENCODER = "speechbrain_ext.nn.encoders.SSLEncoder"
TEXT_ENCODER = "speechbrain_ext.nn.text.TranscriptEncoder"
BAYES_STAGE = "speechbrain_ext.training.post_training.BayesianHeadStage"


def _task_class(task_node):
    """The task class named by a ``!new:`` task node."""
    import importlib

    module, _, name = str(task_node.tag.value).removeprefix("!new:").rpartition(".")
    return getattr(importlib.import_module(module), name)


def _tag(node) -> str:
    tag = getattr(node, "tag", None)
    return str(getattr(tag, "value", "") or "").removeprefix("!new:")


def _nodes(node, kind: str):
    """Every node below ``node`` (itself included) built by the class ``kind``, each once."""
    seen, stack = set(), [node]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if _tag(item) == kind:
            yield item
        if hasattr(item, "values"):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


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
            if not stage_one and _tag(stage) == BAYES_STAGE and stage.get("enabled", True) is not False:
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


class Exporter:
    """Turns run model nodes into loadable, stand-alone nodes; packs what they need beside them.

    Every SSL encoder gets its Hugging Face configuration inline; every text
    encoder its configuration inline and its tokenizer packed
    (``text_tokenizer_<k>.ckpt``); a text-reading model gets the training
    run's Whisper packed (``whisper.ckpt``) with its decoding options.
    """

    def __init__(self, out: Path):
        self.out, self.loadables, self.base_models, self.transcribe = out, {}, [], None

    def encoders(self, node) -> None:
        for encoder in _nodes(node, SSL_ENCODER):
            if "config" not in encoder:
                config, extractor = export_config(
                    str(encoder["source"]),
                    cache_dir=str(encoder.get("save_path")) if encoder.get("save_path") else None,
                )
                encoder["config"], encoder["feature_extractor_config"] = config, extractor
            self._base(encoder)
            for key in ("save_path", "freeze_feature_extractor", "apply_spec_augment"):
                encoder.pop(key, None)
            encoder["freeze"] = True
        from transformers import AutoConfig, AutoTokenizer

        from speechbrain_ext.data.packaging import save_tokenizer
        from speechbrain_ext.nn.text import usable_positions

        for k, encoder in enumerate(_nodes(node, TEXT_ENCODER)):
            source, cache = str(encoder["source"]), str(encoder.get("save_path")) if encoder.get("save_path") else None
            if "config" not in encoder:
                config = AutoConfig.from_pretrained(source, cache_dir=cache)
                limit = usable_positions(config, AutoTokenizer.from_pretrained(source, cache_dir=cache))
                encoder["max_length"] = min(int(encoder["max_length"]), limit) if encoder.get("max_length") else limit
                encoder["config"] = {key: value for key, value in config.to_dict().items() if not key.startswith("_")}
            name = f"text_tokenizer_{k}"
            save_tokenizer(source, cache, self.out / f"{name}.ckpt")
            self._base(encoder)
            encoder.pop("save_path", None)
            encoder["freeze"] = True
            encoder.yaml_set_anchor(name, always_dump=True)
            self.loadables[name] = encoder

    def _base(self, encoder) -> None:
        from speechbrain_ext.methods.flea.pretraining import base_model_of

        source = encoder.get("source")
        base = (
            None if source is None else base_model_of(source)
        )  # a folder pre-trained here (FLEA's CPT-HuBERT) names its hub model
        encoder["source"] = base
        if base and base not in self.base_models:
            self.base_models.append(base)

    def whisper(self, run: RunModel, override: str | None = None) -> None:
        """Pack the Whisper model the run's transcripts came from (or ``override``), with its decoding options."""
        from speechbrain_ext.data.packaging import local_folder, pack_folder

        options = dict(run.values.get("transcribe") or {})
        source = override or options.get("source")
        if not source:
            raise ValueError(
                f"{run.folder}: the model reads transcripts but the run names no Whisper model (transcribe: source)"
            )
        try:
            folder = local_folder(str(source), options.get("save_path") if not override else None)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{err}; a run that imported its transcripts (transcripts_file) never loaded Whisper: pass --whisper with a local Whisper folder"
            ) from None
        pack_folder(folder, self.out / "whisper.ckpt")
        self.transcribe = {
            "language": options.get("language"),
            "beam_size": int(options.get("beam_size", 1)),
            "chunk_seconds": float(options.get("chunk_seconds", 30.0)),
            "batch_size": int(options.get("batch_size", 8)),
        }


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


def inference_document(model, task, model_inputs: list[str], exporter: Exporter, knn: bool = False) -> dict:
    """The inference YAML document: the model node, the task's label set, the transcriber, the kNN datastore and the pretrainer."""
    classification = "label_encoder_file" in task
    reads_text = "transcript" in model_inputs
    lines = ["sample_rate: 16000", "max_chunk_seconds: 30  # longer files are encoded chunk by chunk"]
    lines += [f"model_inputs: [{', '.join(model_inputs)}]"]
    if classification:
        lines += ["label_encoder: &label_encoder !new:speechbrain.dataio.encoder.CategoricalEncoder"]
    if reads_text:
        lines += ["transcriber: &transcriber !new:speechbrain_ext.data.transcribe.Transcriber"]
        lines += [f"    {k}: {json.dumps(v)}" for k, v in exporter.transcribe.items()]
    if knn:
        lines += [
            "knn: &knn !new:speechbrain_ext.nn.knn.KNNDatastore  # supcon_knn: p = alpha p_knn + (1 - alpha) p_model, k and alpha tuned on valid"
        ]
    lines += ["modules: {}", "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer", "    loadables:"]
    lines += ["        label_encoder: *label_encoder"] if classification else []
    lines += ["        knn: *knn"] if knn else []
    lines += ["        whisper: *transcriber"] if reads_text else []
    doc = load_yaml("\n".join(lines) + "\n")
    if classification:
        doc.insert(0, "n_classes", int(task["n_classes"]))
    else:
        doc.insert(0, "output_names", list(task["output_names"]))
    model.yaml_set_anchor("model", always_dump=True)
    doc.insert(len(doc) - 2, "model", model)
    doc["modules"]["model"] = model
    if reads_text:
        doc["modules"]["transcriber"] = doc["transcriber"]
    if doc["pretrainer"]["loadables"] is None:  # a regressor of audio: nothing but the model to load
        doc["pretrainer"]["loadables"] = load_yaml("{}")
    loadables = doc["pretrainer"]["loadables"]
    loadables.insert(0, "model", model)
    for name, node in exporter.loadables.items():
        loadables[name] = node
    return doc


def _detach(node) -> None:
    """Remove the training YAML's comments and anchors from a node and everything below it.

    Comments would land in odd places of the inference YAML, and anchor names
    of different runs' files may collide; ruamel names the nodes that are
    shared in the new document itself.
    """
    if hasattr(node, "ca"):
        node.ca.items.clear()
        node.ca.comment = None
    if getattr(getattr(node, "anchor", None), "value", None):
        node.anchor.value = None
    children = node.values() if hasattr(node, "values") else node if isinstance(node, list) else []
    for child in children:
        _detach(child)


def _strings(node):
    if isinstance(node, str):
        yield node
    elif hasattr(node, "values"):
        for child in node.values():
            yield from _strings(child)
    elif isinstance(node, list):
        for child in node:
            yield from _strings(child)


def check_standalone(folder: str | Path) -> dict:
    """Check that an exported folder loads without the training machine; return its plain values.

    Raises ``ValueError`` naming the problem: an encoder without its
    configuration (it would download the base model at load time), a text
    model without its packed tokenizer or Whisper, or any local path in
    ``hyperparams.yaml``.
    """
    folder = Path(folder)
    values = plain_values(folder / "hyperparams.yaml")
    for kind in (SSL_ENCODER, TEXT_ENCODER):
        for encoder in _nodes(values.get("model"), kind):
            if "config" not in encoder:
                raise ValueError(
                    f"{folder}/hyperparams.yaml: the encoder has no configuration; loading would fetch {encoder.get('source')!r} (re-export with this version)"
                )
            if encoder.get("source") is not None and is_local_path(encoder["source"]):
                raise ValueError(
                    f"{folder}/hyperparams.yaml: the encoder names the local path {encoder['source']!r} of the training machine"
                )
    local = sorted({text for text in _strings(values) if text.startswith(("/", "~"))})
    if local:
        raise ValueError(f"{folder}/hyperparams.yaml: names the local path(s) {local[:3]} of the training machine")
    needed = [
        f"{name}.ckpt"
        for name in values.get("pretrainer", {}).get("loadables", {})
        if name not in ("model", "label_encoder")
    ]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise ValueError(
            f"{folder}: {', '.join(missing)} missing (the packed tokenizer or Whisper model); re-export the run"
        )
    return values


KNN_DATASTORE = "knn_datastore.pt"  # written by a run's kNN stage (knn_eval: True)


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
    return _write_folder(out, exporter, model, state, run, inputs, text_run, whisper, knn=carry_knn)


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
) -> Path:
    """Write every file of an exported model folder (``knn``: also the run's kNN datastore, as ``knn.ckpt``)."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    _detach(model)
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
    doc = inference_document(model, task, inputs, exporter, knn=knn)
    interface = interface_for(doc).__name__
    atomic_write_text(out / "hyperparams.yaml", INFERENCE_HEADER.format(interface=interface) + dump_yaml(doc))
    atomic_write_text(out / "custom_interface.py", CUSTOM_INTERFACE.format(source=out.name, classname=interface))
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
    )
    atomic_write_text(out / "README.md", card)
    return out


def publish(
    folder: str | Path, repo_id: str, private: bool = False, dry_run: bool = False, token: str | None = None
) -> list[str]:
    """Create ``repo_id`` on the Hugging Face hub (if needed) and upload ``folder``.

    Arguments
    ---------
    folder : str or Path
        An exported model folder.
    repo_id : str
        ``org/name``.
    private : bool
        Create a private repository.
    dry_run : bool
        Only list what would be sent; nothing touches the network.
    token : str, optional
        Hub token (default: the logged-in user's).

    Returns
    -------
    list of str
        The files sent (or that would be sent).
    """
    folder = Path(folder)
    required = ["hyperparams.yaml", "model.ckpt", "custom_interface.py", "README.md"]
    missing = [f for f in required if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder}: not an exported model folder (missing {', '.join(missing)}); run `python -m speechbrain_ext.hub export` first"
        )
    values = check_standalone(folder)
    if repo_id.count("/") != 1:
        raise ValueError(f"repo id must look like org/name, got {repo_id!r}")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    total = sum((folder / f).stat().st_size for f in files)
    print(
        f"{'[dry run] would upload' if dry_run else 'uploading'} {len(files)} files ({total / 1e6:.1f} MB) to https://huggingface.co/{repo_id} ({'private' if private else 'public'}):"
    )
    for f in files:
        print(f"  {f}  {(folder / f).stat().st_size / 1e6:.2f} MB")
    for kind in (SSL_ENCODER, TEXT_ENCODER):
        for encoder in _nodes(values["model"], kind):
            print(
                f"  encoder configuration (in hyperparams.yaml): {encoder['config'].get('model_type')}, {encoder['config'].get('num_hidden_layers')} layers, base model {encoder.get('source')}"
            )
    if dry_run:
        return files
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        commit_message="Upload model exported by speechbrain_ext.serving.hub",
    )
    return files


ONNX_CARD = """## ONNX

`model.onnx` is the same model as one ONNX graph: one 16 kHz waveform `(1, samples)` in (any length), class
log-probabilities out, the waveform normalisation inside. It was checked against the PyTorch model when exported.
onnxruntime runs it without speechbrain (a local copy of this folder):

```python
from speechbrain_ext.serving.onnx_model import OnnxEmotionClassifier
model = OnnxEmotionClassifier("path/to/this/folder", intra_op_num_threads=2)
out_prob, score, index, text_lab = model.classify_file("speech.wav")  # files up to 30 s, one at a time
```

"""


def onnx_refusal(train_hparams: str | Path | None = None, fusion: str | Path | None = None) -> str | None:
    """Why ``export --onnx`` cannot export a run, read from its YAML before anything is written; None when it can."""
    from speechbrain_ext.serving.onnx_model import refusal

    if fusion is not None:
        return refusal("FusedModel")
    run = RunModel.read(train_hparams)
    if "features" in run.inputs:  # early fusion: the export builds a FusedModel
        return refusal("FusedModel")
    head = run.node.get("head")
    sampling = _tag(head) == "speechbrain_ext.nn.bayesian.BayesianLinear" and head.get("mean_weights") is not True
    return refusal(
        _tag(run.node).rpartition(".")[2], _tag(run.node.get("activation")).rpartition(".")[2] or None, sampling
    )


def add_onnx(folder: str | Path) -> Path:
    """Write ``model.onnx`` into an exported folder (:func:`speechbrain_ext.serving.onnx_model.export_folder`) and describe it in the model card."""
    from speechbrain_ext.serving.onnx_model import export_folder

    folder = Path(folder)
    path = export_folder(folder)
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
        print(f"exported to {folder}")
    else:
        publish(args.folder, args.repo_id, private=args.private, dry_run=args.dry_run)


if __name__ == "__main__":
    main()
