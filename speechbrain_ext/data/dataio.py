"""Datasets for the recipes: manifests -> ``DynamicItemDataset`` yielding ``id``, ``sig`` (16 kHz mono),
``transcript`` (the Whisper transcript of the manifest entry) or ``features``
(other runs' cached embeddings, for early fusion), and ``target``.

The task (:mod:`speechbrain_ext.training.tasks`) turns each entry's label field into
``target``; entries without it (a masked test partition) get the task's
"unlabelled" target and are predicted, never scored.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence

import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from speechbrain_ext.data.audio import TARGET_SAMPLE_RATE, load_audio
from speechbrain_ext.data.audio_cache import CACHE_FOLDER_NAME, AudioCache
from speechbrain_ext.data.manifests import read_manifest
from speechbrain_ext.data.transcribe import TRANSCRIPT_KEY


def audio_pipeline(sample_rate: int = TARGET_SAMPLE_RATE, max_seconds: float | None = None, cache_folder=None):
    """Dynamic item ``wav`` -> ``sig``: mono float tensor at ``sample_rate``, cut after ``max_seconds`` if given.

    With ``cache_folder``, a file at another rate is decoded and resampled
    once and read from an :class:`~speechbrain_ext.data.audio_cache.AudioCache` after that.
    """
    max_samples = int(round(max_seconds * sample_rate)) if max_seconds else None
    read = (
        AudioCache(cache_folder, sample_rate).load
        if cache_folder
        else functools.partial(load_audio, sample_rate=sample_rate)
    )

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def pipeline(wav):
        signal = read(wav)
        return signal[:max_samples] if max_samples else signal

    return pipeline


def machine_loader_options(
    options: Mapping, device: str | torch.device, cores: int | None = None, threads: int | None = None
) -> dict:
    """Loader options fitted to the machine: the YAML's ``num_workers`` as an upper bound, pinned memory for a GPU.

    On the CPU the training step's threads use the cores, and workers beside
    them slow it down (as for inference,
    ``speechbrain_ext.serving.batches.default_num_workers``): only the cores
    the compute threads leave free get a worker; reading cached 16 kHz audio
    in-process costs about a millisecond a file. Beside a GPU one core stays
    with the training process. Batches and their order do not depend on the
    worker count. Batches bound for a GPU are pinned, so the Brains'
    ``non_blocking`` copies overlap the step; a ``pin_memory`` the YAML
    sets is kept. ``cores`` and ``threads`` default to this process's.

    Example
    -------
    >>> machine_loader_options({"batch_size": 8, "num_workers": 2}, "cpu", cores=2, threads=2)
    {'batch_size': 8, 'num_workers': 0}
    >>> machine_loader_options({"num_workers": 2}, "cuda:0", cores=16)
    {'num_workers': 2, 'pin_memory': True}
    """
    options = dict(options)
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    on_gpu = str(device).startswith("cuda")
    if "num_workers" in options:
        free = cores - 1 if on_gpu else cores - (threads or torch.get_num_threads())
        options["num_workers"] = min(int(options["num_workers"]), max(0, free))
    if on_gpu:
        options.setdefault("pin_memory", True)
    return options


def load_split(
    manifest: str, data_folder: str, sorting: str = "random", fill_keys: tuple[str, ...] = ()
) -> DynamicItemDataset:
    """One manifest as a dataset: ``{data_root}`` resolved, missing ``fill_keys`` set to None, sorted by ``duration`` if asked."""
    if sorting not in ("random", "ascending", "descending"):
        raise ValueError(f"sorting must be random, ascending or descending, not {sorting!r}")
    data = read_manifest(manifest, data_folder)
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
    inputs: Sequence[str] = ("sig",),
    features=None,
    audio_cache: str | bool | None = True,
) -> dict[str, DynamicItemDataset]:
    """Datasets yielding ``id``, the model's inputs (``sig``, ``transcript``) and ``target`` for every split.

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
    inputs : sequence of str
        ``sig`` (the audio), ``transcript`` (the manifest's Whisper
        transcript, checked present) and/or ``features``.
    features : EarlyFusionFeatures, optional
        With ``features`` among the inputs: the cached embeddings of other
        runs (:class:`~speechbrain_ext.methods.fusion.EarlyFusionFeatures`), checked
        to cover every utterance.
    audio_cache : str or bool or None
        True (default): resampled signals are cached in ``audio_cache/``
        beside the training manifest; a path: in that folder; False or
        None: every epoch decodes and resamples again.
    """
    if not set(inputs) <= {"sig", "transcript", "features"}:
        raise ValueError(f"model inputs are 'sig' (audio), 'transcript' and/or 'features', not {list(inputs)}")
    if "features" in inputs and features is None:
        raise ValueError("the model reads 'features' but the hparams define no fusion_features (EarlyFusionFeatures)")
    task.setup(manifests)
    if "transcript" in inputs:
        check_transcripts(manifests)
    if "features" in inputs:
        features.check_ids(manifests)
    if audio_cache is True:
        audio_cache = os.path.join(os.path.dirname(os.path.abspath(manifests["train"])), CACHE_FOLDER_NAME)
    datasets = {}
    for split, path in manifests.items():
        dataset = load_split(
            path, data_folder, sorting if split == "train" else "ascending", fill_keys=(task.target_key,)
        )
        if "sig" in inputs:
            dataset.add_dynamic_item(audio_pipeline(sample_rate, max_seconds, audio_cache or None))
        if "transcript" in inputs:
            dataset.add_dynamic_item(transcript_pipeline)
        if "features" in inputs:
            dataset.add_dynamic_item(features.pipeline())
        dataset.add_dynamic_item(task.target_pipeline())
        dataset.set_output_keys(["id", *inputs, "target"])
        datasets[split] = dataset
    return datasets


@sb.utils.data_pipeline.takes(TRANSCRIPT_KEY)
@sb.utils.data_pipeline.provides("transcript")
def transcript_pipeline(text):
    """Dynamic item ``transcript_whisper`` -> ``transcript``."""
    return text


def check_transcripts(manifests: Mapping[str, str]) -> None:
    """Every entry has a Whisper transcript, or a ``ValueError`` names the manifest and how many lack one."""
    for path in manifests.values():
        entries = read_manifest(path)
        missing = [utt for utt, entry in entries.items() if entry.get(TRANSCRIPT_KEY) is None]
        if missing:
            raise ValueError(
                f"{path}: {len(missing)} entries have no {TRANSCRIPT_KEY} (e.g. {missing[:3]}); run python -m speechbrain_ext.transcribe first"
            )
