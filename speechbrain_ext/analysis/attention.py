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
import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from speechbrain_ext.analysis.runs import ModelSpec, read_resolved_manifest
from speechbrain_ext.data.audio import TARGET_SAMPLE_RATE, load_audio
from speechbrain_ext.evaluation.reports import pyplot
from speechbrain_ext.nn.encoders import SSLEncoder
from speechbrain_ext.utils.fileio import atomic_write_json, atomic_write_text, is_local_path

logger = logging.getLogger(__name__)

# Tolerance of the checks that every attention row is a distribution and that
# the recomputed WavLM heads average to what Hugging Face returns.
ROW_SUM_TOLERANCE = 1e-3
WAVLM_MEAN_TOLERANCE = 1e-4


def max_samples_for_frames(encoder: SSLEncoder, max_frames: int) -> int:
    """The longest waveform (in samples) the encoder's convolutional front end turns into at most ``max_frames`` frames.

    Arguments
    ---------
    encoder : SSLEncoder
        The encoder (its ``conv_kernel`` and ``conv_stride``).
    max_frames : int
        Frame budget, at least 1.

    Returns
    -------
    int
        Sample count.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
    >>> enc = SSLEncoder(write_tiny_ssl(tempfile.mkdtemp()), tempfile.mkdtemp(), freeze=True)
    >>> n = max_samples_for_frames(enc, 49)
    >>> enc.frame_lengths(torch.tensor([n, n + 1])).tolist()
    [49, 50]
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    config = encoder.ssl_model.model.config
    length = max_frames + 1  # the shortest input giving max_frames + 1 frames, minus one sample
    for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride))):
        length = (length - 1) * int(stride) + int(kernel)
    return length - 1


def _set_attn_implementation(model, name: str) -> None:
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(name)
    else:  # older transformers
        model.config._attn_implementation = name


def _wavlm_per_head(attention, original):
    """Wrap a ``WavLMAttention``'s ``torch_multi_head_self_attention`` to return per-head weights ``(batch, heads, T, T)``."""

    def per_head(hidden_states, attention_mask, gated_position_bias):
        output, averaged = original(hidden_states, attention_mask, gated_position_bias)
        bsz, length, _ = hidden_states.shape
        heads, dim = attention.num_heads, attention.head_dim
        q = (attention.q_proj(hidden_states) * dim**-0.5).view(bsz, length, heads, dim).transpose(1, 2)
        k = attention.k_proj(hidden_states).view(bsz, length, heads, dim).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) + gated_position_bias.view(bsz, heads, length, length)
        if attention_mask is not None:
            scores = scores.masked_fill(attention_mask.ne(1)[:, None, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        if averaged is not None and (weights.mean(dim=1) - averaged[:, 0]).abs().max() > WAVLM_MEAN_TOLERANCE:
            raise RuntimeError(
                "WavLM per-head attention does not average to the maps transformers returns; its attention code changed"
            )
        return output, weights

    return per_head


@contextlib.contextmanager
def eager_attention(encoder: SSLEncoder) -> Iterator[None]:
    """Within the block, the encoder's Hugging Face model returns per-head attention maps (eager attention; WavLM's heads recomputed).

    The previous attention implementation is restored on exit.

    Arguments
    ---------
    encoder : SSLEncoder
        The encoder to switch.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
    >>> enc = SSLEncoder(write_tiny_ssl(tempfile.mkdtemp()), tempfile.mkdtemp(), freeze=True)
    >>> before = enc.ssl_model.model.config._attn_implementation
    >>> with eager_attention(enc):
    ...     enc.ssl_model.model.config._attn_implementation
    'eager'
    >>> enc.ssl_model.model.config._attn_implementation == before
    True
    """
    model = encoder.ssl_model.model
    previous = getattr(model.config, "_attn_implementation", None)
    patched = []
    if previous != "eager":
        _set_attn_implementation(model, "eager")
    for module in model.modules():
        if type(module).__name__ == "WavLMAttention" and hasattr(module, "torch_multi_head_self_attention"):
            original = module.torch_multi_head_self_attention
            module.torch_multi_head_self_attention = _wavlm_per_head(module, original)
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.torch_multi_head_self_attention  # back to the class's method
        if previous is not None and previous != "eager":
            _set_attn_implementation(model, previous)


@torch.no_grad()
def attention_maps(encoder: SSLEncoder, wav: torch.Tensor, max_frames: int | None = None) -> torch.Tensor:
    """Self-attention maps of every transformer layer and head for one utterance.

    Arguments
    ---------
    encoder : SSLEncoder
        A wav2vec2, HuBERT or WavLM encoder (eval mode; the layers it computes).
    wav : torch.Tensor
        ``(samples,)`` 16 kHz waveform.
    max_frames : int, optional
        Crop the waveform (keeping its start) so that ``N <= max_frames``
        (memory grows with ``N**2``).

    Returns
    -------
    torch.Tensor
        ``(layers, heads, N, N)`` float32; row ``i`` of map ``[l, h]`` is
        frame ``i``'s attention distribution over the frames.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
    >>> enc = SSLEncoder(write_tiny_ssl(tempfile.mkdtemp()), tempfile.mkdtemp(), freeze=True).eval()
    >>> maps = attention_maps(enc, torch.randn(16000), max_frames=20)
    >>> tuple(maps.shape), bool(torch.allclose(maps.sum(-1), torch.ones(1), atol=1e-5))
    ((3, 4, 20, 20), True)
    """
    if wav.dim() != 1:
        raise ValueError(f"attention_maps takes one waveform (samples,), got shape {tuple(wav.shape)}")
    if max_frames is not None:
        wav = wav[: max_samples_for_frames(encoder, max_frames)]
    model = encoder.ssl_model.model
    device = next(model.parameters()).device
    wavs = wav[None].to(device=device, dtype=torch.float32)
    n_samples = torch.tensor([wavs.shape[1]], device=device)
    with eager_attention(encoder):
        out = model(
            encoder._prepare_input(wavs, n_samples),
            attention_mask=encoder._mask(wavs, n_samples),
            output_attentions=True,
        )
    attentions = out.attentions
    if not attentions or any(a is None for a in attentions):
        raise RuntimeError(f"{type(model).__name__} returned no attention maps with eager attention")
    maps = torch.cat([a.float() for a in attentions], dim=0)  # (layers, heads, N, N): batch of one
    if maps.shape[0] != encoder.n_layers:
        raise RuntimeError(
            f"{type(model).__name__} returned {maps.shape[0]} attention maps for {encoder.n_layers} layers"
        )
    worst = float((maps.sum(dim=-1) - 1).abs().max()) if maps.numel() else 0.0
    if worst > ROW_SUM_TOLERANCE:
        raise RuntimeError(f"attention rows do not sum to 1 (off by up to {worst:.2g})")
    return maps


def bhattacharyya_rows(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Row-wise Bhattacharyya distance of two stacks of attention maps, averaged over rows (w2v2_info_recovery eq. 1).

    Arguments
    ---------
    a, b : torch.Tensor
        ``(..., N, N)`` maps of the same shape whose rows are distributions
        (``(layers, heads, N, N)`` from :func:`attention_maps`).
    eps : float
        Floor of the Bhattacharyya coefficient (rows with disjoint support
        give ``-ln(eps)`` instead of infinity).

    Returns
    -------
    torch.Tensor
        ``(...)`` float64: ``mean_i -ln sum_j sqrt(a[..., i, j] * b[..., i, j])``,
        ``(layers, heads)`` for attention maps; never negative.

    Example
    -------
    >>> a = torch.softmax(torch.randn(2, 3, 5, 5), dim=-1)
    >>> b = torch.softmax(torch.randn(2, 3, 5, 5), dim=-1)
    >>> d = bhattacharyya_rows(a, b)
    >>> tuple(d.shape), float(bhattacharyya_rows(a, a).abs().max()) < 1e-6, bool((d > 0).all())
    ((2, 3), True, True)
    >>> p, q = torch.tensor([[0.5, 0.5], [1.0, 0.0]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    >>> round(float(bhattacharyya_rows(p, q)), 4)  # rows: -ln sqrt(0.5) and 0
    0.1733
    """
    if a.shape != b.shape:
        raise ValueError(f"attention maps differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() < 2:
        raise ValueError(f"attention maps need at least 2 dimensions (rows, columns), got shape {tuple(a.shape)}")
    a, b = a.double().clamp_min(0), b.double().clamp_min(0)
    coefficient = torch.sqrt(a * b).sum(dim=-1).clamp(min=eps, max=1.0)  # rounding can push sum(sqrt(p p)) just above 1
    return (-torch.log(coefficient)).mean(dim=-1)


def _encoder(model: SSLEncoder | ModelSpec | str) -> SSLEncoder:
    """An eval-mode encoder from an encoder, a model spec or a run folder / HF folder / hub id."""
    if isinstance(model, SSLEncoder):
        return model.eval()
    spec = model if isinstance(model, ModelSpec) else ModelSpec(str(model))
    if is_local_path(spec.spec) and not Path(spec.spec).exists():
        raise FileNotFoundError(f"{spec.spec}: no such run folder or model folder")
    try:
        return spec.encoder()
    except OSError as err:
        raise ValueError(f"{spec.spec}: cannot load the model ({err})") from err


def _name(model, encoder: SSLEncoder) -> str:
    if isinstance(model, ModelSpec):
        return model.spec
    return str(model) if not isinstance(model, SSLEncoder) else str(encoder.source)


def _shape(encoder: SSLEncoder) -> tuple[int, int]:
    return encoder.n_layers, int(encoder.ssl_model.model.config.num_attention_heads)


def check_compatible(
    encoder_a: SSLEncoder, encoder_b: SSLEncoder, name_a: str = "model A", name_b: str = "model B"
) -> tuple[int, int]:
    """``(layers, heads)`` shared by two encoders; a ValueError naming both when they differ.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
    >>> path, cache = write_tiny_ssl(tempfile.mkdtemp()), tempfile.mkdtemp()
    >>> full, cut = SSLEncoder(path, cache, freeze=True), SSLEncoder(path, cache, layer=2, freeze=True)
    >>> check_compatible(full, full)
    (3, 4)
    >>> check_compatible(full, cut, "full", "cut")
    Traceback (most recent call last):
    ...
    ValueError: full has 3 layers x 4 heads but cut has 2 layers x 4 heads; attention maps can only be compared between models of the same architecture (a run whose encoder selects a lower layer computes only the layers up to it)
    """
    shape_a, shape_b = _shape(encoder_a), _shape(encoder_b)
    if shape_a != shape_b:
        raise ValueError(
            f"{name_a} has {shape_a[0]} layers x {shape_a[1]} heads but {name_b} has {shape_b[0]} layers x {shape_b[1]} heads; "
            "attention maps can only be compared between models of the same architecture "
            "(a run whose encoder selects a lower layer computes only the layers up to it)"
        )
    return shape_a


def _select(entries: Mapping[str, dict], max_files: int | None) -> list[str]:
    ids = list(entries)
    if max_files is not None:
        if max_files < 1:
            raise ValueError(f"max_files must be at least 1, got {max_files}")
        ids = ids[:max_files]
    if not ids:
        raise ValueError("no utterances to compare (empty manifest)")
    for utt in ids:
        if "wav" not in entries[utt]:
            raise KeyError(f"manifest entry {utt} has no 'wav'")
        if not Path(entries[utt]["wav"]).is_file():
            raise FileNotFoundError(f"{entries[utt]['wav']}: audio of {utt} not found")
    return ids


def attention_distance(
    model_a: SSLEncoder | ModelSpec | str,
    model_b: SSLEncoder | ModelSpec | str,
    entries: Mapping[str, dict],
    max_files: int | None = None,
    max_seconds: float | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Eq. (1) of w2v2_info_recovery per layer and head, averaged over utterances.

    Both models encode the same (cropped) audio, one utterance at a time;
    each utterance counts equally however long it is.

    Arguments
    ---------
    model_a, model_b : SSLEncoder, ModelSpec or str
        Encoders, or run folders / HF folders / hub ids to load them from.
    entries : Mapping
        Manifest entries ``{id: {"wav": path, ...}}``; the first
        ``max_files`` in manifest order are used.
    max_files : int, optional
        Utterances to use.
    max_seconds : float, optional
        Keep the first ``max_seconds`` of each utterance.
    progress : bool
        Show a progress bar.

    Returns
    -------
    np.ndarray
        ``(layers, heads)`` mean distances (float64).

    Example
    -------
    >>> import tempfile, soundfile
    >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
    >>> tmp = Path(tempfile.mkdtemp())
    >>> soundfile.write(tmp / "a.wav", np.random.default_rng(0).normal(0, 0.1, 16000), 16000)
    >>> a, b = write_tiny_ssl(tmp / "a", seed=0), write_tiny_ssl(tmp / "b", seed=1)
    >>> d = attention_distance(a, b, {"u": {"wav": str(tmp / "a.wav")}}, max_seconds=0.5, progress=False)
    >>> d.shape, bool((d > 0).all())
    ((3, 4), True)
    """
    ids = _select(entries, max_files)
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")
    encoder_a, encoder_b = _encoder(model_a), _encoder(model_b)
    check_compatible(
        encoder_a, encoder_b, f"model A ({_name(model_a, encoder_a)})", f"model B ({_name(model_b, encoder_b)})"
    )
    device = next(encoder_a.parameters()).device
    total = None
    for utt in tqdm(ids, desc="attention", unit="file", disable=not progress):
        wav = load_audio(entries[utt]["wav"])
        if max_seconds is not None:
            wav = wav[: max(1, int(round(max_seconds * TARGET_SAMPLE_RATE)))]
        maps_a = attention_maps(encoder_a, wav)
        maps_b = attention_maps(encoder_b, wav)
        if maps_a.shape != maps_b.shape:
            raise ValueError(
                f"{utt}: the two models give attention maps of shapes {tuple(maps_a.shape)} and {tuple(maps_b.shape)} (different front ends?)"
            )
        dist = bhattacharyya_rows(maps_a, maps_b.to(device))
        total = dist if total is None else total + dist
        del maps_a, maps_b
    return (total / len(ids)).cpu().numpy()


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
    ids = _select(entries, args.max_files)
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise ValueError(f"--max_seconds must be positive, got {args.max_seconds}")
    encoder_a, encoder_b = _encoder(args.run_a), _encoder(args.run_b)
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
