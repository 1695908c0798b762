"""Bhattacharyya distance between two models' self-attention maps, per layer and head, averaged over utterances (w2v2_info_recovery eq. 1)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from speechbrain_ext.analysis.attention_capture import attention_maps
from speechbrain_ext.analysis.runs import ModelSpec
from speechbrain_ext.data.audio import TARGET_SAMPLE_RATE, load_audio
from speechbrain_ext.nn.encoders import SSLEncoder
from speechbrain_ext.utils.fileio import is_local_path


def bhattacharyya_rows(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Row-wise Bhattacharyya distance of two stacks of attention maps, averaged over rows (w2v2_info_recovery eq. 1).

    Arguments
    ---------
    a, b : torch.Tensor
        ``(..., N, N)`` maps of the same shape whose rows are distributions
        (``(layers, heads, N, N)`` from :func:`~speechbrain_ext.analysis.attention_capture.attention_maps`).
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


def load_encoder(model: SSLEncoder | ModelSpec | str) -> SSLEncoder:
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


def select_utterances(entries: Mapping[str, dict], max_files: int | None) -> list[str]:
    """The first ``max_files`` ids of a manifest (all of them when None), each checked to have an existing ``wav``."""
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
    ids = select_utterances(entries, max_files)
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")
    encoder_a, encoder_b = load_encoder(model_a), load_encoder(model_b)
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
