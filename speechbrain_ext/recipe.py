"""The runner behind every recipe's ``train.py``.

``run_recipe(prepare, brains)`` does, in order:

1. read the YAML's plain values with the command-line overrides, nothing
   built; check that the YAML's ``brain_class`` is one of the Brains the
   ``train.py`` offers and that the configuration fits it
   (:meth:`~speechbrain_ext.brains.RecipeBrain.check_hparams`), and that the
   data folder exists, and that every local ``*_hub`` path exists: bad input
   fails here with one line, before any model is loaded or downloaded; take
   the output folder's run lock (a second live run in it is refused; a
   killed run's lock is taken over);
2. data preparation (unless ``skip_prep``); Whisper transcripts into the
   manifests when the YAML has ``transcribe:`` options (resumable, done
   entries kept), or those of a ``transcripts_file``; for augmentation, the
   locally generated noise and room responses;
3. build the YAML's objects (the model loads its encoder here), the
   datasets through the task, and train with validation; report valid and
   test with the selected checkpoint;
4. the ``post_training`` stages the YAML lists and enables
   (:mod:`speechbrain_ext.stages`), in order.

Under torchrun the process group's collectives time out after
``--ddp_timeout`` minutes (:mod:`speechbrain_ext.distributed`); the work of the
main process alone (preparation, transcription, stages) is waited for
without that limit.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import ddp_broadcast, if_main_process, run_on_main

from speechbrain_ext import distributed
from speechbrain_ext.checkpoints import CorruptCheckpointsError
from speechbrain_ext.dataio import recipe_datasets
from speechbrain_ext.fileio import RunLock, missing_local_sources
from speechbrain_ext.hyperparams import plain_values
from speechbrain_ext.manifests import SPLITS
from speechbrain_ext.stages import StageContext


def pick_brain(values: dict, brains: Sequence[type], hparams_file: str) -> type:
    """The Brain class the YAML's ``brain_class`` names, among those the recipe offers."""
    offered = {cls.__name__: cls for cls in brains}
    name = values.get("brain_class")
    if name not in offered:
        raise ValueError(f"{hparams_file}: brain_class {name!r} is not one of this recipe's Brains {sorted(offered)}")
    return offered[name]


def check_inputs(values: dict, hparams_file: str) -> None:
    """Cheap checks of the inputs before anything expensive happens."""
    data_folder = values.get("data_folder")
    if not values.get("skip_prep", False) and not Path(str(data_folder)).is_dir():
        raise FileNotFoundError(f"{hparams_file}: data_folder {data_folder!r} is not a folder (pass --data_folder=/path/to/the/corpus)")
    missing = missing_local_sources(values)
    if missing:
        raise FileNotFoundError(f"{hparams_file}: local model folder not found: {'; '.join(missing)} (pass an existing folder or a hub id)")
    for key in ("train_annotation", "valid_annotation", "test_annotation"):
        if values.get("skip_prep", False) and key in values and not Path(str(values[key])).is_file():
            raise FileNotFoundError(f"{hparams_file}: skip_prep is set but {key} {values[key]!r} does not exist")
    for run in values.get("fusion_runs") or []:
        if not (Path(str(run)) / "embeddings").is_dir():
            raise FileNotFoundError(f"{hparams_file}: fusion run {str(run)!r} has no embeddings/ folder (train it first, with save_embeddings: True)")


def run_recipe(prepare: Callable[[dict], None], brains: Sequence[type], argv: list[str] | None = None) -> dict:
    """Check, prepare, train, report, then run the enabled post-training stages.

    Arguments
    ---------
    prepare : callable
        ``prepare(values)``: the corpus's data preparation, given the YAML's plain values.
    brains : sequence of Brain classes
        The Brains this recipe offers; the YAML's ``brain_class`` picks one.
    argv : list of str, optional
        Command line (default ``sys.argv[1:]``).

    Returns
    -------
    dict
        Split -> final report.
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        values = plain_values(hparams_file, overrides)
        brain_class = pick_brain(values, brains, hparams_file)
        brain_class.check_hparams(values)
        check_inputs(values, hparams_file)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None  # one line, not a traceback: the input is wrong, not the code
    distributed.init_process_group(run_opts, values.get("ddp_timeout", distributed.DEFAULT_TIMEOUT_MINUTES))
    lock = _lock_output_folder(values["output_folder"])
    try:
        reports = _run(prepare, brain_class, hparams_file, run_opts, overrides, values)
    except CorruptCheckpointsError as err:
        raise SystemExit(f"error: {err}") from None
    finally:
        if lock is not None:
            lock.release()
    distributed.shutdown()
    return reports


def _lock_output_folder(folder: str) -> RunLock | None:
    """The main process takes the folder's run lock; every rank stops with its message when another live run holds it."""
    lock, refused = None, None
    if if_main_process():
        try:
            lock = RunLock(folder).acquire()
        except RuntimeError as err:
            refused = str(err)
    refused = ddp_broadcast(refused)
    if refused:
        raise SystemExit(f"error: {refused}")
    if lock is not None and lock.previous:
        print(f"Took over the run lock of {folder} from pid {lock.previous.get('pid')} on {lock.previous.get('host')}, which is no longer running")
    return lock


def _run(prepare, brain_class, hparams_file: str, run_opts: dict, overrides, values: dict) -> dict:
    sb.create_experiment_directory(experiment_directory=values["output_folder"], hyperparams_to_save=hparams_file, overrides=overrides)
    script = os.path.abspath(sys.argv[0])  # SpeechBrain copies the calling module; keep the recipe's own script
    if script.endswith(".py") and os.path.isfile(script) and if_main_process():
        shutil.copy(script, os.path.join(values["output_folder"], os.path.basename(script)))
    if not values["skip_prep"]:
        distributed.run_on_main_unbounded(prepare, kwargs={"hparams": values}, name="prepare")
    if values.get("transcribe"):
        from speechbrain_ext.transcribe import import_transcripts, transcribe_manifests

        manifests = [values[f"{split}_annotation"] for split in SPLITS]
        options = {"device": run_opts.get("device") or "cpu", "progress": not run_opts.get("noprogressbar", False), **values["transcribe"]}
        transcripts_file = options.pop("transcripts_file", None)
        if transcripts_file:
            run_on_main(import_transcripts, args=[manifests, transcripts_file])
        else:
            distributed.run_on_main_unbounded(transcribe_manifests, args=[manifests, values["data_folder"]], kwargs=options, name="transcribe")
    if "augmentation_folder" in values:
        from speechbrain_ext.augment import generate_noise_and_rirs

        run_on_main(generate_noise_and_rirs, kwargs={"folder": values["augmentation_folder"], "sample_rate": values["sample_rate"]})

    with open(hparams_file, encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle, overrides)
    manifests = {split: hparams[f"{split}_annotation"] for split in SPLITS}
    datasets = recipe_datasets(
        manifests,
        hparams["data_folder"],
        hparams["task"],
        sorting=hparams["sorting"],
        sample_rate=hparams["sample_rate"],
        max_seconds=hparams.get("max_audio_seconds"),
        inputs=hparams.get("model_inputs", ["sig"]),
        features=hparams.get("fusion_features"),
    )
    brain = brain_class(modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams, run_opts=run_opts, checkpointer=hparams["checkpointer"])
    reports = brain.fit_and_report(datasets, hparams)
    context = StageContext(brain, datasets, hparams, reports)
    for index, stage in enumerate(hparams.get("post_training", [])):
        if stage.enabled:  # Bayesian head, kNN, embeddings: on the main process, the others wait
            distributed.run_on_main_unbounded(stage.run, args=[context], name=f"stage{index}_{type(stage).__name__}")
    return context.reports
