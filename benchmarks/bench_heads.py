"""Cost of the papers' heads on top of a wav2vec2-base-sized encoder, as ratios.

Two comparisons, each measured in this run against its own baseline:

1. Inference: encoder forward + mean pooling + a Bayesian head with 500
   weight samples (compare2023, Figure 1) over the same with a linear head
   (1 sample). Target <= 1.05x. A Python loop over the 500 samples is timed
   too, to show what vectorising buys.
2. Training step (forward, backward, optimiser step): segment pooling
   (80/40 frames) + per-segment NLL + utterance NLL + triplet loss on
   segments (segment_triplet) over plain mean pooling + NLL. Target <= 1.05x.

The encoder is randomly initialised from ``Wav2Vec2Config()`` (the
wav2vec2-base architecture), so nothing is downloaded. The encoder's cost
is shared by both sides of each ratio, so it is timed once (median of
``--repeats``) and each head is timed on the encoder's real output (median
of ten times as many runs): timing noise of the encoder (several percent
on a busy CPU) would otherwise swamp differences of a few milliseconds.

Usage: ``python benchmarks/bench_heads.py [--batch 4 --seconds 4 --repeats 5]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model

from speechbrain_ext.nn.bayesian import BayesianLinear
from speechbrain_ext.nn.losses import TripletLoss, flatten_segments, segment_nll
from speechbrain_ext.nn.pooling import MaskedMeanPooling, SegmentPooling, frame_counts


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_bayes(encoder, wavs, lens, n_classes, n_samples, repeats):
    """Encoder forward once; each head on its pooled output, timed many times."""
    pool = MaskedMeanPooling()
    linear = torch.nn.Linear(encoder.config.hidden_size, n_classes)
    bayes = BayesianLinear.from_linear(linear)
    with torch.no_grad():
        encoder_s = _median_time(lambda: encoder(wavs).last_hidden_state, repeats)
        frames = encoder(wavs).last_hidden_state
        heads = {
            "linear head (1 sample)": lambda: linear(pool(frames, lens)),
            f"Bayesian head ({n_samples} samples, vectorised)": lambda: bayes(pool(frames, lens), n_samples=n_samples),
            f"Bayesian head ({n_samples} samples, Python loop)": lambda: torch.stack(
                [bayes(pool(frames, lens)) for _ in range(n_samples)]
            ),
        }
        return encoder_s, {name: _median_time(fn, 10 * repeats) for name, fn in heads.items()}


def bench_segments(encoder, wavs, lens, labels, n_classes, repeats):
    """Encoder forward + backward once; each head's forward + backward + step on its output."""
    dim = encoder.config.hidden_size
    mean_pool, seg_pool = MaskedMeanPooling(), SegmentPooling(80, 40)
    head = torch.nn.Linear(dim, n_classes)
    triplet = TripletLoss(margin=1.0)
    opt = torch.optim.Adam(head.parameters(), lr=1e-4)

    def encoder_step():
        frames = encoder(wavs).last_hidden_state
        frames.mean().backward()

    encoder_s = _median_time(encoder_step, repeats)
    frames = encoder(wavs).last_hidden_state.detach()

    def head_step(segmented: bool):
        opt.zero_grad()
        x = frames.clone().requires_grad_(True)  # the gradient to the encoder is part of the cost
        loss = torch.nn.functional.nll_loss(torch.log_softmax(head(mean_pool(x, lens)), -1), labels)
        if segmented:
            segments, mask = seg_pool(x, lens)
            loss = loss + segment_nll(torch.log_softmax(head(segments), -1), mask, labels)
            emb, seg_labels, seg_lens, groups = flatten_segments(
                segments, mask, labels, frame_counts(lens, x.shape[1]), 80
            )
            loss = 0.9 * loss + 0.1 * triplet(emb, seg_labels, seg_lens, groups)
        loss.backward()
        opt.step()

    heads = {
        "mean pooling + NLL": lambda: head_step(False),
        "segments 80/40 + segment NLL + triplet(S)": lambda: head_step(True),
    }
    return encoder_s, {name: _median_time(fn, 10 * repeats) for name, fn in heads.items()}


def report(title, encoder_name, encoder_s, heads, target):
    """Print totals (encoder + head) and their ratio to the first head's total."""
    base = encoder_s + next(iter(heads.values()))
    print(f"\n{title}")
    print(f"    {encoder_name}: {encoder_s:.3f} s")
    print(f"    {'head':52} {'head ms':>9} {'total s':>8} {'ratio':>7}")
    for name, t in heads.items():
        print(f"    {name:52} {t * 1000:9.2f} {encoder_s + t:8.3f} {(encoder_s + t) / base:6.3f}x")
    ratio = (encoder_s + list(heads.values())[1]) / base
    print(f"    target <= {target:.2f}x: {'met' if ratio <= target else 'MISSED'} ({ratio:.4f}x)")
    return ratio


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--classes", type=int, default=7)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    encoder = Wav2Vec2Model(Wav2Vec2Config())  # wav2vec2-base architecture, random weights
    wavs = torch.randn(args.batch, int(args.seconds * 16000))
    lens = torch.linspace(0.6, 1.0, args.batch)
    labels = torch.arange(args.batch) % 2
    print(
        f"wav2vec2-base-sized encoder, batch {args.batch} x {args.seconds:g} s, {torch.get_num_threads()} threads, median of {args.repeats}"
    )
    encoder.eval()
    bayes = report(
        "Inference: Bayesian head over linear head",
        "encoder forward",
        *bench_bayes(encoder, wavs, lens, args.classes, args.samples, args.repeats),
        1.05,
    )
    encoder.train()
    encoder.feature_extractor._freeze_parameters()  # the papers keep the conv encoder frozen
    seg = report(
        "Training step: segment pooling + losses over mean pooling",
        "encoder forward + backward",
        *bench_segments(encoder, wavs, lens, labels, args.classes, args.repeats),
        1.05,
    )
    return bayes, seg


if __name__ == "__main__":
    main()
