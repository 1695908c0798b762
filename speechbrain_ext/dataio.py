"""Datasets for the recipes: manifests -> ``DynamicItemDataset`` with 16 kHz
mono audio and encoded labels, sorted or shuffled as the hparams ask."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping

import speechbrain as sb
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.encoder import CategoricalEncoder

from speechbrain_ext.audio import TARGET_SAMPLE_RATE, load_audio


class UnknownLabelError(ValueError):
    """A split holds a label the training split does not; names the file and the labels."""


def read_labels(manifest: str | os.PathLike, label_key: str) -> list[str]:
    """All label values of a manifest, in file order."""
    with open(manifest, encoding="utf-8") as handle:
        return [str(entry[label_key]) for entry in json.load(handle).values()]


def make_label_encoder(save_path: str | os.PathLike, manifests: Mapping[str, str], label_key: str) -> CategoricalEncoder:
    """A label encoder over the training labels (sorted, so indices are stable).

    Loads ``save_path`` when it exists (resumed run, exported model); checks
    that every other split only holds known labels.

    Arguments
    ---------
    save_path : str or PathLike
        ``label_encoder.txt`` location.
    manifests : mapping
        Split name -> manifest path; must include ``train``.
    label_key : str
        Manifest field holding the label.

    Returns
    -------
    CategoricalEncoder
    """
    train_labels = sorted(set(read_labels(manifests["train"], label_key)))
    encoder = CategoricalEncoder()
    if os.path.isfile(save_path):
        encoder.load(save_path)
        if sorted(encoder.lab2ind) != train_labels:
            raise UnknownLabelError(
                f"{save_path}: holds labels {sorted(encoder.lab2ind)} but {manifests['train']} has {train_labels}; remove the file or use a fresh output folder"
            )
    else:
        encoder.update_from_iterable(train_labels)
        encoder.save(save_path)
    for split, path in manifests.items():
        unknown = sorted(set(read_labels(path, label_key)) - set(train_labels))
        if unknown:
            raise UnknownLabelError(f"{path}: labels {unknown} of split {split!r} never occur in training (known: {train_labels})")
    encoder.expect_len(len(train_labels))
    return encoder


def audio_pipeline(sample_rate: int = TARGET_SAMPLE_RATE, max_seconds: float | None = None):
    """Dynamic item ``wav`` -> ``sig``: mono float tensor at ``sample_rate``, cut after ``max_seconds`` if given."""
    max_samples = int(round(max_seconds * sample_rate)) if max_seconds else None

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def pipeline(wav):
        signal = load_audio(wav, sample_rate)
        return signal[:max_samples] if max_samples else signal

    return pipeline


def label_pipeline(encoder: CategoricalEncoder, label_key: str):
    """Dynamic item ``<label_key>`` -> ``<label_key>_encoded`` (a long tensor of one index)."""

    @sb.utils.data_pipeline.takes(label_key)
    @sb.utils.data_pipeline.provides(f"{label_key}_encoded")
    def pipeline(label):
        return encoder.encode_label_torch(str(label))

    return pipeline


def load_split(manifest: str, data_folder: str, sorting: str = "random") -> DynamicItemDataset:
    """One manifest as a dataset, ``{data_root}`` resolved, sorted by ``duration`` if asked."""
    dataset = DynamicItemDataset.from_json(manifest, replacements={"data_root": str(data_folder)})
    if sorting == "ascending":
        dataset = dataset.filtered_sorted(sort_key="duration")
    elif sorting == "descending":
        dataset = dataset.filtered_sorted(sort_key="duration", reverse=True)
    elif sorting != "random":
        raise ValueError(f"sorting must be random, ascending or descending, not {sorting!r}")
    return dataset


def classification_datasets(
    manifests: Mapping[str, str],
    data_folder: str,
    label_encoder_path: str,
    label_key: str = "emo",
    sorting: str = "random",
    sample_rate: int = TARGET_SAMPLE_RATE,
    extra_keys: Iterable[str] = (),
    max_seconds: float | None = None,
) -> tuple[dict[str, DynamicItemDataset], CategoricalEncoder]:
    """Datasets yielding ``id``, ``sig`` and ``<label_key>_encoded`` for every split.

    Only the training split follows ``sorting``; evaluation splits are sorted
    by length (less padding, same results). ``max_seconds`` cuts every
    utterance after that many seconds (supcon_knn uses 7.5 s).
    """
    encoder = make_label_encoder(label_encoder_path, manifests, label_key)
    datasets = {}
    for split, path in manifests.items():
        dataset = load_split(path, data_folder, sorting if split == "train" else "ascending")
        dataset.add_dynamic_item(audio_pipeline(sample_rate, max_seconds))
        dataset.add_dynamic_item(label_pipeline(encoder, label_key))
        dataset.set_output_keys(["id", "sig", f"{label_key}_encoded", *extra_keys])
        datasets[split] = dataset
    return datasets, encoder
