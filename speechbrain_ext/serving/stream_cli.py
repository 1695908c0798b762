"""Classify a live stream or a file as a stream: one decision per hop over the last window.

    python -m speechbrain_ext.stream --model my_model call.wav
    python -m speechbrain_ext.stream --model my_model call.wav --realtime --json
    arecord -f S16_LE -r 16000 -c 1 | python -m speechbrain_ext.stream --model my_model -
    python -m speechbrain_ext.stream --model my_model - --json < call.pcm   # raw 16 kHz mono s16le

``FILE`` is any audio file (resampled to 16 kHz mono block by block); ``-``
reads raw 16 kHz mono s16le PCM from stdin as it arrives. A decision every
``--hop`` seconds over the last ``--window`` seconds, the first once a full
window has arrived, the last over the last window of the stream when a
partial hop is left (:mod:`speechbrain_ext.serving.streaming`). Each line
carries the decision's latency: from the arrival of the window's last sample
to the decision. ``--realtime`` paces the input as a live source (a file is
released at the speed it plays; a live stdin is not slowed) and measures the
latency on the stream's clock, so a model slower than real time shows a
latency that grows. ``--json`` writes one JSON object per line (``start``,
``end``, ``label``, ``probabilities``, ``latency_ms``). A summary (decisions,
latency median / 95th percentile / max, real-time factor of the
classification) goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np

from speechbrain_ext.serving.streaming import Pacer, StreamDecision, file_chunks, pcm_chunks


def format_decision(decision: StreamDecision) -> str:
    """One human-readable line.

    Example
    -------
    >>> print(format_decision(StreamDecision(0.5, 2.5, "angry", {"angry": 0.61, "sad": 0.39}, 12.345)))
        0.50-    2.50 s  angry        0.610  latency 12.3 ms
    """
    label = decision.label or "unsure"
    top = decision.probabilities.get(decision.label, max(decision.probabilities.values(), default=0.0))
    return (
        f"{decision.start:8.2f}-{decision.end:8.2f} s  {label:<12} {top:.3f}  latency {decision.latency_ms:.1f} ms"
        + ("  (end of stream)" if decision.final else "")
    )


def summary(decisions: list[StreamDecision], hop: float) -> str:
    """Decisions, latency median / p95 / max, and the classification's real-time factor (compute time / hop).

    Example
    -------
    >>> d = [StreamDecision(k / 2, 2 + k / 2, "a", {"a": 1.0}, [20, 20, 20, 40][k], compute_ms=100.0) for k in range(4)]
    >>> print(summary(d, hop=0.5).replace("; ", "\\n"))
    4 decisions over 3.50 s of audio
    latency median 20.0 ms, p95 37.0 ms, max 40.0 ms
    real-time factor 0.200 (classification 100.0 ms per hop of 500 ms)
    """
    if not decisions:
        return "no decision: the stream was shorter than the shortest window"
    latency = np.array([d.latency_ms for d in decisions])
    compute = np.array([d.compute_ms for d in decisions])
    per_hop = float(np.mean(compute))
    return (
        f"{len(decisions)} decisions over {decisions[-1].end:.2f} s of audio; latency median {np.median(latency):.1f} ms, "
        f"p95 {np.percentile(latency, 95):.1f} ms, max {latency.max():.1f} ms; "
        f"real-time factor {per_hop / (hop * 1000):.3f} (classification {per_hop:.1f} ms per hop of {hop * 1000:.0f} ms)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from speechbrain_ext.data.audio import AudioLoadError
    from speechbrain_ext.serving.classify import load_model
    from speechbrain_ext.serving.inference import EmotionClassifier

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="exported folder or hub id")
    parser.add_argument("--savedir", help="where hub models are cached")
    parser.add_argument("input", metavar="FILE|-", help="an audio file, or - for raw 16 kHz mono s16le PCM on stdin")
    parser.add_argument("--window", type=float, default=2.0, help="seconds each decision looks at (default 2.0)")
    parser.add_argument("--hop", type=float, default=0.5, help="seconds between decisions (default 0.5)")
    parser.add_argument("--realtime", action="store_true", help="pace the input as a live source")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--block", type=float, default=0.1, help="seconds read at a time (default 0.1)")
    parser.add_argument("--samples", type=int, help="Bayesian models: weight samples to average per window")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: a GPU if there is one, else cpu)")
    args = parser.parse_args(argv)
    if args.window <= 0 or args.hop <= 0 or args.block <= 0:
        parser.error("--window, --hop and --block must be positive")
    model = load_model(args.model, args.savedir, args.device)
    if not isinstance(model, EmotionClassifier):
        parser.error(f"{args.model} is not a classifier: streaming decides labels")
    chunks = pcm_chunks(sys.stdin.buffer, args.block) if args.input == "-" else file_chunks(args.input, args.block)
    pacer = Pacer() if args.realtime else None
    decisions, status = [], 0
    stream = model.stream(
        pacer(chunks) if pacer else chunks,
        args.window,
        args.hop,
        n_samples=args.samples,
        clock=pacer.clock if pacer else None,
    )
    try:
        for decision in stream:
            decisions.append(decision)
            print(json.dumps(decision.as_json()) if args.json else format_decision(decision), flush=True)
    except AudioLoadError as err:
        print(f"{args.input}: ERROR {err}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:  # a live source stopped with Ctrl-C: the decisions so far are summed up
        status = 130
    if decisions or status == 0:
        print(summary(decisions, args.hop), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
