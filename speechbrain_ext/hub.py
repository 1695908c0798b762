"""Export a trained recipe run as a model folder, and publish it on the Hugging Face hub.

    python -m speechbrain_ext.hub export --train-hparams results/.../hyperparams.yaml --out my_model
    python -m speechbrain_ext.hub publish my_model --repo-id org/name [--private] [--dry-run]

The export writes what ``from_hparams`` and SpeechBrain's ``foreign_class``
need, and nothing outside the folder: ``hyperparams.yaml`` holds the run's own
``model`` node (the module the recipe trained and evaluated, see
:mod:`speechbrain_ext.models`) with the encoder's Hugging Face configuration
written into it, so loading builds the architecture offline and fills it
from ``model.ckpt``; ``label_encoder.txt`` (and the ``label_encoder.ckpt``
copy the ``Pretrainer`` fetches) for classifiers; ``custom_interface.py``;
and a model card ``README.md`` whose metrics are read from the run's
``test_report.json`` (or ``valid_report.json`` when the test split had no
labels). The checkpoint the run selected (by its task's metric) is used
unless ``--checkpoint`` names one.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from ruamel.yaml import YAML

from speechbrain_ext.encoders import export_config
from speechbrain_ext.fileio import atomic_write_text
from speechbrain_ext.inference import interface_for
from speechbrain_ext.reports import report_table
from speechbrain_ext.tasks import best_checkpoint

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


def read_plain_values(hparams_file: str | Path, keys: Sequence[str] = (), optional: Sequence[str] = ()) -> dict:
    """Plain values of a (resolved) HyperPyYAML file, read without building its objects."""
    data = YAML(typ="rt").load(Path(hparams_file).read_text(encoding="utf-8"))
    missing = [k for k in keys if k not in data]
    if missing:
        raise KeyError(f"{hparams_file}: missing keys {missing}")
    return {k: data[k] for k in (*keys, *optional) if k in data}


def _plain(value):
    """ruamel containers to plain Python (for JSON and the card)."""
    return json.loads(json.dumps(value, default=str))


def _is_local_path(value) -> bool:
    """A value that names a folder of this machine rather than a hub id."""
    text = str(value)
    return text.startswith(("/", "./", "../", "~")) or Path(text).is_dir()


def model_card(
    report: dict | None, preparation: dict | None, interface: str, card_metrics: Sequence[str], base_model: str | None, repo_id: str = "org/model"
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
    base_model : str or None
        Hub id of the encoder the run started from (None: a local model, left out).
    repo_id : str
        Hub id used in the usage snippets.

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
    header += [f"base_model: {base_model}"] if base_model else []
    header += [f"datasets: [{corpus}]", f"metrics: [{', '.join(card_metrics)}]", "---", ""]
    encoder = f"`{base_model}`" if base_model else "a locally pre-trained encoder"
    lines = [f"# {corpus}: {encoder} fine-tuned", "", f"Encoder: {encoder}, fine-tuned with the paralinguistics recipe collection on **{corpus}**.", ""]
    if protocol:
        lines += ["Preparation and protocol options:", "", "```json", json.dumps(_plain(protocol), indent=2, sort_keys=True), "```", ""]
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
        "Loading needs no network beyond this repository: the encoder's configuration is in `hyperparams.yaml` and all weights in `model.ckpt`.",
        "From the command line: `python -m speechbrain_ext.classify --model " + repo_id + " a.wav b.wav [--segments] [--json]`.",
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
# Inference hyperparameters exported by speechbrain_ext.hub from a training run.
# `model` is the run's own model node: the module that was trained and evaluated.
# Its encoder is built from the configuration below (no weights are fetched);
# every weight comes from model.ckpt.
#
#   from speechbrain_ext.inference import {interface}
#   model = {interface}.from_hparams(source="path/or/org-model")
"""


def _task_class(task_node):
    """The task class named by a ``!new:`` task node."""
    import importlib

    module, _, name = str(task_node.tag.value).removeprefix("!new:").rpartition(".")
    return getattr(importlib.import_module(module), name)


def inference_hparams(values: dict, model_key: str = "model") -> tuple[dict, str | None]:
    """The inference YAML document of a run: its model node made loadable offline.

    Arguments
    ---------
    values : dict
        The run's ``hyperparams.yaml`` loaded with ruamel (round trip).
    model_key : str
        Which node holds the model to export (``bayes_model`` for the Bayesian stage).

    Returns
    -------
    document : dict
        Ready to dump with ruamel.
    base_model : str or None
        The encoder's hub id (None when the run started from a local folder).
    """
    model = values[model_key]
    _drop_comments(model)  # the training YAML's comments would land in odd places
    encoder = model["encoder"]
    source = str(encoder["source"])
    if "config" not in encoder:
        config, extractor = export_config(source, cache_dir=str(encoder.get("save_path")) if encoder.get("save_path") else None)
        encoder["config"], encoder["feature_extractor_config"] = config, extractor
    base_model = None if _is_local_path(source) else source
    encoder["source"] = base_model
    for key in ("save_path", "freeze_feature_extractor", "apply_spec_augment"):
        encoder.pop(key, None)
    encoder["freeze"] = True
    task = values["task"]
    classification = "label_encoder_file" in task
    head = "label_encoder: &label_encoder !new:speechbrain.dataio.encoder.CategoricalEncoder\n" if classification else ""
    loadables = "\n        label_encoder: *label_encoder" if classification else " {}"
    skeleton = f"sample_rate: 16000\nmax_chunk_seconds: 30  # longer files are encoded chunk by chunk\n{head}modules: {{}}\npretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer\n    loadables:{loadables}\n"
    doc = YAML(typ="rt").load(skeleton)
    if classification:
        doc.insert(0, "n_classes", int(task["n_classes"]))
    else:
        doc.insert(0, "output_names", list(task["output_names"]))
    model.yaml_set_anchor("model", always_dump=True)
    doc.insert(len(doc) - 2, "model", model)
    doc["modules"]["model"] = model
    doc["pretrainer"]["loadables"].insert(0, "model", model)
    return doc, base_model


def _drop_comments(node) -> None:
    """Remove ruamel comments from a node and everything below it."""
    if hasattr(node, "ca"):
        node.ca.items.clear()
        node.ca.comment = None
    children = node.values() if hasattr(node, "values") else node if isinstance(node, list) else []
    for child in children:
        _drop_comments(child)


def check_standalone(folder: str | Path) -> dict:
    """Check that an exported folder loads without the training machine; return its plain values.

    Raises ``ValueError`` naming the problem: an encoder without its
    configuration (it would download the base model at load time) or any
    local path of the training machine in ``hyperparams.yaml``.
    """
    folder = Path(folder)
    values = YAML(typ="rt").load((folder / "hyperparams.yaml").read_text(encoding="utf-8"))
    encoder = values.get("model", {}).get("encoder", {}) if hasattr(values.get("model"), "get") else {}
    if "config" not in encoder:
        raise ValueError(
            f"{folder}/hyperparams.yaml: the encoder has no configuration; loading would fetch {encoder.get('source')!r} (re-export with this version)"
        )
    if encoder.get("source") is not None and _is_local_path(encoder["source"]):
        raise ValueError(f"{folder}/hyperparams.yaml: the encoder names the local path {encoder['source']!r} of the training machine")
    return values


def export_model(train_hparams: str | Path, out: str | Path, checkpoint: str | Path | None = None) -> Path:
    """Build a stand-alone model folder from a training run.

    Arguments
    ---------
    train_hparams : str or Path
        The ``hyperparams.yaml`` that a recipe run saved in its output folder.
    out : str or Path
        Model folder to create.
    checkpoint : str or Path, optional
        A ``CKPT+...`` folder; default: the one the run selected (two-stage
        methods name theirs with ``export_save_folder``/``export_model``).

    Returns
    -------
    Path
        The model folder.
    """
    train_hparams = Path(train_hparams)
    values = YAML(typ="rt").load(train_hparams.read_text(encoding="utf-8"))
    missing = [k for k in ("model", "task", "save_folder") if k not in values]
    if missing:
        raise KeyError(f"{train_hparams}: missing {missing}; is this the hyperparams.yaml of a recipe run?")
    model_key = str(values.get("export_model", "model"))
    if "model_inputs" in values and list(values["model_inputs"]) != ["sig"]:
        # the interfaces take audio; a transcript model would need Whisper and the tokenizer packed too
        raise NotImplementedError(f"{train_hparams}: a model of {list(values['model_inputs'])} cannot be exported yet (audio models only)")
    save_folder = values.get("export_save_folder", values["save_folder"])
    if checkpoint is None:
        found = best_checkpoint(save_folder)
        if found is None:
            raise FileNotFoundError(f"{save_folder}: no checkpoint with a selection metric; train the run first")
        checkpoint = found.path
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(checkpoint) / "model.ckpt", out / "model.ckpt")
    label_file = Path(str(values["task"].get("label_encoder_file", "")))
    if label_file.is_file():
        shutil.copyfile(label_file, out / "label_encoder.txt")
        shutil.copyfile(label_file, out / "label_encoder.ckpt")  # the name the Pretrainer fetches
    doc, base_model = inference_hparams(values, model_key)
    interface = interface_for(doc).__name__
    buffer = io.StringIO()
    YAML(typ="rt").dump(doc, buffer)
    atomic_write_text(out / "hyperparams.yaml", INFERENCE_HEADER.format(interface=interface) + buffer.getvalue())
    atomic_write_text(out / "custom_interface.py", CUSTOM_INTERFACE.format(source=out.name, classname=interface))
    run_folder = Path(str(values.get("output_folder", train_hparams.parent)))
    report = None
    for name in ("test_report.json", "valid_report.json"):
        if (run_folder / name).is_file():
            report = json.loads((run_folder / name).read_text())
            if report.get("summary_metrics"):
                break
    prep_options = Path(str(values["prep_folder"])) / "prepare_options.json" if "prep_folder" in values else None
    preparation = json.loads(prep_options.read_text()) if prep_options and prep_options.is_file() else None
    card_metrics = _task_class(values["task"]).card_metrics
    atomic_write_text(out / "README.md", model_card(report, preparation, interface, card_metrics, base_model, repo_id=out.name))
    return out


def publish(folder: str | Path, repo_id: str, private: bool = False, dry_run: bool = False, token: str | None = None) -> list[str]:
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
        raise FileNotFoundError(f"{folder}: not an exported model folder (missing {', '.join(missing)}); run `python -m speechbrain_ext.hub export` first")
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
    encoder = values["model"]["encoder"]
    print(
        f"  encoder configuration (in hyperparams.yaml): {encoder['config'].get('model_type')}, {encoder['config'].get('num_hidden_layers')} layers, base model {encoder.get('source')}"
    )
    if dry_run:
        return files
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message="Upload model exported by speechbrain_ext.hub")
    return files


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="build a model folder from a training run")
    export.add_argument("--train-hparams", required=True)
    export.add_argument("--checkpoint")
    export.add_argument("--out", required=True)
    pub = sub.add_parser("publish", help="upload an exported folder to the Hugging Face hub")
    pub.add_argument("folder")
    pub.add_argument("--repo-id", required=True)
    pub.add_argument("--private", action="store_true")
    pub.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "export":
        folder = export_model(args.train_hparams, args.out, args.checkpoint)
        print(f"exported to {folder}")
    else:
        publish(args.folder, args.repo_id, private=args.private, dry_run=args.dry_run)


if __name__ == "__main__":
    main()
