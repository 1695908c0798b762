"""Frame labels for masked prediction: one layer's frames streamed to disk in shards (:func:`extract_frames`),
scikit-learn's ``MiniBatchKMeans`` fitted on a bounded sample (:func:`fit_kmeans`), every frame labelled
(:func:`assign_labels`); or fairseq's k-means model file (a joblib pickle of a scikit-learn model).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from speechbrain_ext.data.audio import load_audio
from speechbrain_ext.utils.fileio import atomic_write_json

logger = logging.getLogger(__name__)


@torch.no_grad()
def extract_frames(
    encoder, items: Sequence[dict], folder: str | os.PathLike, shard_frames: int = 20000, progress: bool = True
) -> dict:
    """Write one layer's frames of every item to ``folder`` in float16 shards; resumable shard by shard.

    Arguments
    ---------
    encoder : SSLEncoder
        Returns the chosen layer's frames (one utterance at a time, so nothing depends on padding).
    items : sequence of dict
        ``{"id", "path"}`` (:func:`manifest_items`).
    folder : path
        Output: ``shard_<k>.npy`` and ``index.json`` (per utterance: shard, offset, frames).
    shard_frames : int
        Frames per shard (memory stays one shard's).

    Returns
    -------
    dict
        The index.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index_file = folder / "index.json"
    index = json.loads(index_file.read_text()) if index_file.is_file() else {"utts": [], "complete": False}
    if index["complete"]:
        return index
    done = {u["id"] for u in index["utts"]}
    device = next(encoder.parameters()).device
    encoder.eval()
    pending, buffered, shard = [], 0, len({u["shard"] for u in index["utts"]})
    todo = [item for item in items if item["id"] not in done]
    for item in tqdm(todo, desc="frames", unit="utt", disable=not progress):
        wav = load_audio(item["path"]).to(device)
        frames, _ = encoder(wav.unsqueeze(0), torch.ones(1, device=device))
        pending.append((item, frames[0].float().cpu().numpy().astype(np.float16)))
        buffered += frames.shape[1]
        if buffered >= shard_frames:
            _flush_shard(folder, index, pending, shard)
            pending, buffered, shard = [], 0, shard + 1
    if pending:
        _flush_shard(folder, index, pending, shard)
    index.update(complete=True, dim=int(encoder.output_dim), frame_rate=float(encoder.frame_rate))
    atomic_write_json(index_file, index)
    return index


def _flush_shard(folder: Path, index: dict, pending: list, shard: int) -> None:
    """Write a shard atomically, then record its utterances in the index (a kill between the two redoes the shard)."""
    offset, rows = 0, []
    for item, frames in pending:
        rows.append(
            {"id": item["id"], "path": item["path"], "shard": shard, "offset": offset, "frames": int(len(frames))}
        )
        offset += len(frames)
    tmp = folder / f"shard_{shard}.tmp.npy"
    np.save(tmp, np.concatenate([frames for _, frames in pending]))
    os.replace(tmp, folder / f"shard_{shard}.npy")
    index["utts"].extend(rows)
    atomic_write_json(folder / "index.json", index)


def iter_shards(folder: str | os.PathLike):
    """``(utterance rows, frames (n, dim) float32)`` of each shard of :func:`extract_frames`."""
    folder = Path(folder)
    index = json.loads((folder / "index.json").read_text())
    for shard in sorted({u["shard"] for u in index["utts"]}):
        rows = [u for u in index["utts"] if u["shard"] == shard]
        yield rows, np.load(folder / f"shard_{shard}.npy").astype(np.float32)


def fit_kmeans(
    folder: str | os.PathLike,
    n_clusters: int,
    seed: int = 0,
    max_fit_frames: int = 250_000,
    batch_size: int = 10_000,
    n_init: int = 20,
    max_iter: int = 100,
):
    """scikit-learn ``MiniBatchKMeans`` (k-means++, as the HFLEA code) on a uniform sample of at most ``max_fit_frames`` stored frames.

    The sample keeps memory bounded on a full corpus (fairseq's HuBERT
    recipe fits on a percentage of the frames likewise); every frame is
    labelled afterwards by :func:`assign_labels`.
    """
    from sklearn.cluster import MiniBatchKMeans

    index = json.loads((Path(folder) / "index.json").read_text())
    total = sum(u["frames"] for u in index["utts"])
    keep = min(1.0, max_fit_frames / max(total, 1))
    rng = np.random.default_rng(seed)
    sample = np.concatenate(
        [frames[rng.random(len(frames)) < keep] if keep < 1.0 else frames for _, frames in iter_shards(folder)]
    )
    if len(sample) < n_clusters:
        raise ValueError(f"{folder}: {len(sample)} frames cannot make {n_clusters} clusters")
    kmeans = MiniBatchKMeans(
        n_clusters=n_clusters,
        init="k-means++",
        batch_size=batch_size,
        n_init=n_init,
        max_iter=max_iter,
        random_state=seed,
    )
    return kmeans.fit(sample)


def assign_labels(kmeans, folder: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Label every stored frame with its cluster; write ``out`` (``.npz``: one int16 array per utterance) atomically.

    Returns
    -------
    dict
        Utterance id -> labels.
    """
    labels = {}
    for rows, frames in iter_shards(folder):
        predicted = kmeans.predict(frames).astype(np.int16)
        for row in rows:
            labels[row["id"]] = predicted[row["offset"] : row["offset"] + row["frames"]]
    out = Path(out)
    tmp = out.with_name(out.stem + ".tmp.npz")
    np.savez(tmp, **labels)
    os.replace(tmp, out)
    return labels


def load_labels(path: str | os.PathLike) -> dict:
    """Utterance id -> frame labels, from :func:`assign_labels`'s file."""
    with np.load(path) as data:
        return {utt: data[utt] for utt in data.files}
