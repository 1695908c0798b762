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
