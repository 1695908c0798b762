"""Export a trained recipe run as a model folder, and publish it on the Hugging Face hub.

    python -m speechbrain_ext.hub export --train-hparams results/.../hyperparams.yaml --out my_model
    python -m speechbrain_ext.hub publish my_model --repo-id org/name [--private] [--dry-run]

The export writes what ``from_hparams`` and SpeechBrain's ``foreign_class``
need: ``hyperparams.yaml`` (from ``pretrained_hparams/``, filled with the
run's values), ``ssl.ckpt``, ``model.ckpt``, ``label_encoder.txt`` (and the
``label_encoder.ckpt`` copy the ``Pretrainer`` fetches), ``custom_interface.py``
and a model card ``README.md`` whose metrics are read from the run's
``test_report.json``. The checkpoint of best validation UAR is used unless
``--checkpoint`` names one.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from ruamel.yaml import YAML
from speechbrain.utils.checkpoints import Checkpointer

from data_prep.common import atomic_write_text
from speechbrain_ext.inference import interface_for
from speechbrain_ext.reports import REPORT_FILE, metrics_table

TEMPLATES = Path(__file__).resolve().parents[1] / "pretrained_hparams"
TEMPLATE = TEMPLATES / "emotion_ssl_linear.yaml"
# Values copied from the training hparams into the inference hparams when both have them.
CARRIED_KEYS = ("ssl_hub", "ssl_layer", "encoder_dim", "n_classes", "segment_size", "segment_hop", "segment_decision", "output_names", "n_outputs")
REQUIRED_KEYS = ("ssl_hub", "encoder_dim", "save_folder")

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


def best_checkpoint(save_folder: str | Path) -> Path:
    """The checkpoint folder with the highest validation UAR."""
    ckpt = Checkpointer(str(save_folder)).find_checkpoint(max_key="UAR")
    if ckpt is None:
        raise FileNotFoundError(f"{save_folder}: no checkpoint with a UAR meta found")
    return Path(ckpt.path)


def _plain(value):
    """ruamel containers to plain Python (for JSON and the card)."""
    return json.loads(json.dumps(value, default=str))


def model_card(values: dict, report: dict | None, preparation: dict | None, interface: str, repo_id: str = "org/model") -> str:
    """The model card: hub metadata header, data, protocol, metrics from the report, usage, limitations, ethics.

    Arguments
    ---------
    values : dict
        Training hparams values (``ssl_hub``, ...).
    report : dict or None
        The run's ``test_report.json``.
    preparation : dict or None
        The run's ``prepare_options.json`` (corpus and protocol).
    interface : str
        Class name of the interface.
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
    header = [
        "---",
        "library_name: speechbrain",
        "language: " + {"FESC": "fi", "HealthCall30": "fr"}.get(corpus, "en"),
        "tags: [speechbrain, audio-classification, emotion-recognition, paralinguistics, wav2vec2]",
        f"base_model: {values.get('ssl_hub')}",
        f"datasets: [{corpus}]",
        "metrics: [recall, accuracy]",
        "---",
        "",
    ]
    lines = [f"# {corpus} emotion recognition: {values.get('ssl_hub')} fine-tuned", ""]
    lines += [f"Encoder `{values.get('ssl_hub')}`, trained with the paralinguistics recipe collection on **{corpus}**.", ""]
    if protocol:
        lines += ["Preparation and protocol options:", "", "```json", json.dumps(_plain(protocol), indent=2, sort_keys=True), "```", ""]
    lines += ["## Test results", ""]
    if report:
        lines += [f"From the run's `{REPORT_FILE}` (held-out test split, checkpoint of best validation UAR):", "", metrics_table(report), ""]
    else:
        lines += [f"No `{REPORT_FILE}` was found in the run folder; the model was exported without test figures.", ""]
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


def export_model(train_hparams: str | Path, out: str | Path, checkpoint: str | Path | None = None, template: str | Path | None = None) -> Path:
    """Build a model folder from a training run.

    Arguments
    ---------
    train_hparams : str or Path
        The ``hyperparams.yaml`` that a recipe run saved in its output folder.
    out : str or Path
        Model folder to create.
    checkpoint : str or Path, optional
        A ``CKPT+...`` folder; default: best validation UAR of the run.
    template : str or Path, optional
        Inference hparams; default: the run's ``inference_hparams`` key, else
        ``pretrained_hparams/emotion_ssl_linear.yaml``.

    Returns
    -------
    Path
        The model folder.
    """
    values = read_plain_values(train_hparams, REQUIRED_KEYS, (*CARRIED_KEYS, "output_folder", "prep_folder", "inference_hparams", "export_save_folder"))
    if template is None:
        template = TEMPLATES / values["inference_hparams"] if "inference_hparams" in values else TEMPLATE
    # Two-stage methods (bayes) keep the exported model in their own checkpoint folder.
    ckpt = Path(checkpoint) if checkpoint else best_checkpoint(values.get("export_save_folder", values["save_folder"]))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("ssl", "model"):
        shutil.copyfile(ckpt / f"{name}.ckpt", out / f"{name}.ckpt")
    label_file = Path(values["save_folder"]) / "label_encoder.txt"
    if label_file.is_file():
        shutil.copyfile(label_file, out / "label_encoder.txt")
        shutil.copyfile(label_file, out / "label_encoder.ckpt")  # the name the Pretrainer fetches
    yaml = YAML(typ="rt")
    inference = yaml.load(Path(template).read_text(encoding="utf-8"))
    for key in CARRIED_KEYS:
        if key in values and key in inference:
            inference[key] = values[key]
    buffer = io.StringIO()
    yaml.dump(inference, buffer)
    atomic_write_text(out / "hyperparams.yaml", buffer.getvalue())
    interface = interface_for(inference).__name__
    atomic_write_text(out / "custom_interface.py", CUSTOM_INTERFACE.format(source=out.name, classname=interface))
    run_folder = Path(values.get("output_folder", Path(train_hparams).parent))
    report_path = run_folder / REPORT_FILE
    report = json.loads(report_path.read_text()) if report_path.is_file() else None
    prep_options = Path(values["prep_folder"]) / "prepare_options.json" if "prep_folder" in values else None
    preparation = json.loads(prep_options.read_text()) if prep_options and prep_options.is_file() else None
    atomic_write_text(out / "README.md", model_card(_plain(values), report, preparation, interface, repo_id=out.name))
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
    required = ["hyperparams.yaml", "ssl.ckpt", "model.ckpt", "custom_interface.py", "README.md"]
    missing = [f for f in required if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: not an exported model folder (missing {', '.join(missing)}); run `python -m speechbrain_ext.hub export` first")
    if repo_id.count("/") != 1:
        raise ValueError(f"repo id must look like org/name, got {repo_id!r}")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    total = sum((folder / f).stat().st_size for f in files)
    print(
        f"{'[dry run] would upload' if dry_run else 'uploading'} {len(files)} files ({total / 1e6:.1f} MB) to https://huggingface.co/{repo_id} ({'private' if private else 'public'}):"
    )
    for f in files:
        print(f"  {f}  {(folder / f).stat().st_size / 1e6:.2f} MB")
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
    export.add_argument("--template", help="inference hparams (default: the run's family, see pretrained_hparams/)")
    export.add_argument("--out", required=True)
    pub = sub.add_parser("publish", help="upload an exported folder to the Hugging Face hub")
    pub.add_argument("folder")
    pub.add_argument("--repo-id", required=True)
    pub.add_argument("--private", action="store_true")
    pub.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "export":
        folder = export_model(args.train_hparams, args.out, args.checkpoint, args.template)
        print(f"exported to {folder}")
    else:
        publish(args.folder, args.repo_id, private=args.private, dry_run=args.dry_run)


if __name__ == "__main__":
    main()
