"""MSP-Podcast preparation: eight emotion classes or arousal/valence/dominance, the release's partitions.

Expected layout (the release)::

    <data_folder>/Labels/labels_consensus.csv
    <data_folder>/Audios/MSP-PODCAST_0001_0008.wav ...

``labels_consensus.csv`` columns: ``FileName, EmoClass, EmoAct, EmoVal,
EmoDom, SpkrID, Gender, Split_Set``. ``EmoClass`` is the consensus class
(:data:`CLASSES`: A angry, S sad, H happy, U surprise, F fear, D disgust,
C contempt, N neutral; O other and X no agreement are left out of the
categorical task); ``EmoAct/EmoVal/EmoDom`` are mean ratings on 1-7,
written to the manifest scaled to [0, 1] (``(r - 1) / 6``) as
``dimensions`` = [arousal, valence, dominance].

Protocol: the release's partitions, ``Train`` -> ``train``, ``Development``
-> ``valid``, ``Test1`` -> ``test``; ``Test2`` and ``Test3``, where the
release has them labelled, -> ``test2.json`` / ``test3.json``.

``SpkrID`` ``Unknown`` (segments whose speaker the release could not name)
cannot be checked for speaker leakage: each such segment becomes a speaker
of its own (``Unknown/<FileName>``), so the leakage check passes over it,
and their number per split is written to the summary
(``unknown_speaker_segments``) and the log.

Command line::

    python -m data_prep.msp_podcast /data/MSP-Podcast results/prep --task dimensional
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from data_prep.checks import check_labels
from data_prep.errors import PreparationError
from data_prep.preparation import Item, Preparation, parse_prepare_args, prepare_parser

logger = logging.getLogger(__name__)

CLASSES = {"A": "ang", "S": "sad", "H": "hap", "U": "sur", "F": "fea", "D": "dis", "C": "con", "N": "neu"}
LEFT_OUT = ("X", "O")  # no agreement, other: not a class of the categorical task
COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
RATINGS = ("EmoAct", "EmoVal", "EmoDom")  # -> arousal, valence, dominance
DIMENSIONS = ("arousal", "valence", "dominance")
RATING_RANGE = (1.0, 7.0)
PARTITIONS = {"Train": "train", "Development": "valid", "Test1": "test", "Test2": "test2", "Test3": "test3"}
UNKNOWN_SPEAKER = "Unknown"
TASKS = ("categorical", "dimensional")


def scale_rating(rating: float) -> float:
    """A 1-7 rating on [0, 1].

    Example
    -------
    >>> scale_rating(1.0), scale_rating(4.0), scale_rating(7.0)
    (0.0, 0.5, 1.0)
    """
    low, high = RATING_RANGE
    return (rating - low) / (high - low)


def read_consensus(path: Path) -> pd.DataFrame:
    """``labels_consensus.csv`` checked row by row; the first bad rows are named with their line numbers.

    Arguments
    ---------
    path : Path
        The label file.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`COLUMNS`, ratings as floats, plus ``line`` (1-based line in the file).
    """
    if not path.is_file():
        raise PreparationError(f"{path}: labels_consensus.csv not found (MSP-Podcast's label file, under Labels/)")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise PreparationError(f"{path}: missing column(s) {', '.join(missing)}; the header has {list(frame.columns)}")
    frame["line"] = range(2, len(frame) + 2)
    check_labels(frame["EmoClass"], [*CLASSES, *LEFT_OUT], str(path), "EmoClass")
    check_labels(frame["Split_Set"], PARTITIONS, str(path), "Split_Set")
    problems = []
    for column in RATINGS:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame.index[~values.between(*RATING_RANGE)]  # NaN (not a number) fails too
        problems += [f"line {frame.at[i, 'line']}: {column} = {frame.at[i, column]!r}" for i in bad]
        frame[column] = values
    duplicated = frame["FileName"].duplicated(keep="first")
    problems += [
        f"line {line}: {name} listed twice"
        for line, name in zip(frame["line"][duplicated], frame["FileName"][duplicated])
    ]
    problems += [f"line {line}: empty SpkrID" for line in frame["line"][frame["SpkrID"].str.strip() == ""]]
    if problems:
        raise PreparationError(
            f"{path}: {len(problems)} bad row(s) (ratings must be numbers in {RATING_RANGE[0]:g}-{RATING_RANGE[1]:g}): "
            + "; ".join(problems[:10])
            + (" ..." if len(problems) > 10 else "")
        )
    return frame


def prepare_msp_podcast(
    data_folder: str | Path,
    save_folder: str | Path,
    task: str = "categorical",
    allow_subset: bool = False,
    skip_bad_files: bool = False,
) -> dict[str, str]:
    """Write ``train.json``, ``valid.json``, ``test.json`` (Test1) and, where labelled, ``test2.json``/``test3.json``.

    Entries hold ``wav``, ``duration``, ``speaker`` (``SpkrID``; see the
    module note on ``Unknown``), ``gender``, ``emo`` (a :data:`CLASSES`
    name, or ``X``/``O``), ``dimensions`` ([arousal, valence, dominance] on
    [0, 1]). The categorical task leaves the X and O segments out; the
    dimensional task keeps them.

    Arguments
    ---------
    data_folder : str or Path
        Release root (``Labels/`` and ``Audios/``).
    save_folder : str or Path
        Output folder.
    task : str
        ``categorical`` or ``dimensional``.
    allow_subset : bool
        Prepare even when listed audio files are missing (they are dropped).
    skip_bad_files : bool
        Drop (and list) unreadable or empty audio instead of failing.

    Returns
    -------
    dict
        Split name -> manifest path (train, valid, test; test2/test3 where written).
    """
    if task not in TASKS:
        raise PreparationError(f"unknown MSP-Podcast task {task!r}; one of {', '.join(TASKS)}")
    labels = Path(data_folder) / "Labels" / "labels_consensus.csv"
    options = {"task": task, "allow_subset": allow_subset, "skip_bad_files": skip_bad_files}
    prep = Preparation(
        "MSP-Podcast",
        data_folder,
        save_folder,
        options,
        ("train", "valid", "test"),
        "Labels/labels_consensus.csv and Audios/",
        [labels],
    )
    extra = {s: Path(save_folder) / f"{s}.json" for s in ("test2", "test3")}
    if prep.done():  # with the Test2/Test3 manifests this preparation wrote
        return {**prep.outputs, **{s: str(p) for s, p in extra.items() if p.is_file()}}
    for stale in extra.values():  # an earlier preparation's, whatever this release holds
        stale.unlink(missing_ok=True)
    frame = read_consensus(labels)
    if task == "categorical":
        frame = frame[~frame["EmoClass"].isin(LEFT_OUT)]
    audio_folder = Path(data_folder) / "Audios"
    paths = {name: audio_folder / (name if Path(name).suffix else f"{name}.wav") for name in frame["FileName"]}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing and not allow_subset:
        raise PreparationError(
            f"{audio_folder}: no audio for {len(missing)} labelled segment(s), e.g. {', '.join(missing[:5])}; pass allow_subset=True on purpose"
        )
    items: dict[str, list[Item]] = {}
    unknown: Counter = Counter()
    for row in frame[~frame["FileName"].isin(missing)].itertuples(index=False):
        split = PARTITIONS[row.Split_Set]
        utt_id = Path(row.FileName).stem
        speaker = row.SpkrID.strip()
        if speaker == UNKNOWN_SPEAKER:
            unknown[split] += 1
            speaker = f"{UNKNOWN_SPEAKER}/{utt_id}"  # its own speaker: nothing to check it against
        fields = {
            "gender": row.Gender,
            "emo": CLASSES.get(row.EmoClass, row.EmoClass),
            "dimensions": [scale_rating(getattr(row, column)) for column in RATINGS],
        }
        items.setdefault(split, []).append(Item(utt_id, paths[row.FileName], speaker, fields))
    if unknown:
        logger.warning(
            "%s: %d segment(s) with SpkrID Unknown (%s) cannot be checked for speaker leakage",
            labels,
            sum(unknown.values()),
            ", ".join(f"{s} {n}" for s, n in sorted(unknown.items())),
        )
    summary = {
        "task": task,
        "partitions": {split: name for name, split in PARTITIONS.items() if split in items},
        "dimensions": list(DIMENSIONS),
        "rating_range": list(RATING_RANGE),
        "unknown_speaker_segments": dict(sorted(unknown.items())),
    }
    return prep.write(items, "emo", skip_bad_files, extra_summary=summary)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``python -m data_prep.msp_podcast DATA_FOLDER SAVE_FOLDER [--task dimensional]``."""
    parser = prepare_parser(__doc__)
    parser.add_argument("--task", choices=TASKS, default="categorical")
    args = parse_prepare_args(parser, argv)
    prepare_msp_podcast(
        args.data_folder,
        args.save_folder,
        task=args.task,
        allow_subset=args.allow_subset,
        skip_bad_files=args.skip_bad_files,
    )


if __name__ == "__main__":
    main()
