"""Streaming real-time factor of a wav2vec2-base-sized segment model on the CPU, with ratios to a baseline.

A voice-like signal is streamed through :meth:`EmotionClassifier.stream`
(:mod:`speechbrain_ext.serving.streaming`) in random chunks of 10-200 ms, as
fast as it goes, for each ``window:hop``. The real-time factor (RTF) is the
stream's own processing time (every ``next()`` of the decision iterator:
chunk handling, ring buffer and classification) over the audio's duration;
below 1 it keeps up with a live source. Each decision costs one forward pass
over the window, so RTF ~ (time per window) / hop.

Baselines, measured in the same run on the same windows, interleaved
decision by decision (so a burst of load from other processes hits all
alike), after a warm-up of all three at each window length:

- ``classify_file`` on the window written as a WAV file (what a user without
  streaming would do every hop: cut, write, classify), which must also give
  the same answer (largest probability difference printed);
- the bare encoder forward (``Wav2Vec2Model``) of the window: the floor.

The encoder is ``Wav2Vec2Config()`` (the wav2vec2-base architecture: 12
layers, 768 dimensions) with random weights, so nothing is downloaded; the
pooling and head are triplet_seg's (segments of 80 frames every 40, mean
pooling, linear head over 4 classes).

Usage: ``python benchmarks/bench_stream.py [--threads 2] [--seconds 20] [--configs 2.0:0.5 1.0:0.5] [--small] [--device cuda]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

LABELS = ["angry", "happy", "neutral", "sad"]
SR = 16000
SMALL = {  # --small: a tiny encoder with the base model's convolution strides, for a smoke run
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "conv_dim": (32,) * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}


def build_classifier(small: bool = False, seed: int = 0, device: str = "cpu"):
    """An in-memory :class:`EmotionClassifier` around a random wav2vec2-base-sized segment model."""
    from speechbrain.dataio.encoder import CategoricalEncoder
    from transformers import Wav2Vec2Config

    from speechbrain_ext.nn.encoders import SSLEncoder
    from speechbrain_ext.nn.models import SegmentModel
    from speechbrain_ext.nn.pooling import MaskedMeanPooling, SegmentPooling
    from speechbrain_ext.serving.inference import EmotionClassifier

    torch.manual_seed(seed)
    config = Wav2Vec2Config(**(SMALL if small else {}))
    extractor = {"do_normalize": True, "return_attention_mask": False}  # facebook/wav2vec2-base's preprocessing
    encoder = SSLEncoder(None, config=config.to_dict(), feature_extractor_config=extractor, freeze=True)
    head = torch.nn.Linear(config.hidden_size, len(LABELS), bias=False)
    torch.nn.init.normal_(head.weight, std=0.05)
    model = SegmentModel(
        encoder, MaskedMeanPooling(), head, torch.nn.LogSoftmax(dim=-1), SegmentPooling(80, 40), "most_confident"
    ).eval()
    label_encoder = CategoricalEncoder()
    label_encoder.update_from_iterable(LABELS)
    classifier = EmotionClassifier(
        modules={"model": model},
        hparams={"label_encoder": label_encoder, "n_classes": len(LABELS)},
        run_opts={"device": device},
    )
    classifier.mods.eval()
    return classifier


def voiced(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonics of a wandering pitch with a syllable-rate envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = rng.uniform(110, 200) * (1 + 0.2 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    envelope = 0.3 + 0.7 * np.sin(2 * np.pi * 2.0 * t) ** 2
    return (
        0.1 * envelope * sum(np.sin(h * phase) / h for h in range(1, 6)) + 0.01 * rng.standard_normal(len(t))
    ).astype(np.float32)


def chunks_of(signal: np.ndarray, seed: int = 0):
    """Random chunks of 10-200 ms."""
    rng = np.random.default_rng(seed)
    position = 0
    while position < len(signal):
        size = int(rng.integers(int(0.01 * SR), int(0.2 * SR)))
        yield signal[position : position + size]
        position += size


def run_config(classifier, signal: np.ndarray, window: float, hop: float, folder: Path) -> dict:
    """Stream ``signal`` once; after each decision, time the baselines on its window. Seconds per method, summed."""
    encoder, device = classifier.model.encoder.ssl_model.model, classifier.device
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    decisions = classifier.stream(chunks_of(signal), window, hop)
    stream_s = file_s = encoder_s = worst = 0.0
    latencies, n = [], 0
    while True:
        began = time.perf_counter()
        decision = next(decisions, None)
        stream_s += time.perf_counter() - began
        if decision is None:
            break
        n += 1
        latencies.append(decision.latency_ms)
        samples = signal[round(decision.start * SR) : round(decision.end * SR)]
        soundfile.write(folder / "window.wav", samples, SR, subtype="FLOAT")
        began = time.perf_counter()
        out_prob = classifier.classify_file(folder / "window.wav")[0].cpu()  # .cpu() waits for a GPU
        file_s += time.perf_counter() - began
        began = time.perf_counter()
        with torch.no_grad():
            encoder(torch.from_numpy(samples).unsqueeze(0).to(device))
            sync()
        encoder_s += time.perf_counter() - began
        worst = max(worst, float((out_prob[0].exp() - torch.tensor(list(decision.probabilities.values()))).abs().max()))
    duration = len(signal) / SR
    return {
        "window": window,
        "hop": hop,
        "decisions": n,
        "rtf": stream_s / duration,
        "stream_ms": 1000 * stream_s / n,
        "file_ms": 1000 * file_s / n,
        "encoder_ms": 1000 * encoder_s / n,
        "vs_file": stream_s / file_s,
        "vs_encoder": stream_s / encoder_s,
        "latency_median_ms": float(np.median(latencies)),
        "latency_p95_ms": float(np.percentile(latencies, 95)),
        "max_prob_difference": worst,
    }


def run(
    threads: int = 2,
    seconds: float = 20.0,
    configs=((2.0, 0.5),),
    small: bool = False,
    verbose: bool = True,
    device: str = "cpu",
):
    """Build the model, stream the signal for each ``(window, hop)``; print and return the rows."""
    torch.set_num_threads(threads)
    classifier = build_classifier(small, device=device)
    signal = voiced(seconds)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for window, hop in configs:
            # warm-up at this window's length (the first passes over a new input shape are slow), all three methods
            run_config(classifier, voiced(window + 2 * hop, seed=1), window, hop, Path(tmp))
            rows.append(run_config(classifier, signal, window, hop, Path(tmp)))
    result = {
        "encoder": "tiny wav2vec2 (--small)" if small else "wav2vec2-base architecture, random weights",
        "device": device,
        "threads": threads,
        "cpus": os.cpu_count(),
        "seconds": seconds,
        "rows": rows,
    }
    if verbose:
        report(result)
    return result


def report(result: dict) -> None:
    """Print the table of :func:`run`'s rows."""
    print(
        f"{result['encoder']}, segment model; {result['seconds']:g} s streamed in 10-200 ms chunks; "
        f"torch {torch.__version__}, {result['threads']} threads, {result['cpus']} CPUs, device {result['device']}"
    )
    print(
        f"    {'window/hop':>10} {'decisions':>9} {'stream ms':>9} {'file ms':>8} {'enc ms':>7} {'RTF':>6} "
        f"{'/ file':>7} {'/ enc':>6} {'lat p50':>8} {'lat p95':>8} {'max |dp|':>9}  real time"
    )
    for r in result["rows"]:
        print(
            f"    {r['window']:>4g}/{r['hop']:<5g} {r['decisions']:9d} {r['stream_ms']:9.1f} {r['file_ms']:8.1f} "
            f"{r['encoder_ms']:7.1f} {r['rtf']:6.3f} {r['vs_file']:6.3f}x {r['vs_encoder']:5.3f}x "
            f"{r['latency_median_ms']:8.1f} {r['latency_p95_ms']:8.1f} {r['max_prob_difference']:9.1e}  "
            + ("faster" if r["rtf"] < 1 else "SLOWER")
        )
    print(
        "    stream ms / file ms / enc ms: per decision (stream) and per window (classify_file of the window as a WAV, "
        "bare encoder forward); RTF = stream time / audio time; / file, / enc: stream time over the baseline's"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--configs", nargs="+", default=["2.0:0.5", "2.0:1.0", "1.0:0.5", "3.0:0.5"], help="window:hop in seconds"
    )
    parser.add_argument("--small", action="store_true", help="a tiny encoder: a smoke run")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args(argv)
    configs = [tuple(float(v) for v in c.split(":")) for c in args.configs]
    return run(args.threads, args.seconds, configs, args.small, device=args.device)


if __name__ == "__main__":
    main()
