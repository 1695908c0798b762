"""Hume-Prosody (ComParE 2023 Emotion Share) preparation.

Expected layout (the challenge package)::

    <data_folder>/wav/10024.wav ...
    <data_folder>/lab/train.csv   # filename,Anger,Boredom,...,Tiredness
    <data_folder>/lab/devel.csv
    <data_folder>/lab/test.csv    # intensities masked ("?") in the challenge release

Each clip has nine emotion intensities in [0, 1] (:data:`EMOTIONS`, in the
challenge's column order). The metric is Spearman's rho per emotion over
all clips, averaged over the nine (:func:`speechbrain_ext.evaluation.metrics.spearman_per_column`).

Protocol: the challenge partitions, ``train`` / ``devel`` (validation) /
``test`` (predict-only when masked).

Command line::

    python -m data_prep.hume_prosody /data/Hume-Prosody results/prep
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

from data_prep.compare import prepare_challenge_package
from data_prep.errors import PreparationError
from data_prep.preparation import parse_prepare_args, prepare_parser

logger = logging.getLogger(__name__)

EMOTIONS = (
    "Anger",
    "Boredom",
    "Calmness",
    "Concentration",
    "Determination",
    "Excitement",
    "Interest",
    "Sadness",
    "Tiredness",
)


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
    return prepare_challenge_package(
        "Hume-Prosody",
        data_folder,
        save_folder,
        list(EMOTIONS),
        _labels,
        "dominant",
        allow_subset,
        skip_bad_files,
        extra_summary={"emotions": list(EMOTIONS)},
    )


def _labels(row: dict, where: str) -> dict:
    """``intensities`` and the ``dominant`` emotion of a row."""
    values = parse_intensities(row, where)
    return {"intensities": values, "dominant": EMOTIONS[max(range(len(values)), key=values.__getitem__)]}


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``python -m data_prep.hume_prosody DATA_FOLDER SAVE_FOLDER``."""
    parser = prepare_parser(__doc__)
    args = parse_prepare_args(parser, argv)
    prepare_hume_prosody(
        args.data_folder, args.save_folder, allow_subset=args.allow_subset, skip_bad_files=args.skip_bad_files
    )


if __name__ == "__main__":
    main()
