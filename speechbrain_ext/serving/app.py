"""The demo page: upload or record a file, see what an exported model makes of it.

    python -m speechbrain_ext.app --model my_model [--port 7860] [--samples 100]

``--model`` is an exported folder or a Hugging Face hub id. The page shows
what the model has: the label with its class probabilities as bars; for audio
models the timeline (each window's label and class probabilities over the
waveform; a segment model's own windows); for a Bayesian head the predictive
uncertainty over ``--samples`` weight draws (entropy, mutual information,
per-class standard deviation); the Whisper transcript for models that read
text; the nine intensities (with their spread, Bayesian) for regressors. Long
files are encoded chunk by chunk (``max_chunk_seconds``) under a progress bar,
once per request. A file that cannot be read is answered with the
interface's own error, naming the file and the problem; the page keeps
serving.

The page runs offline (Gradio, analytics off, no share link, local fonts).
This module imports nothing from ``speechbrain_ext`` outside
:func:`load_interface`, so ``hub export --space`` copies it as the Space's
``app.py`` next to the model files: there it loads the folder's own
``custom_interface.py`` through SpeechBrain's ``foreign_class``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry, no version check
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import soundfile  # noqa: E402

HERE = Path(__file__).resolve().parent


def load_interface(source: str, savedir: str | None = None):
    """The model's interface: ``speechbrain_ext``'s when installed, else the folder's ``custom_interface.py``.

    Arguments
    ---------
    source : str
        An exported folder or a hub id.
    savedir : str, optional
        Where SpeechBrain links or downloads the files.

    Returns
    -------
    EmotionClassifier or EmotionRegressor
    """
    savedir = savedir or str(Path("pretrained_models") / Path(source).name)
    try:
        from speechbrain_ext.serving.classify import load_model
    except ImportError:  # a Space: only the model folder and its custom_interface.py
        from speechbrain.inference.interfaces import foreign_class

        hparams = Path(source) / "hyperparams.yaml"
        if not hparams.is_file():
            from huggingface_hub import hf_hub_download

            hparams = Path(hf_hub_download(source, "hyperparams.yaml"))
        regressor = any(line.startswith("output_names:") for line in hparams.read_text().splitlines())
        classname = "EmotionRegressor" if regressor else "EmotionClassifier"
        return foreign_class(source, pymodule_file="custom_interface.py", classname=classname, savedir=savedir)
    return load_model(source, savedir)


@dataclass
class Answer:
    """What the page shows for one file; None where the model has no such output."""

    label: str | None = None
    probabilities: dict[str, float] | None = None
    timeline: list | None = None  # Segment entries: start, end, label, probabilities
    uncertainty: dict | None = None  # classifier: entropy, mutual_information, std; regressor: name -> mean, std
    transcript: str | None = None
    intensities: dict[str, float] | None = None


def is_regressor(interface) -> bool:
    """Whether the interface predicts intensities (``predict_file``) rather than classes."""
    return hasattr(interface, "predict_file")


def has_timeline(interface) -> bool:
    """Whether the model is an audio classifier, whose windows can be scored (``timeline``)."""
    return not is_regressor(interface) and hasattr(interface.model, "window_scores")


def analyse(interface, path: str, n_samples: int = 100, report: Callable[[float, str], None] | None = None) -> Answer:
    """Everything the page shows for one file, from the interface's own methods.

    Arguments
    ---------
    interface : EmotionClassifier or EmotionRegressor
        As :func:`load_interface` returns it.
    path : str
        Audio file (any rate, channels and length).
    n_samples : int
        Bayesian head: weight draws for the uncertainty.
    report : callable, optional
        ``report(fraction, text)`` as the work goes.

    Returns
    -------
    Answer

    Raises
    ------
    AudioLoadError
        The interface's error for a file it cannot read.
    """
    report = report or (lambda fraction, text: None)
    answer = Answer()
    bayesian = getattr(interface, "is_bayesian", False)

    def on_chunk(done: int, total: int) -> None:
        report(done / total, f"encoded chunk {done} of {total}")

    with interface.remembering(on_chunk):  # the decision, timeline and uncertainty share one encoding
        if is_regressor(interface):
            answer.intensities, answer.transcript = interface.predict_file(path, return_transcript=True)
            if bayesian:
                answer.uncertainty = interface.uncertainty_file(path, n_samples=n_samples)
            return answer
        out_prob, _, _, text_lab, answer.transcript = interface.classify_file(path, return_transcript=True)
        answer.label = text_lab[0]
        answer.probabilities = dict(zip(interface.labels, out_prob[0].exp().tolist()))
        if has_timeline(interface):
            report(1.0, "scoring the windows")
            answer.timeline = interface.classify_file(path, segments=True)
        if bayesian:
            report(1.0, f"sampling {n_samples} head weights")
            u = interface.uncertainty_file(path, n_samples=n_samples)
            answer.uncertainty = {
                "entropy": float(u["entropy"][0]),
                "mutual_information": float(u["mutual_information"][0]),
                "std": dict(zip(interface.labels, u["std_probs"][0].tolist())),
                "mean": dict(zip(interface.labels, u["mean_probs"][0].tolist())),
                "n_samples": n_samples,
            }
    return answer


def waveform_envelope(path: str, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """``(times, peaks)``: the largest absolute sample of about ``points`` stretches, read one stretch at a time.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "ramp.wav")
    >>> soundfile.write(path, np.linspace(0, 0.5, 16000), 16000)
    >>> times, peaks = waveform_envelope(path, points=4)
    >>> times.tolist(), np.round(peaks, 2).tolist()
    ([0.0, 0.25, 0.5, 0.75], [0.12, 0.25, 0.37, 0.5])
    """
    info = soundfile.info(path)
    step = max(1, math.ceil(info.frames / points))
    peaks = [float(np.abs(block).max()) for block in soundfile.blocks(path, blocksize=step, always_2d=True)]
    return np.arange(len(peaks)) * step / info.samplerate, np.asarray(peaks)


def timeline_figure(path: str, timeline: Sequence, labels: Sequence[str]):
    """The waveform with each window's label over it, and the class probabilities of the windows below."""
    import matplotlib.pyplot as plt

    times, peaks = waveform_envelope(path)
    colours = {label: plt.get_cmap("tab10")(i % 10) for i, label in enumerate(labels)}
    fig, (wave, probs) = plt.subplots(2, 1, figsize=(9, 4.2), sharex=True, height_ratios=[1.2, 1])
    wave.fill_between(times, -peaks, peaks, color="0.35", linewidth=0)
    centres = np.array([(s.start + s.end) / 2 for s in timeline])
    # Each window owns the stretch nearest its centre, so overlapping windows colour the waveform once.
    edges = np.concatenate([[timeline[0].start], (centres[1:] + centres[:-1]) / 2, [timeline[-1].end]])
    for seg, left, right in zip(timeline, edges[:-1], edges[1:]):
        wave.axvspan(left, right, color=colours.get(seg.label, "0.8"), alpha=0.35, linewidth=0)
        wave.text((left + right) / 2, 0.92, seg.label or "unsure", ha="center", va="top", fontsize=8,
                  transform=wave.get_xaxis_transform())  # fmt: skip
    wave.set_yticks([])
    wave.set_xlim(0, max(times[-1], timeline[-1].end))
    wave.set_title("timeline: each window's label over the waveform", fontsize=10)
    for label in labels:
        probs.plot(centres, [s.probabilities[label] for s in timeline], marker=".", color=colours[label], label=label)
    probs.set_ylim(0, 1)
    probs.set_ylabel("probability")
    probs.set_xlabel("seconds (window centres)")
    probs.legend(fontsize=8, ncol=min(len(labels), 5), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def intensities_figure(intensities: dict[str, float], uncertainty: dict | None = None):
    """The intensities as horizontal bars (with one standard deviation of a Bayesian head)."""
    import matplotlib.pyplot as plt

    names = list(intensities)
    spread = [uncertainty[n]["std"] for n in names] if uncertainty else None
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1))
    ax.barh(names, [intensities[n] for n in names], xerr=spread, color="tab:blue", capsize=3)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("intensity")
    if uncertainty:
        ax.set_title("whiskers: one standard deviation over the head's weight samples", fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def uncertainty_markdown(uncertainty: dict) -> str:
    """A classifier's uncertainty as Markdown: entropy, mutual information and the per-class table.

    Example
    -------
    >>> print(uncertainty_markdown({"entropy": 0.5, "mutual_information": 0.01, "n_samples": 10,
    ...                             "mean": {"a": 0.8, "b": 0.2}, "std": {"a": 0.05, "b": 0.05}}))
    **Entropy** 0.5000 nats · **mutual information** 0.0100 nats (10 weight samples)
    <BLANKLINE>
    | class | mean probability | std |
    |---|---|---|
    | a | 0.8000 | 0.0500 |
    | b | 0.2000 | 0.0500 |
    """
    rows = [f"| {c} | {m:.4f} | {uncertainty['std'][c]:.4f} |" for c, m in uncertainty["mean"].items()]
    head = (
        f"**Entropy** {uncertainty['entropy']:.4f} nats · **mutual information** "
        f"{uncertainty['mutual_information']:.4f} nats ({uncertainty['n_samples']} weight samples)"
    )
    return "\n".join([head, "", "| class | mean probability | std |", "|---|---|---|", *rows])


def error_text(err: Exception) -> str:
    """What the page says about a failure: the interface's message for a file it cannot read.

    Example
    -------
    >>> class AudioLoadError(RuntimeError): ...
    >>> error_text(AudioLoadError("/tmp/x.wav: cannot be decoded as audio (bad header)"))
    '**Cannot use this file:** /tmp/x.wav: cannot be decoded as audio (bad header)'
    """
    if type(err).__name__ == "AudioLoadError":  # the package's class or the Space's copy of it
        return f"**Cannot use this file:** {err}"
    return f"**Error ({type(err).__name__}):** {err}"


def build_page(interface, n_samples: int = 100, title: str = "Speech emotion"):
    """The Gradio page for this model: only the outputs the model has."""
    import gradio as gr

    regressor, timeline, bayesian = is_regressor(interface), has_timeline(interface), interface.is_bayesian
    reads_text = getattr(interface, "reads_text", False)
    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(f"## {title}\nUpload or record a file; any sample rate, channels and length.")
        audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="audio", elem_id="audio")
        status = gr.Markdown("", elem_id="status")
        caption = "class probabilities (the head's mean weights)" if bayesian else "class probabilities"
        bars = gr.Label(label=caption, elem_id="label", visible=not regressor)
        plot = gr.Plot(label="intensities" if regressor else "timeline", elem_id="plot", visible=regressor or timeline)
        spread = gr.Markdown("", elem_id="uncertainty", visible=bayesian and not regressor)
        transcript = gr.Textbox(label="transcript", elem_id="transcript", visible=reads_text, interactive=False)

        def run(path, progress=gr.Progress()):  # noqa: B008 - how Gradio hands a handler its progress bar
            if not path:
                return "", None, None, "", ""
            try:
                answer = analyse(interface, path, n_samples, lambda f, text: progress(f, desc=text))
            except Exception as err:  # noqa: BLE001 - shown on the page, which keeps serving
                if type(err).__name__ != "AudioLoadError":  # a bad file is the user's to fix; anything else, ours
                    traceback.print_exc()
                return error_text(err), None, None, "", ""
            if regressor:
                figure = intensities_figure(answer.intensities, answer.uncertainty)
                return "**Intensities**", None, figure, "", answer.transcript or ""
            figure = timeline_figure(path, answer.timeline, interface.labels) if answer.timeline else None
            text = uncertainty_markdown(answer.uncertainty) if answer.uncertainty else ""
            return f"**Label: {answer.label}**", answer.probabilities, figure, text, answer.transcript or ""

        outputs = [status, bars, plot, spread, transcript]
        audio.upload(run, audio, outputs)
        audio.stop_recording(run, audio, outputs)
    return page


def default_model() -> str | None:
    """The folder of this file when it sits in a model folder (a Space's ``app.py``), else None."""
    return str(HERE) if (HERE / "hyperparams.yaml").is_file() else None


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: load the model, serve the page until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=default_model(), required=default_model() is None)
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--samples", type=int, default=100, help="Bayesian head: weight draws for the uncertainty")
    parser.add_argument("--savedir", help="where the model's files are linked or downloaded")
    args = parser.parse_args(argv)
    interface = load_interface(args.model, args.savedir)
    page = build_page(interface, args.samples, title=f"Speech emotion: {Path(args.model).name}")
    print(f"serving {args.model} on http://{args.host}:{args.port}", flush=True)
    page.queue(default_concurrency_limit=1).launch(  # one request at a time: the interface remembers one file
        server_name=args.host, server_port=args.port, share=False, show_error=True, footer_links=[], ssr_mode=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
