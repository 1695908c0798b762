"""Finished recipe runs and SSL models as the analyses see them.

A *run* is a recipe's output folder (``hyperparams.yaml``, ``<split>_predictions.csv``,
``save/`` with its checkpoints). A *model* is what the embedding analyses
encode with: a hub id, a local Hugging Face folder, or a run, whose
fine-tuned encoder is rebuilt from its YAML and loaded from its selected
checkpoint.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from speechbrain_ext.data.manifests import fill_data_root, read_manifest, uses_data_root
from speechbrain_ext.nn.encoders import SSLEncoder
from speechbrain_ext.utils.fileio import is_local_path
from speechbrain_ext.utils.hyperparams import plain_values, to_plain

SSL_ENCODER_TAG = "!new:speechbrain_ext.nn.encoders.SSLEncoder"


class RunError(ValueError):
    """A folder that is not a usable recipe run (the message names the folder and what is missing)."""


def find_runs(folder: str | os.PathLike, split: str = "test") -> list[Path]:
    """Recipe runs under ``folder`` that wrote ``<split>_predictions.csv``, sorted (the folder itself if it is one).

    A fold runner's results folder holds one run per fold; a run's own
    ``knn/`` or ``linear_stage/`` sub-folders are not runs.

    Example
    -------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for fold in (2, 1):
    ...     (root / f"fold_{fold}").mkdir()
    ...     _ = (root / f"fold_{fold}" / "hyperparams.yaml").write_text("x: 1")
    ...     _ = (root / f"fold_{fold}" / "test_predictions.csv").write_text("id")
    >>> [p.name for p in find_runs(root)]
    ['fold_1', 'fold_2']
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(
            f"{folder}: no such folder (give a recipe run's output folder or a fold runner's results folder)"
        )
    runs = sorted(
        {p.parent for p in folder.rglob(f"{split}_predictions.csv") if (p.parent / "hyperparams.yaml").is_file()}
    )
    if not runs:
        raise RunError(
            f"{folder}: no recipe run under it (no hyperparams.yaml beside a {split}_predictions.csv); train one first"
        )
    return runs


@dataclass
class RecipeRun:
    """One finished recipe run.

    Arguments
    ---------
    folder : Path
        Output folder of the run.

    Example
    -------
    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (run / "hyperparams.yaml").write_text("data_folder: /corpus\\n")
    >>> _ = (run / "test_predictions.csv").write_text("id,true,predicted,p_neu,p_sad\\nu1,neu,sad,0.4,0.6\\n")
    >>> r = RecipeRun(run)
    >>> r.labels, r.predictions().loc[0, "predicted"]
    (['neu', 'sad'], 'sad')
    """

    folder: Path

    def __post_init__(self):
        self.folder = Path(self.folder)
        if not (self.folder / "hyperparams.yaml").is_file():
            raise RunError(f"{self.folder}: no hyperparams.yaml; is this a recipe run's output folder?")

    @cached_property
    def values(self) -> dict:
        """The run's YAML values, references resolved, objects unbuilt."""
        return plain_values(self.folder / "hyperparams.yaml")

    def predictions(self, split: str = "test") -> pd.DataFrame:
        """``<split>_predictions.csv``: ``id``, ``true``, ``predicted``, ``p_<label>`` (labels as strings)."""
        path = self.folder / f"{split}_predictions.csv"
        if not path.is_file():
            raise RunError(f"{path}: not found (the run has no {split} predictions; did it finish?)")
        return pd.read_csv(path, dtype={"id": str, "true": str, "predicted": str}, keep_default_na=False)

    @cached_property
    def labels(self) -> list[str]:
        """Class names in the order of the ``p_<label>`` columns."""
        header = (self.folder / "test_predictions.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
        return [c[2:] for c in header if c.startswith("p_")]

    def manifest(self, split: str) -> Path:
        """The run's manifest of ``split`` (``train``, ``valid``, ``test``)."""
        key = f"{split}_annotation"
        if key not in self.values:
            raise RunError(f"{self.folder}/hyperparams.yaml: no {key}")
        path = Path(str(self.values[key]))
        if not path.is_file():
            raise RunError(f"{path}: {split} manifest of run {self.folder} not found")
        return path

    def entries(self, split: str) -> dict:
        """The ``split`` manifest's entries, ``{data_root}`` resolved to the run's data folder."""
        return read_resolved_manifest(self.manifest(split), self.values.get("data_folder"))

    def encoder(self) -> SSLEncoder:
        """The run's fine-tuned SSL encoder (its selected checkpoint), frozen and in eval mode."""
        from speechbrain_ext.serving.export.run import RunModel

        node = self.values.get("model", {})
        encoder = node.get("encoder") if hasattr(node, "get") else None
        if encoder is None or getattr(encoder, "tag", None) is None or encoder.tag.value != SSL_ENCODER_TAG:
            raise RunError(f"{self.folder}: its model has no SSL encoder (model.encoder is not {SSL_ENCODER_TAG})")
        kwargs = {str(k): v for k, v in to_plain(encoder).items()}
        kwargs.update(freeze=True)
        model = SSLEncoder(**kwargs)
        state = RunModel.read(self.folder / "hyperparams.yaml", stage_one=True).state_dict()
        prefix = "encoder."
        weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected or [k for k in missing if k != "layer_weights"]:
            raise RunError(
                f"{self.folder}: checkpoint does not fit its encoder (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        return model.eval()

    @cached_property
    def checkpoint_key(self) -> str:
        """Identifies the selected checkpoint's weights (path, size and time of ``model.ckpt``)."""
        from speechbrain_ext.training.tasks import best_checkpoint

        found = best_checkpoint(Path(str(self.values["save_folder"])))
        if found is None:
            raise RunError(f"{self.folder}: no checkpoint with a selection metric")
        stat = (Path(found.path) / "model.ckpt").stat()
        return f"{Path(found.path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def read_resolved_manifest(path: str | os.PathLike, data_folder: str | os.PathLike | None = None) -> dict:
    """A manifest's entries (:func:`~speechbrain_ext.data.manifests.read_manifest`) with ``{data_root}`` filled by ``data_folder``.

    The analyses open the audio files, so a manifest whose paths start with
    ``{data_root}`` needs the corpus folder: a ``RunError`` says so when it is not given.

    Example
    -------
    >>> import json, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "test.json"
    >>> _ = path.write_text(json.dumps({"u1": {"wav": "{data_root}/a.wav"}}))
    >>> read_resolved_manifest(path, "/corpus")["u1"]["wav"]
    '/corpus/a.wav'
    >>> read_resolved_manifest(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    speechbrain_ext.analysis.runs.RunError: .../test.json: its paths start with {data_root}; pass the corpus folder (--data_folder)
    """
    entries = read_manifest(path)
    if data_folder:
        return fill_data_root(entries, data_folder)
    if uses_data_root(entries):
        raise RunError(f"{path}: its paths start with {{data_root}}; pass the corpus folder (--data_folder)")
    return entries


@dataclass
class ModelSpec:
    """What to encode with: a run's fine-tuned encoder, a local Hugging Face folder or a hub id.

    Arguments
    ---------
    spec : str
        Run folder (has ``hyperparams.yaml``), HF folder (has ``config.json``) or hub id.
    cache_dir : str, optional
        Hub download cache.

    Example
    -------
    >>> ModelSpec("facebook/wav2vec2-base").key
    'facebook--wav2vec2-base'
    """

    spec: str
    cache_dir: str | None = None

    @property
    def run(self) -> RecipeRun | None:
        path = Path(self.spec)
        return RecipeRun(path) if (path / "hyperparams.yaml").is_file() else None

    @property
    def key(self) -> str:
        """Cache folder name: readable, and changing with the weights of a local model or run."""
        path = Path(self.spec)
        if not is_local_path(self.spec):
            return self.spec.replace("/", "--")
        run = self.run
        if run is not None:
            ident = run.checkpoint_key
        elif (path / "config.json").is_file():
            ident = ";".join(
                f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(path.iterdir()) if p.is_file()
            )
        else:
            raise RunError(
                f"{path}: neither a recipe run (hyperparams.yaml) nor a Hugging Face model folder (config.json)"
            )
        digest = hashlib.sha1(f"{path.resolve()}|{ident}".encode()).hexdigest()[:10]
        return f"{path.name}-{digest}"

    def encoder(self) -> SSLEncoder:
        """The encoder, frozen and in eval mode, every layer kept."""
        run = self.run
        if run is not None:
            return run.encoder()
        from huggingface_hub.constants import HF_HUB_CACHE

        return SSLEncoder(
            self.spec, self.cache_dir or HF_HUB_CACHE, layer="last", freeze=True, drop_upper_layers=False
        ).eval()
