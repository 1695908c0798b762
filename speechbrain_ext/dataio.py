"""Datasets for the recipes: manifests -> ``DynamicItemDataset`` yielding ``id``, ``sig`` (16 kHz mono) and ``target``.

The task (:mod:`speechbrain_ext.tasks`) turns each entry's label field into
``target``; entries without it (a masked test partition) get the task's
"unlabelled" target and are predicted, never scored.
"""

from __future__ import annotations

from collections.abc import Mapping

import speechbrain as sb
from speechbrain.dataio.dataio import load_data_json
from speechbrain.dataio.dataset import DynamicItemDataset

from speechbrain_ext.audio import TARGET_SAMPLE_RATE, load_audio


def audio_pipeline(sample_rate: int = TARGET_SAMPLE_RATE, max_seconds: float | None = None):
    """Dynamic item ``wav`` -> ``sig``: mono float tensor at ``sample_rate``, cut after ``max_seconds`` if given."""
    max_samples = int(round(max_seconds * sample_rate)) if max_seconds else None

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def pipeline(wav):
        signal = load_audio(wav, sample_rate)
        return signal[:max_samples] if max_samples else signal

    return pipeline


def load_split(manifest: str, data_folder: str, sorting: str = "random", fill_keys: tuple[str, ...] = ()) -> DynamicItemDataset:
    """One manifest as a dataset: ``{data_root}`` resolved, missing ``fill_keys`` set to None, sorted by ``duration`` if asked."""
    if sorting not in ("random", "ascending", "descending"):
        raise ValueError(f"sorting must be random, ascending or descending, not {sorting!r}")
    data = load_data_json(manifest, replacements={"data_root": str(data_folder)})
    for entry in data.values():
        for key in fill_keys:
            entry.setdefault(key, None)
    dataset = DynamicItemDataset(data)
    if sorting != "random":
        dataset = dataset.filtered_sorted(sort_key="duration", reverse=sorting == "descending")
    return dataset


def recipe_datasets(
    manifests: Mapping[str, str],
    data_folder: str,
    task,
    sorting: str = "random",
    sample_rate: int = TARGET_SAMPLE_RATE,
    max_seconds: float | None = None,
) -> dict[str, DynamicItemDataset]:
    """Datasets yielding ``id``, ``sig`` and ``target`` for every split.

    Only the training split follows ``sorting``. Evaluation splits are sorted
    by length, which reduces padding; it does not make batched evaluation
    equal to one-by-one evaluation for encoders whose feature extractor sees
    padding (group-norm wav2vec2-base, HuBERT-base), which is why the recipes
    test one utterance per batch. ``max_seconds`` cuts every utterance after
    that many seconds (supcon_knn uses 7.5 s).

    Arguments
    ---------
    manifests : mapping
        Split -> manifest path.
    data_folder : str
        Replaces ``{data_root}`` in the paths.
    task : Task
        Its ``setup`` is called (label encoder, checks) and its ``target_pipeline`` added.
    """
    task.setup(manifests)
    datasets = {}
    for split, path in manifests.items():
        dataset = load_split(path, data_folder, sorting if split == "train" else "ascending", fill_keys=(task.target_key,))
        dataset.add_dynamic_item(audio_pipeline(sample_rate, max_seconds))
        dataset.add_dynamic_item(task.target_pipeline())
        dataset.set_output_keys(["id", "sig", "target"])
        datasets[split] = dataset
    return datasets
