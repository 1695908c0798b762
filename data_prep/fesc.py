"""FESC (Finnish Emotional Speech Corpus) preparation, from a generic listing.

FESC is not public and its release layout could not be checked, so the
preparation reads a CSV listing that any copy can be described with::

    <data_folder>/listing.csv          # path,speaker,emotion
    <data_folder>/<path>               # paths relative to data_folder

    path,speaker,emotion
    wav/FESC_01/FESC_01_neutral_01.wav,FESC_01,neutral

Labels (segment_triplet): neutral, sadness, joy, affection, anger (case and
whitespace are normalised). Nine speakers (5 male, 4 female), about five
hours of read prose.

Protocol ``loso``: leave-one-speaker-out, 9 folds. With the speakers sorted,
fold k tests the k-th speaker and validates on the next one (cyclically);
``valid_offset`` changes that distance.

Command line::

    python -m data_prep.fesc /data/FESC results/prep --fold 1
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

from data_prep.checks import check_labels
from data_prep.errors import PreparationError
from data_prep.preparation import Item, Preparation, parse_prepare_args, prepare_parser
from data_prep.splits import leave_one_speaker_out

logger = logging.getLogger(__name__)

EMOTIONS = ("neutral", "sadness", "joy", "affection", "anger")
N_SPEAKERS = 9


def read_listing(listing: Path) -> list[dict]:
    """Rows of the ``path,speaker,emotion`` listing, with line numbers."""
    if not listing.is_file():
        raise PreparationError(
            f"{listing}: FESC listing not found (a CSV with columns path,speaker,emotion; see data_prep/fesc.py)"
        )
    with open(listing, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        if not {"path", "speaker", "emotion"} <= set(columns):
            raise PreparationError(f"{listing}: columns {reader.fieldnames} must include path, speaker and emotion")
        rows = []
        for line_no, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            if not any(row.values()):
                continue
            row["line"] = line_no
            rows.append(row)
    if not rows:
        raise PreparationError(f"{listing}: no rows")
    return rows


def prepare_fesc(
    data_folder: str | Path,
    save_folder: str | Path,
    protocol: str = "loso",
    fold: int = 1,
    listing: str = "listing.csv",
    valid_offset: int = 1,
    allow_subset: bool = False,
    skip_bad_files: bool = False,
) -> dict[str, str]:
    """Write ``train.json``, ``valid.json`` and ``test.json`` for one FESC fold.

    Entries hold ``wav`` (with ``{data_root}``), ``duration``, ``speaker`` and ``emo``.

    Arguments
    ---------
    data_folder : str or Path
        Corpus root; listing paths are relative to it.
    save_folder : str or Path
        Output folder (one per fold).
    protocol : str
        ``loso`` (the only one).
    fold : int
        1..9 (number of speakers).
    listing : str
        Listing file, relative to ``data_folder`` or absolute.
    valid_offset : int
        Validation speaker = test speaker + this many places in sorted order.
    allow_subset : bool
        Accept other than nine speakers.
    skip_bad_files : bool
        Drop (and list) unreadable or empty audio instead of failing.

    Returns
    -------
    dict
        Split name -> manifest path.
    """
    if protocol != "loso":
        raise PreparationError(f"unknown FESC protocol {protocol!r}; FESC has 'loso'")
    listing_path = Path(listing) if Path(listing).is_absolute() else Path(data_folder) / listing
    options = {
        "protocol": protocol,
        "fold": int(fold),
        "listing": str(listing_path),
        "valid_offset": valid_offset,
        "allow_subset": allow_subset,
        "skip_bad_files": skip_bad_files,
    }
    prep = Preparation(
        "FESC",
        data_folder,
        save_folder,
        options,
        ("train", "valid", "test"),
        "listing.csv and the audio it lists",
        [listing_path],
    )
    if prep.done():
        return prep.outputs
    rows = read_listing(listing_path)
    check_labels((r["emotion"].lower() for r in rows), EMOTIONS, str(listing_path), "emotion")
    speakers = sorted({r["speaker"] for r in rows})
    if len(speakers) != N_SPEAKERS and not allow_subset:
        raise PreparationError(
            f"{listing_path}: {len(speakers)} speakers ({', '.join(speakers)}), FESC has {N_SPEAKERS}; pass allow_subset=True on purpose"
        )
    roles = leave_one_speaker_out(speakers, fold, valid_offset)
    role_of = {spk: split for split, spks in roles.items() for spk in spks}
    items: dict[str, list[Item]] = {"train": [], "valid": [], "test": []}
    stems = [Path(r["path"]).stem for r in rows]
    unique_stems = len(set(stems)) == len(stems)  # else ids spell the whole relative path
    for row, stem in zip(rows, stems):
        path = Path(data_folder) / row["path"]
        utt_id = stem if unique_stems else Path(row["path"]).with_suffix("").as_posix().replace("/", "__")
        items[role_of[row["speaker"]]].append(Item(utt_id, path, row["speaker"], {"emo": row["emotion"].lower()}))
    return prep.write(
        items,
        "emo",
        skip_bad_files,
        extra_summary={
            "protocol": protocol,
            "fold": fold,
            "held_out": {k: v for k, v in roles.items() if k != "train"},
        },
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``python -m data_prep.fesc DATA_FOLDER SAVE_FOLDER [--fold K]``."""
    parser = prepare_parser(__doc__)
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--listing", default="listing.csv")
    args = parse_prepare_args(parser, argv)
    prepare_fesc(
        args.data_folder,
        args.save_folder,
        fold=args.fold,
        listing=args.listing,
        allow_subset=args.allow_subset,
        skip_bad_files=args.skip_bad_files,
    )


if __name__ == "__main__":
    main()
