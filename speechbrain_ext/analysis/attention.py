"""attention RUN_A RUN_B: Bhattacharyya distance between two models' self-attention maps per layer and head (w2v2_info_recovery eq. 1, Fig. 4).

Each transformer layer ``l`` and head ``h`` of an SSL encoder gives, for one
utterance of ``N`` frames, an ``N x N`` self-attention map (SAM) whose rows
are probability distributions. Two models that share an architecture (a
pre-trained model and its fine-tuned run, an ASR and an SER run) are fed the
same audio and compared row by row (w2v2_info_recovery, eq. 1)::

    Dis[l, h] = 1/N * sum_i BC(A_a[l, h, i], A_b[l, h, i]),   BC(p, q) = -ln sum_j sqrt(p_j q_j)

averaged over utterances, each with equal weight. 0 means identical
attention; larger values mean the two heads attend differently.

Each utterance is cropped to its first ``--max_seconds`` (the maps grow with
the square of its length). Hugging Face returns attention weights only with
its eager attention implementation, which is switched on for the analysis and
switched back afterwards; it computes the same outputs. WavLM's Hugging Face
attention returns the maps averaged over heads; its per-head maps are
recomputed from the layer's projections and gated relative position bias
(checked against that average).

    python -m speechbrain_ext.analysis attention results/ser_run results/asr_run --out analysis/attention
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import numpy as np

from speechbrain_ext.analysis.bhattacharyya import attention_distance, check_compatible, load_encoder, select_utterances
from speechbrain_ext.analysis.runs import ModelSpec, read_resolved_manifest
from speechbrain_ext.evaluation.plots import pyplot
from speechbrain_ext.utils.fileio import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)


def plot_attention_distance(dist: np.ndarray, path: str | os.PathLike, title: str = "") -> None:
    """Save the layers x heads distance heatmap (as w2v2_info_recovery Fig. 4) beside the per-layer mean with min/max over heads.

    Arguments
    ---------
    dist : np.ndarray
        ``(layers, heads)`` distances; layer 1 is the first transformer layer.
    path : str or PathLike
        PNG to write.
    title : str
        Figure title.

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "attention.png"
    >>> plot_attention_distance(np.random.default_rng(0).random((3, 4)), path, "a vs b")
    >>> path.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    plt = pyplot()

    dist = np.asarray(dist, dtype=float)
    if dist.ndim != 2:
        raise ValueError(f"expected a (layers, heads) matrix, got shape {dist.shape}")
    n_layers, n_heads = dist.shape
    layers = np.arange(1, n_layers + 1)
    fig, (ax, side) = plt.subplots(
        1,
        2,
        figsize=(2.5 + 0.45 * n_heads + 2.6, 1.4 + 0.38 * n_layers),
        sharey=True,
        gridspec_kw={"width_ratios": [max(n_heads, 2), 4]},
    )
    image = ax.imshow(
        dist, cmap="viridis", origin="lower", aspect="auto", extent=(0.5, n_heads + 0.5, 0.5, n_layers + 0.5)
    )
    if n_layers * n_heads <= 400:
        threshold = dist.min() + 0.6 * (dist.max() - dist.min())
        for layer in range(n_layers):
            for head in range(n_heads):
                value = dist[layer, head]
                ax.text(
                    head + 1,
                    layer + 1,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="black" if value > threshold else "white",
                )
    ax.set_xticks(range(1, n_heads + 1))
    ax.set_yticks(layers)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    fig.colorbar(image, ax=ax, label="Bhattacharyya distance", fraction=0.05, pad=0.02)
    mean = dist.mean(axis=1)
    side.fill_betweenx(
        layers, dist.min(axis=1), dist.max(axis=1), color="tab:blue", alpha=0.25, label="min-max over heads"
    )
    side.plot(mean, layers, "o-", color="tab:blue", label="mean over heads")
    side.set_xlabel("distance")
    side.set_xlim(left=0)
    side.grid(alpha=0.3)
    side.legend(fontsize=7, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``attention`` verb's options.

    Example
    -------
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["run_a", "facebook/wav2vec2-base", "--out", "x"])
    >>> args.split, args.max_files, args.max_seconds, args.manifest
    ('test', 50, 10.0, None)
    """
    parser.add_argument("run_a", help="first model: recipe run folder, Hugging Face model folder or hub id")
    parser.add_argument("run_b", help="second model, same architecture (layers and heads)")
    parser.add_argument(
        "--manifest", help="JSON manifest of the utterances (default: run_a's manifest of --split, when run_a is a run)"
    )
    parser.add_argument("--data_folder", help="corpus folder for {data_root} manifests (default: run_a's)")
    parser.add_argument("--split", default="test", help="run_a's manifest to use without --manifest (default: test)")
    parser.add_argument(
        "--max_files", type=int, default=50, help="utterances to average over, in manifest order (default: 50)"
    )
    parser.add_argument(
        "--max_seconds",
        type=float,
        default=10.0,
        help="keep each utterance's first seconds; memory grows with its square (default: 10)",
    )
    parser.add_argument("--out", required=True, help="output folder (attention_distance.csv, .json, .png)")
    parser.add_argument("--noprogressbar", action="store_true", help="no progress bar")


def _entries(args: argparse.Namespace) -> tuple[dict, str]:
    run_a = ModelSpec(args.run_a).run if Path(args.run_a).is_dir() else None
    data_folder = args.data_folder or (run_a.values.get("data_folder") if run_a is not None else None)
    if args.manifest:
        path = Path(args.manifest)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: manifest not found")
    elif run_a is not None:
        path = run_a.manifest(args.split)
    else:
        raise ValueError(f"{args.run_a} is not a recipe run: give the utterances with --manifest")
    return read_resolved_manifest(path, data_folder), str(path)


def run(args: argparse.Namespace) -> dict:
    """Compare ``args.run_a`` and ``args.run_b``; write ``attention_distance.{csv,json,png}`` into ``args.out``.

    Inputs are checked (manifest, audio files, both models loaded and of the
    same architecture) before anything is encoded.

    Returns
    -------
    dict
        What ``attention_distance.json`` holds.

    Example
    -------
    >>> import tempfile, soundfile
    >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
    >>> tmp = Path(tempfile.mkdtemp())
    >>> soundfile.write(tmp / "a.wav", np.random.default_rng(0).normal(0, 0.1, 8000), 16000)
    >>> _ = (tmp / "m.json").write_text(json.dumps({"u": {"wav": str(tmp / "a.wav"), "duration": 0.5}}))
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> model = write_tiny_ssl(tmp / "model")
    >>> result = run(parser.parse_args([model, model, "--manifest", str(tmp / "m.json"), "--out", str(tmp / "out"), "--noprogressbar"]))
    >>> result["n_files"], result["layer_mean"]
    (1, [0.0, 0.0, 0.0])
    """
    entries, manifest = _entries(args)
    ids = select_utterances(entries, args.max_files)
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise ValueError(f"--max_seconds must be positive, got {args.max_seconds}")
    encoder_a, encoder_b = load_encoder(args.run_a), load_encoder(args.run_b)
    n_layers, n_heads = check_compatible(encoder_a, encoder_b, f"run_a ({args.run_a})", f"run_b ({args.run_b})")
    logger.info(
        "attention: %s vs %s, %d layers x %d heads, %d files (first %.1f s each)",
        args.run_a,
        args.run_b,
        n_layers,
        n_heads,
        len(ids),
        args.max_seconds,
    )
    dist = attention_distance(
        encoder_a,
        encoder_b,
        {utt: entries[utt] for utt in ids},
        max_seconds=args.max_seconds,
        progress=not args.noprogressbar,
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["layer,head,distance"] + [
        f"{layer + 1},{head + 1},{dist[layer, head]:.6g}" for layer in range(n_layers) for head in range(n_heads)
    ]
    atomic_write_text(out / "attention_distance.csv", "\n".join(lines) + "\n")
    result = {
        "models": {"a": args.run_a, "b": args.run_b},
        "manifest": manifest,
        "n_files": len(ids),
        "max_seconds": args.max_seconds,
        "layers": n_layers,
        "heads": n_heads,
        "layer_mean": [round(float(v), 6) + 0.0 for v in dist.mean(axis=1)],
        "layer_min": [round(float(v), 6) + 0.0 for v in dist.min(axis=1)],
        "layer_max": [round(float(v), 6) + 0.0 for v in dist.max(axis=1)],
        "distance": [[float(v) for v in row] for row in dist],
    }
    atomic_write_json(out / "attention_distance.json", result)
    title = f"{Path(args.run_a).name or args.run_a} vs {Path(args.run_b).name or args.run_b} ({len(ids)} files)"
    plot_attention_distance(dist, out / "attention_distance.png", title)
    logger.info("attention: per-layer mean distance %s; wrote %s", json.dumps(result["layer_mean"]), out)
    return result
