"""The model card of an exported folder (``README.md``): hub metadata, data, protocol, results, usage, ethics.

:data:`ONNX_CARD` is the section that ``export --onnx`` adds beside ``model.onnx``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from speechbrain_ext.evaluation.reports import report_table
from speechbrain_ext.utils.hyperparams import to_plain


def model_card(
    report: dict | None,
    preparation: dict | None,
    interface: str,
    card_metrics: Sequence[str],
    base_models: Sequence[str] = (),
    repo_id: str = "org/model",
    transcribes: bool = False,
    calibration: str | None = None,
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
    calibration : str, optional
        The calibration section (:func:`calibration_card`), when the model carries its run's calibration.

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
    lines += [calibration, ""] if calibration else []
    lines += [
        "## Use it",
        "",
        "With SpeechBrain alone (`pip install speechbrain transformers`): the inference code is in this folder's",
        "`custom_interface.py`, generated from the recipe collection's package when the model was exported.",
        "",
        "```python",
        "from speechbrain.inference.interfaces import foreign_class",
        f'model = foreign_class(source="{repo_id}", pymodule_file="custom_interface.py", classname="{interface}")',
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
        "With the recipe collection's `speechbrain_ext` package installed (same answers):",
        "",
        "```python",
        f"from speechbrain_ext.inference import {interface}",
        f'model = {interface}.from_hparams(source="{repo_id}", savedir="pretrained_models/model")',
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


def calibration_card(calibration: dict, report: dict | None) -> str:
    """The model card's section on the calibration the model carries: what it means, with the run's test figures.

    Arguments
    ---------
    calibration : dict
        The exported ``calibration.ckpt`` (the run's ``calibration.json`` with ``entry``).
    report : dict or None
        The test report of that entry (its ``conformal`` and ``calibration`` sections).

    Returns
    -------
    str

    Example
    -------
    >>> cal = {"entry": "run", "alpha": 0.1, "method": "aps", "mondrian": False, "ood": {},
    ...        "entries": {"run": {"temperature": 1.5, "n_calibration": 60}}}
    >>> report = {"conformal": {"coverage": 0.9, "mean_set_size": 2.5, "singleton_share": 0.25, "n": 40}}
    >>> text = calibration_card(cal, report)
    >>> "test coverage 90.0 %" in text and "mean set size 2.50" in text and "abstain=0.1" in text
    True
    """
    entry = calibration["entries"][calibration["entry"]]
    alpha, method = float(calibration["alpha"]), calibration["method"].upper()
    kind = "Mondrian (per-class) " if calibration.get("mondrian") else ""
    lines = [
        "## Calibration, prediction sets and abstention",
        "",
        f"The model carries its run's calibration (`calibration.ckpt`, entry `{calibration['entry']}`), fitted on the "
        f"**validation** split ({entry['n_calibration']} utterances), never on test:",
        "",
        f"- temperature {float(entry['temperature']):.3f}: with `prediction_set`, `abstain` or `calibrated=True` the "
        "probabilities are `softmax(log p / T)` (same ranking, better-calibrated confidence);",
        f"- {kind}split-conformal {method} prediction sets: at `alpha` the set holds the true label with probability at "
        f"least `1 - alpha` on data exchangeable with the validation split (same corpus, speakers and conditions); "
        f"the run used alpha {alpha:g}, and the validation scores are kept so any alpha can be asked;",
        "- `abstain=alpha` answers `None` (unsure) when that set is not a single label.",
    ]
    conformal = (report or {}).get("conformal") or {}
    if conformal.get("mean_set_size") is not None:
        coverage = "-" if conformal.get("coverage") is None else f"{100 * conformal['coverage']:.1f} %"
        lines += [
            "",
            f"On the run's test split ({conformal.get('n')} utterances) at alpha {alpha:g}: test coverage {coverage}, "
            f"mean set size {conformal['mean_set_size']:.2f}, single-label sets "
            f"{100 * (conformal.get('singleton_share') or 0):.1f} % (the share `abstain={alpha:g}` answers).",
        ]
    for name, item in (calibration.get("ood") or {}).items():
        threshold = (
            "never (too few validation rows)" if item.get("threshold") is None else f"above {item['threshold']:.4g}"
        )
        lines += [
            "",
            f"Out-of-distribution flag `{name}`: {threshold}, at a {100 * item['false_alarm']:.0f} % false-alarm rate on "
            "validation" + (" (with `n_samples`)" if name == "mutual_information" else "") + ".",
        ]
    lines += [
        "",
        "A guarantee of coverage is not one of correctness for a person: other speakers, languages or recording "
        "conditions break the exchangeability it rests on.",
        "",
        "```python",
        'out_prob, score, index, text_lab, sets = model.classify_file("speech.wav", prediction_set=True)  # sets[0].labels',
        f'out_prob, score, index, text_lab, sets = model.classify_file("speech.wav", abstain={alpha:g})  # text_lab[0] None: unsure',
        "```",
        "",
        f"`python -m speechbrain_ext.classify --model <folder> a.wav --prediction-set [--alpha {alpha:g}]` or `--abstain {alpha:g}`.",
    ]
    return "\n".join(lines)


ONNX_CARD = """## ONNX

`model.onnx` is the same model as one ONNX graph: one 16 kHz waveform `(1, samples)` in (any length), class
log-probabilities out, the waveform normalisation inside. It was checked against the PyTorch model when exported.
onnxruntime runs it; its loader is in `custom_interface.py` too (with SpeechBrain and onnxruntime installed, from a
local copy of this folder):

```python
import sys
sys.path.append("path/to/this/folder")
from custom_interface import OnnxEmotionClassifier
model = OnnxEmotionClassifier("path/to/this/folder", intra_op_num_threads=2)
out_prob, score, index, text_lab = model.classify_file("speech.wav")  # files up to 30 s, one at a time
```

"""
