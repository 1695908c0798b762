"""embed: per-layer mean-pooled embeddings of an SSL model over manifests, cached on disk in shards (keyed by model and layer).

``<cache>/<model key>/L<layer>/<shard>.npy`` holds one layer's embeddings of
one shard of utterances, ``index.json`` the shards' utterance ids. Shards are
written whole (atomic renames) and the index last, so a killed extraction
resumes at the first missing shard; a later manifest (another fold) only
encodes the utterances not cached yet. Each utterance is encoded alone, so an
embedding never depends on which files were batched with it (group-norm
front-ends see padding).

The verb also writes, per layer, how far apart the classes lie (the ratio of
between-class to within-class scatter, when the manifests carry labels) and
the mean embedding norm: ``embed_layers.csv`` and ``embed_layers.png``.

    python -m speechbrain_ext.analysis embed --model facebook/wav2vec2-base \\
        --manifest results/prep/test.json --data_folder /data/IEMOCAP --cache embeddings
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from speechbrain_ext.analysis.runs import ModelSpec, RecipeRun, RunError, read_resolved_manifest
from speechbrain_ext.data.audio import load_audio
from speechbrain_ext.evaluation.plots import pyplot
from speechbrain_ext.evaluation.reports import csv_text
from speechbrain_ext.utils.fileio import atomic_write_json, atomic_write_text


def _atomic_save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


@torch.no_grad()
def pooled_states(encoder, wav: torch.Tensor) -> np.ndarray:
    """``(n_states, dim)``: every hidden state of one utterance, averaged over its frames.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ext.nn.encoders import SSLEncoder
    >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
    >>> enc = SSLEncoder(write_tiny_ssl(tempfile.mkdtemp()), tempfile.mkdtemp(), freeze=True).eval()
    >>> wav = torch.randn(16000)
    >>> pooled = pooled_states(enc, wav)
    >>> pooled.shape, bool(np.allclose(pooled[-1], enc(wav[None])[0][0].mean(0).numpy(), atol=1e-5))
    ((4, 64), True)
    """
    states, n_frames = encoder.hidden_states(wav[None])
    n = int(n_frames[0])
    return torch.stack([s[0, :n].mean(dim=0) for s in states]).float().cpu().numpy()


@dataclass
class LayerEmbeddings:
    """Embeddings of a list of utterances, one matrix per layer, read from the cache on demand."""

    folder: Path
    ids: list[str]
    n_states: int
    dim: int

    @cached_property
    def _shards(self) -> list[dict]:
        return json.loads((self.folder / "index.json").read_text(encoding="utf-8"))["shards"]

    def layer(self, index: int) -> np.ndarray:
        """``(len(ids), dim)`` float32 embeddings of hidden state ``index`` (0: the CNN's projection; -1: the last layer)."""
        index = range(self.n_states)[index]
        wanted, where, blocks = set(self.ids), {}, []
        for shard in self._shards:
            rows = [i for i, utt in enumerate(shard["ids"]) if utt in wanted]
            if rows:
                data = np.load(self.folder / f"L{index}" / f"{shard['name']}.npy", mmap_mode="r")
                for row in rows:
                    where[shard["ids"][row]] = len(where)
                blocks.append(np.asarray(data[rows]))
        stacked = np.concatenate(blocks) if blocks else np.zeros((0, self.dim), np.float32)
        missing = [i for i in self.ids if i not in where]
        if missing:
            raise KeyError(f"{self.folder}: {len(missing)} utterance(s) not embedded, e.g. {missing[:3]}")
        return stacked[[where[i] for i in self.ids]]


class EmbeddingCache:
    """The shard cache of one model.

    Arguments
    ---------
    cache_folder : str or Path
        Root of the caches of all models.
    model : str or ModelSpec
        Run folder, HF folder or hub id.
    shard_size : int
        Utterances per shard (memory while encoding: one shard of every layer).

    Example
    -------
    >>> import tempfile, soundfile
    >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
    >>> tmp = Path(tempfile.mkdtemp())
    >>> for name in "abc":
    ...     soundfile.write(tmp / f"{name}.wav", np.random.default_rng(0).normal(0, 0.1, 8000 * (2 + (name == "b"))), 16000)
    >>> entries = {name: {"wav": str(tmp / f"{name}.wav")} for name in "abc"}
    >>> cache = EmbeddingCache(tmp / "cache", write_tiny_ssl(tmp / "model"), shard_size=2)
    >>> emb = cache.embed(entries, progress=False)
    >>> emb.layer(-1).shape, emb.n_states, len(json.loads((cache.folder / "index.json").read_text())["shards"])
    ((3, 64), 4, 2)
    >>> cache.embed({"b": entries["b"]}, progress=False).layer(1).shape  # cached: nothing encoded
    (1, 64)
    """

    def __init__(self, cache_folder: str | os.PathLike, model: str | ModelSpec, shard_size: int = 256):
        self.model = model if isinstance(model, ModelSpec) else ModelSpec(str(model))
        self.folder = Path(cache_folder) / self.model.key
        self.shard_size = shard_size
        self._encoder = None

    def _index(self) -> dict:
        path = self.folder / "index.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        return {"model": self.model.spec, "shards": [], "n_states": None, "dim": None}

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = self.model.encoder()
        return self._encoder

    def cached_ids(self) -> set[str]:
        """Utterance ids already in the cache."""
        return {utt for shard in self._index()["shards"] for utt in shard["ids"]}

    def embed(self, entries: Mapping[str, dict], progress: bool = True) -> LayerEmbeddings:
        """Embeddings of ``entries`` (manifest entries with ``wav``), encoding only those not cached yet."""
        index = self._index()
        done = {utt for shard in index["shards"] for utt in shard["ids"]}
        todo = [utt for utt in entries if utt not in done]
        for utt in todo:
            if not Path(entries[utt]["wav"]).is_file():
                raise FileNotFoundError(f"{entries[utt]['wav']}: audio of {utt} not found")
        bar = tqdm(total=len(todo), desc=f"embed {self.model.key}", unit="file", disable=not progress or not todo)
        for start in range(0, len(todo), self.shard_size):
            chunk = todo[start : start + self.shard_size]
            pooled = np.stack([self._pooled(entries[utt]["wav"], bar) for utt in chunk])  # (n, states, dim)
            name = f"{len(index['shards']):05d}"
            for layer in range(pooled.shape[1]):
                _atomic_save(self.folder / f"L{layer}" / f"{name}.npy", np.ascontiguousarray(pooled[:, layer]))
            index.update(n_states=int(pooled.shape[1]), dim=int(pooled.shape[2]))
            index["shards"].append({"name": name, "ids": chunk})
            atomic_write_json(self.folder / "index.json", index)
        bar.close()
        return LayerEmbeddings(self.folder, list(entries), index["n_states"], index["dim"])

    def _pooled(self, wav: str, bar) -> np.ndarray:
        pooled = pooled_states(self.encoder, load_audio(wav))
        bar.update(1)
        return pooled


def class_separation(x: np.ndarray, labels) -> float:
    """Between-class over within-class scatter (traces), the Fisher criterion of one layer's embeddings.

    Example
    -------
    >>> x = np.array([[0.0, 0.0], [0.2, 0.0], [1.0, 1.0], [1.2, 1.0]])
    >>> round(class_separation(x, ["a", "a", "b", "b"]), 3)
    50.0
    """
    x, labels = np.asarray(x, np.float64), np.asarray(labels)
    mean = x.mean(axis=0)
    between = within = 0.0
    for label in np.unique(labels):
        rows = x[labels == label]
        centre = rows.mean(axis=0)
        between += len(rows) * float(((centre - mean) ** 2).sum())
        within += float(((rows - centre) ** 2).sum())
    return between / within if within > 0 else float("inf")


def layer_summary(emb: LayerEmbeddings, labels=None) -> pd.DataFrame:
    """Per hidden state: mean embedding norm and, with labels, the class separation."""
    rows = []
    for layer in range(emb.n_states):
        x = emb.layer(layer)
        row = {"layer": layer, "mean_norm": float(np.linalg.norm(x, axis=1).mean())}
        if labels is not None and len(set(labels)) > 1:
            row["class_separation"] = class_separation(x, labels)
        rows.append(row)
    return pd.DataFrame(rows)


def _plot_summary(frame: pd.DataFrame, path: Path, title: str) -> None:
    plt = pyplot()

    column = "class_separation" if "class_separation" in frame else "mean_norm"
    fig, ax = plt.subplots(figsize=(5.5, 3.3))
    ax.plot(frame["layer"], frame[column], marker="o")
    ax.set_xlabel("layer (0: CNN projection)")
    ax.set_ylabel({"class_separation": "between / within-class scatter", "mean_norm": "mean embedding norm"}[column])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's options."""
    parser.add_argument(
        "--model", required=True, help="hub id, local HF folder, or a recipe run's folder (its fine-tuned encoder)"
    )
    parser.add_argument("--manifest", action="append", default=[], help="a prepared manifest (repeatable)")
    parser.add_argument("--run", default=None, help="take the manifests of this recipe run (its --splits)")
    parser.add_argument("--splits", default="train,valid,test", help="with --run: which manifests")
    parser.add_argument("--data_folder", default=None, help="corpus folder, for manifests with {data_root}")
    parser.add_argument("--label_key", default="emo")
    parser.add_argument("--cache", required=True, help="cache root (one sub-folder per model)")
    parser.add_argument("--out", default=None, help="where the summary files go (default: the model's cache folder)")
    parser.add_argument("--noprogressbar", action="store_true")


def run(args: argparse.Namespace) -> None:
    """Run the verb."""
    entries = {}
    if args.run:
        recipe_run = RecipeRun(Path(args.run))
        for split in [s for s in args.splits.split(",") if s]:
            entries.update(
                read_resolved_manifest(
                    recipe_run.manifest(split), args.data_folder or recipe_run.values.get("data_folder")
                )
            )
    for manifest in args.manifest:
        if not Path(manifest).is_file():
            raise FileNotFoundError(f"{manifest}: manifest not found")
        entries.update(read_resolved_manifest(manifest, args.data_folder))
    if not entries:
        raise RunError("nothing to embed: give --manifest or --run")
    cache = EmbeddingCache(args.cache, args.model)
    emb = cache.embed(entries, progress=not args.noprogressbar)
    labelled = all(args.label_key in e for e in entries.values())
    frame = layer_summary(emb, [str(entries[i][args.label_key]) for i in emb.ids] if labelled else None)
    out = Path(args.out) if args.out else cache.folder
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "embed_layers.csv", csv_text(frame))
    atomic_write_json(
        out / "embed.json",
        {"model": args.model, "cache": str(cache.folder), "n": len(emb.ids), "n_states": emb.n_states, "dim": emb.dim},
    )
    _plot_summary(frame, out / "embed_layers.png", f"{Path(args.model).name}: {len(emb.ids)} utterances")
