"""The runner behind every recipe's ``train.py``.

``run_recipe(prepare, brains)`` does, in order:

1. check that every command-line override names a key of the YAML (a
   misspelt one is refused with the close matches, :func:`check_overrides`);
   read the YAML's plain values with the overrides, nothing built; check
   that the YAML's ``brain_class`` is one of the Brains the
   ``train.py`` offers and that the configuration fits it
   (:meth:`~speechbrain_ext.training.recipe_brain.RecipeBrain.check_hparams`), and that the
   data folder exists, and that every local ``*_hub`` path exists: bad input
   fails here with one line, before any model is loaded or downloaded; take
   the output folder's run lock (a second live run in it is refused; a
   killed run's lock is taken over);
2. data preparation (unless ``skip_prep``), then the values the recipe
   reads from the prepared data (``derive``: your own corpus's
   ``n_classes``), added to the overrides and saved with the run's
   ``hyperparams.yaml``; Whisper transcripts into the
   manifests when the YAML has ``transcribe:`` options (resumable, done
   entries kept), or those of a ``transcripts_file``; for augmentation, the
   locally generated noise and room responses;
3. build the YAML's objects (the model loads its encoder here), the
   datasets through the task, and train with validation; report valid and
   test with the selected checkpoint;
4. the ``post_training`` stages the YAML lists and enables
   (:mod:`speechbrain_ext.training.post_training`), in order.

Under torchrun the process group's collectives time out after
``--ddp_timeout`` minutes (:mod:`speechbrain_ext.training.distributed`); the work of the
main process alone (preparation, transcription, stages) is waited for
without that limit.
"""

from __future__ import annotations

import difflib
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import ddp_broadcast, if_main_process, run_on_main

from speechbrain_ext.data.dataio import recipe_datasets
from speechbrain_ext.data.manifests import SPLITS
from speechbrain_ext.training import distributed
from speechbrain_ext.training.checkpoints import CorruptCheckpointsError
from speechbrain_ext.training.post_training import StageContext
from speechbrain_ext.utils.fileio import RunLock, missing_local_sources
from speechbrain_ext.utils.hyperparams import load_yaml, plain_values

# Overrides a recipe YAML need not hold: run options the runner reads with a default (``values.get``).
RUNNER_KEYS = ("ddp_timeout", "audio_cache")


def override_problems(overrides: str | dict | None, keys: Iterable[str]) -> list[str]:
    """One line per override whose top-level key is not among ``keys``, naming the close matches.

    hyperpyyaml adds an unknown top-level key silently when it resolves
    references and refuses it only when it builds the objects, after data
    preparation. A nested override (``--dataloader_options={batch_size: 8}``)
    counts as its top-level key, as hyperpyyaml checks it.

    Arguments
    ---------
    overrides : str or dict or None
        ``sb.parse_arguments``'s overrides (a YAML string of ``key: value``) or a dict.
    keys : iterable of str
        The keys an override may set.

    Returns
    -------
    list of str
        Empty when every override is known.

    Example
    -------
    >>> override_problems("numbr_of_epochs: 2", ["number_of_epochs", "batch_size"])
    ['--numbr_of_epochs (did you mean --number_of_epochs?)']
    >>> override_problems({"dataloader_options": {"batch_size": 8}, "foo": 1}, ["dataloader_options"])
    ['--foo (no key of that name or close to it)']
    >>> override_problems("", ["batch_size"])
    []
    """
    if isinstance(overrides, str):
        overrides = load_yaml(overrides)
    keys = [str(k) for k in keys]
    problems = []
    for key in map(str, overrides or {}):
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=3)
            hint = (
                f"did you mean {' or '.join(f'--{c}' for c in close)}?"
                if close
                else "no key of that name or close to it"
            )
            problems.append(f"--{key} ({hint})")
    return problems


def check_overrides(
    hparams_file: str | os.PathLike, overrides: str | dict | None, extra: Sequence[str] = RUNNER_KEYS
) -> None:
    """Raise ``ValueError`` (one line) when an override sets a top-level key that ``hparams_file`` lacks (see :func:`override_problems`).

    Arguments
    ---------
    hparams_file : str or os.PathLike
        The YAML the overrides apply to.
    overrides : str or dict or None
        ``sb.parse_arguments``'s overrides.
    extra : sequence of str
        Keys accepted though the YAML lacks them (default :data:`RUNNER_KEYS`).
    """
    keys = list(load_yaml(Path(hparams_file).read_text(encoding="utf-8")) or {})
    problems = override_problems(overrides, [*keys, *extra])
    if problems:
        raise ValueError(f"{hparams_file}: not a key of this YAML: {'; '.join(problems)}")


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
        raise FileNotFoundError(
            f"{hparams_file}: data_folder {data_folder!r} is not a folder (pass --data_folder=/path/to/the/corpus)"
        )
    missing = missing_local_sources(values)
    if missing:
        raise FileNotFoundError(
            f"{hparams_file}: local model folder not found: {'; '.join(missing)} (pass an existing folder or a hub id)"
        )
    for key in ("train_annotation", "valid_annotation", "test_annotation"):
        if values.get("skip_prep", False) and key in values and not Path(str(values[key])).is_file():
            raise FileNotFoundError(f"{hparams_file}: skip_prep is set but {key} {values[key]!r} does not exist")
    for run in values.get("fusion_runs") or []:
        if not (Path(str(run)) / "embeddings").is_dir():
            raise FileNotFoundError(
                f"{hparams_file}: fusion run {str(run)!r} has no embeddings/ folder (train it first, with save_embeddings: True)"
            )


def run_recipe(
    prepare: Callable[[dict], None],
    brains: Sequence[type],
    argv: list[str] | None = None,
    derive: Callable[[dict], dict] | None = None,
) -> dict:
    """Check, prepare, train, report, then run the enabled post-training stages.

    Arguments
    ---------
    prepare : callable
        ``prepare(values)``: the corpus's data preparation, given the YAML's plain values.
    brains : sequence of Brain classes
        The Brains this recipe offers; the YAML's ``brain_class`` picks one.
    argv : list of str, optional
        Command line (default ``sys.argv[1:]``).
    derive : callable, optional
        ``derive(values)`` after preparation: ``{key: value}`` read from the
        prepared data (e.g. ``n_classes`` from the training labels), applied
        as overrides before anything is built.

    Returns
    -------
    dict
        Split -> final report.
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        check_overrides(hparams_file, overrides)
        values = plain_values(hparams_file, overrides)
        brain_class = pick_brain(values, brains, hparams_file)
        brain_class.check_hparams(values)
        check_inputs(values, hparams_file)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None  # one line, not a traceback: the input is wrong, not the code
    distributed.init_process_group(run_opts, values.get("ddp_timeout", distributed.DEFAULT_TIMEOUT_MINUTES))
    lock = _lock_output_folder(values["output_folder"])
    try:
        reports = _run(prepare, brain_class, hparams_file, run_opts, overrides, values, derive)
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
        print(
            f"Took over the run lock of {folder} from pid {lock.previous.get('pid')} on {lock.previous.get('host')}, which is no longer running"
        )
    return lock


def _run(prepare, brain_class, hparams_file: str, run_opts: dict, overrides, values: dict, derive=None) -> dict:
    sb.create_experiment_directory(
        experiment_directory=values["output_folder"], hyperparams_to_save=hparams_file, overrides=overrides
    )
    script = os.path.abspath(sys.argv[0])  # SpeechBrain copies the calling module; keep the recipe's own script
    if script.endswith(".py") and os.path.isfile(script) and if_main_process():
        shutil.copy(script, os.path.join(values["output_folder"], os.path.basename(script)))
    if not values["skip_prep"]:
        distributed.run_on_main_unbounded(prepare, kwargs={"hparams": values}, name="prepare")
    derived = derive(values) if derive else {}
    if derived:  # saved again with them: the export reads the run's hyperparams.yaml
        given = load_yaml(overrides) if isinstance(overrides, str) else overrides
        overrides = {**(given or {}), **derived}
        sb.create_experiment_directory(
            experiment_directory=values["output_folder"], hyperparams_to_save=hparams_file, overrides=overrides
        )
    if values.get("transcribe"):
        from speechbrain_ext.data.transcribe import import_transcripts, transcribe_manifests

        manifests = [values[f"{split}_annotation"] for split in SPLITS]
        options = {
            "device": run_opts.get("device") or "cpu",
            "progress": not run_opts.get("noprogressbar", False),
            **values["transcribe"],
        }
        transcripts_file = options.pop("transcripts_file", None)
        if transcripts_file:
            run_on_main(import_transcripts, args=[manifests, transcripts_file])
        else:
            distributed.run_on_main_unbounded(
                transcribe_manifests, args=[manifests, values["data_folder"]], kwargs=options, name="transcribe"
            )
    if "augmentation_folder" in values:
        from speechbrain_ext.data.augment import generate_noise_and_rirs

        run_on_main(
            generate_noise_and_rirs,
            kwargs={"folder": values["augmentation_folder"], "sample_rate": values["sample_rate"]},
        )

    with open(hparams_file, encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(
            handle, overrides, overrides_must_match=False
        )  # checked by check_overrides, RUNNER_KEYS allowed
    datasets = recipe_datasets_of(hparams)
    brain = brain_class(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    reports = brain.fit_and_report(datasets, hparams)
    context = StageContext(brain, datasets, hparams, reports)
    for index, stage in enumerate(hparams.get("post_training", [])):
        if stage.enabled:  # Bayesian head, kNN, embeddings: on the main process, the others wait
            distributed.run_on_main_unbounded(stage.run, args=[context], name=f"stage{index}_{type(stage).__name__}")
    brain.drop_distributed_wrappers()  # before the process group is destroyed (distributed.shutdown)
    return context.reports


def recipe_datasets_of(hparams: dict) -> dict:
    """The datasets of built hparams (manifests, task, inputs, audio cache), as every recipe makes them."""
    return recipe_datasets(
        {split: hparams[f"{split}_annotation"] for split in SPLITS},
        hparams["data_folder"],
        hparams["task"],
        sorting=hparams["sorting"],
        sample_rate=hparams["sample_rate"],
        max_seconds=hparams.get("max_audio_seconds"),
        inputs=hparams.get("model_inputs", ["sig"]),
        features=hparams.get("fusion_features"),
        audio_cache=hparams.get("audio_cache", True),
    )
