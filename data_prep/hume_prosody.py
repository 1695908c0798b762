"""Hume-Prosody (ComParE 2023 Emotion Share) preparation.

Expected layout (the challenge package)::

    <data_folder>/wav/10024.wav ...
    <data_folder>/lab/train.csv   # filename,Anger,Boredom,...,Tiredness
    <data_folder>/lab/devel.csv
    <data_folder>/lab/test.csv    # intensities masked ("?") in the challenge release

Each clip has nine emotion intensities in [0, 1] (:data:`EMOTIONS`, in the
challenge's column order). The metric is Spearman's rho per emotion over
all clips, averaged over the nine (:func:`speechbrain_ext.metrics.spearman_per_column`).

Protocol: the challenge partitions, ``train`` / ``devel`` (validation) /
``test`` (predict-only when masked).

Command line::

    python -m data_prep.hume_prosody /data/Hume-Prosody results/prep
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from data_prep.common import Item, Preparation, PreparationError
from data_prep.compare import PARTITIONS, label_files, partition_is_labelled, read_partition, resolve_audio

logger = logging.getLogger(__name__)

EMOTIONS = ("Anger", "Boredom", "Calmness", "Concentration", "Determination", "Excitement", "Interest", "Sadness", "Tiredness")
SPLIT_NAMES = {"train": "train", "devel": "valid", "test": "test"}


def parse_intensities(row: dict, where: str) -> list[float]:
    """The nine intensities of a row as floats in [0, 1], with a clear error otherwise.

    Example
    -------
    >>> parse_intensities({"line": 2, **{e: "0.5" for e in EMOTIONS}}, "lab/train.csv")[:2]
    [0.5, 0.5]
    """
    values = []
    for emotion in EMOTIONS:
        raw = row[emotion]
        try:
            value = float(raw)
        except ValueError:
            raise PreparationError(f"{where}, line {row['line']}: {emotion} = {raw!r} is not a number") from None
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise PreparationError(f"{where}, line {row['line']}: {emotion} = {raw!r} is outside [0, 1]")
        values.append(value)
    return values


def prepare_hume_prosody(
    data_folder: str | Path,
    save_folder: str | Path,
    allow_subset: bool = False,
    skip_bad_files: bool = False,
) -> dict[str, str]:
    """Write ``train.json``, ``valid.json`` (devel) and ``test.json`` for Hume-Prosody.

    Labelled entries hold ``intensities`` (the nine values in :data:`EMOTIONS`
    order) and ``dominant`` (the strongest emotion, for the summary);
    masked ones hold neither (``labelled: false``).

    Arguments
    ---------
    data_folder : str or Path
        Challenge package root (``wav/`` and ``lab/``).
    save_folder : str or Path
        Output folder.
    allow_subset : bool
        Prepare even when listed audio files are missing (they are dropped).
    skip_bad_files : bool
        Drop (and list) unreadable or empty audio instead of failing.

    Returns
    -------
    dict
        Split name -> manifest path.
    """
    options = {"allow_subset": allow_subset, "skip_bad_files": skip_bad_files}
    prep = Preparation(
        "Hume-Prosody", data_folder, save_folder, options, list(SPLIT_NAMES.values()), "wav/ and lab/{train,devel,test}.csv inside", label_files(data_folder)
    )
    if prep.done():
        return prep.outputs
    rows = {p: read_partition(data_folder, p, list(EMOTIONS)) for p in PARTITIONS}
    audio = resolve_audio(data_folder, rows, allow_subset)
    items: dict[str, list[Item]] = {}
    masked_partitions = []
    for partition, partition_rows in rows.items():
        where = str(Path(data_folder) / "lab" / f"{partition}.csv")
        labelled = partition_is_labelled(partition_rows, list(EMOTIONS), where)
        if not labelled:
            masked_partitions.append(partition)
        split_items = []
        for row in partition_rows:
            values = parse_intensities(row, where) if labelled else None
            if row["filename"] not in audio:
                continue
            fields: dict = {"partition": partition, "labelled": labelled}
            if labelled:
                fields["intensities"] = values
                fields["dominant"] = EMOTIONS[max(range(len(values)), key=values.__getitem__)]
            stem = Path(row["filename"]).stem
            split_items.append(Item(stem, audio[row["filename"]], stem, fields))
        items[SPLIT_NAMES[partition]] = split_items
    summary = {"protocol": "challenge partitions", "emotions": list(EMOTIONS), "masked_partitions": masked_partitions}
    return prep.write(items, "dominant", skip_bad_files, extra_summary=summary)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``python -m data_prep.hume_prosody DATA_FOLDER SAVE_FOLDER``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_folder")
    parser.add_argument("save_folder")
    parser.add_argument("--allow-subset", action="store_true")
    parser.add_argument("--skip-bad-files", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    prepare_hume_prosody(args.data_folder, args.save_folder, allow_subset=args.allow_subset, skip_bad_files=args.skip_bad_files)


if __name__ == "__main__":
    main()
