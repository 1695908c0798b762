"""Cost of a masked-prediction pre-training step (FLEA's TAPT and CPT-HuBERT) over a plain HuBERT step, as a ratio.

Both sides run forward, backward and an AdamW step on the same batch with a
HuBERT-base architecture (random weights from ``HubertConfig()``, nothing is
downloaded) and the front-end frozen, as in pre-training:

- baseline: ``HubertModel`` forward and a loss on its last hidden state;
- CPT step (:class:`~speechbrain_ext.methods.flea.pretraining.MaskedPrediction`): span
  masking (80 % starts, 10 frames), the masked-frame projection to 256,
  cosine logits against the cluster embeddings, cross-entropy over masked
  frames, the feature penalty.

Each side's median over ``--repeats`` interleaved runs; target <= 1.15x.

Usage: ``python benchmarks/bench_cpt.py [--batch 4 --seconds 4 --clusters 50 --repeats 5]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch


def hubert_folder(config=None) -> str:
    """A HuBERT-base architecture with random weights, saved where ``from_pretrained`` can read it."""
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    folder = tempfile.mkdtemp(prefix="bench_hubert_")
    HubertModel(config or HubertConfig()).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=False).save_pretrained(folder)
    return folder


def bench_steps(source: str, batch: int, seconds: float, clusters: int, repeats: int) -> dict:
    """Median seconds of a plain HuBERT training step and of a masked-prediction step, on the same batch."""
    from speechbrain_ext.methods.flea.pretraining import MaskedPrediction

    torch.manual_seed(0)
    model = MaskedPrediction(source, n_clusters=clusters).train()
    wavs = torch.randn(batch, int(seconds * 16000)) * 0.1
    rng = np.random.default_rng(0)
    mask = model.mask(wavs.shape[1], batch, rng)
    labels = torch.randint(0, clusters, mask.shape)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)

    def plain():
        loss = model.hubert(wavs).last_hidden_state.pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def cpt():
        loss = model(wavs, labels, mask).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    plain(), cpt()  # warm-up
    times = {"HuBERT forward + backward + step": [], "masked-prediction step (CPT)": []}
    for _ in range(repeats):  # interleaved, so drift of the machine hits both alike
        for name, fn in zip(times, (plain, cpt)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def report(times: dict, target: float = 1.15) -> float:
    """Print both times and the ratio; return the ratio."""
    (base_name, base), (name, value) = times.items()
    ratio = value / base
    print(f"{base_name}: {base * 1000:.1f} ms")
    print(f"{name}: {value * 1000:.1f} ms ({ratio:.4f}x)")
    print(f"target <= {target:.2f}x: {'met' if ratio <= target else 'MISSED'}")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; HuBERT-base, batch {args.batch} x {args.seconds:g} s, {args.clusters} clusters"
    )
    report(bench_steps(hubert_folder(), args.batch, args.seconds, args.clusters, args.repeats))


if __name__ == "__main__":
    main()
