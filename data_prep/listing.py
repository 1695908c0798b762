"""Your own corpus: any labels, any language, any number of classes, from a CSV listing or a folder tree.

Listing (UTF-8; comma, semicolon or tab separated; column names case-insensitive)::

    path,label,speaker[,split][,transcript][,<numeric target columns>]
    clips/anna/001.wav,Freude,anna,train,Das ist schön,0.8
    ...

``path`` is relative to the corpus folder. ``split`` (``train``, ``valid`` or
``test``; ``dev``/``devel``/``validation`` mean ``valid``) is read by the
``given`` protocol only. Numeric columns named by ``targets`` (e.g. arousal,
valence) are written as floats. Any other column (a numeric one not named in
``targets`` included) is an error, so a typo cannot silently drop information.

Folder tree (``from_folders=True``)::

    <data_folder>/<label>/<speaker>/*.wav     (.flac too)

Labels: ``label_map`` merges (``{"Wut": "Ärger"}``) or drops
(``{"Ekel": "drop"}``) labels before anything else; ``labels``, when given,
is the complete class set after the map (a row with another label stops
preparation). Labels are kept as written (trimmed, Unicode NFC), so the
recipes report the user's own names.

Protocols (every split speaker-disjoint, checked before writing):

``kfold``
    ``StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)``
    with the labels as classes and the speakers as groups; fold ``k`` tests
    the k-th group of speakers. Validation is taken from the remaining
    (training) speakers only: they are split again with
    ``StratifiedGroupKFold(n_splits=min(n_folds, their number), shuffle=True,
    random_state=seed)`` and its first fold validates, the rest trains. With
    5 folds: about 20 % test, 16 % valid, 64 % train.
``loso``
    Leave one speaker out: speakers sorted, fold ``k`` tests the k-th and
    validates on the next one (cyclically; ``valid_offset`` places further).
``given``
    The listing's ``split`` column.

Bad rows (missing or duplicated file, empty path/label/speaker, bad split,
non-numeric target, wrong field count) and unknown columns are all named,
with their CSV line numbers, in one error before any audio is read.

Command line::

    python -m data_prep.listing /data/mine prep/mine_fold2 --listing mine.csv \\
        --protocol kfold --folds 5 --fold 2 --label-map "Wut=Ärger,Ekel=drop"
    python -m data_prep.listing /data/mine prep/mine_loso1 --from-folders --protocol loso --fold 1
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from data_prep.errors import PreparationError
from data_prep.listing_rows import (
    RESERVED,
    apply_labels,
    check_rows,
    parse_label_map,
    parse_names,
    read_listing,
    resolve_listing,
    rows_from_folders,
    tree_fingerprint,
    utterance_ids,
)
from data_prep.preparation import Item, Preparation, parse_prepare_args, prepare_parser
from data_prep.splits import leave_one_speaker_out, speaker_kfold

logger = logging.getLogger(__name__)

PROTOCOLS = ("kfold", "loso", "given")
MAX_ROW_ERRORS = 200


def prepare_listing(
    data_folder: str | Path,
    save_folder: str | Path,
    listing: str | Path | None = "listing.csv",
    protocol: str = "kfold",
    n_folds: int = 5,
    fold: int = 1,
    seed: int = 1986,
    label_map: str | Mapping[str, str] | None = None,
    labels: str | Sequence[str] | None = None,
    targets: str | Sequence[str] | None = None,
    from_folders: bool = False,
    valid_offset: int = 1,
    allow_subset: bool = False,
    skip_bad_files: bool = False,
) -> dict[str, str]:
    """Write ``train.json``, ``valid.json`` and ``test.json`` for one fold of your own corpus.

    Entries hold ``wav`` (with ``{data_root}``), ``duration``, ``speaker``,
    ``emo`` (the label after the map), ``emo_original`` (when a map is given),
    ``transcript`` (when the listing has one) and each target as a float.
    A second call with the same options (and unchanged listing) does nothing.

    Arguments
    ---------
    data_folder : str or Path
        Corpus root; listing paths are relative to it.
    save_folder : str or Path
        Output folder (one per fold).
    listing : str or Path, optional
        The CSV (see the module docstring): absolute, relative to
        ``data_folder`` when it is there, else to the working directory.
        Ignored with ``from_folders``.
    protocol : str
        ``kfold``, ``loso`` or ``given``.
    n_folds : int
        Number of folds of ``kfold``.
    fold : int
        1-based fold (``kfold``: 1..n_folds; ``loso``: 1..number of speakers).
    seed : int
        Seed of the ``kfold`` shuffles.
    label_map : str or mapping, optional
        ``"old=new,other=drop"`` or a dict: merges labels or drops their rows.
    labels : str or sequence, optional
        The expected classes after the map; other labels stop preparation.
    targets : str or sequence, optional
        Numeric listing columns written as floats (``"arousal,valence"``).
    from_folders : bool
        Read ``<data_folder>/<label>/<speaker>/*.wav`` instead of a listing.
    valid_offset : int
        ``loso``: validation speaker = test speaker + this many places (sorted).
    allow_subset : bool
        Drop (and count) listed rows whose file is missing instead of failing.
    skip_bad_files : bool
        Drop (and list) unreadable or empty audio instead of failing.

    Returns
    -------
    dict
        Split name -> manifest path.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> root = Path(tempfile.mkdtemp())
    >>> lines = ["path,label,speaker"]
    >>> for i, speaker in enumerate(["anna", "ben", "chloé", "dora"]):
    ...     for label in ("Freude", "Wut"):
    ...         soundfile.write(str(root / f"{speaker}_{label}.wav"), numpy.full(1600, 0.1 * (i + 1)), 16000)
    ...         lines.append(f"{speaker}_{label}.wav,{label},{speaker}")
    >>> _ = (root / "listing.csv").write_text("\\n".join(lines), encoding="utf-8")
    >>> paths = prepare_listing(root, root / "prep", protocol="loso", fold=1)  # doctest: +ELLIPSIS
    | split | utts | speakers | hours | Freude | Wut |
    ...
    >>> import json; json.loads(Path(paths["test"]).read_text())["anna_Wut"]
    {'wav': '{data_root}/anna_Wut.wav', 'duration': 0.1, 'speaker': 'anna', 'emo': 'Wut'}
    """
    if protocol not in PROTOCOLS:
        raise PreparationError(f"unknown protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
    if from_folders and (protocol == "given" or targets):
        raise PreparationError(
            "protocol 'given' and targets need a listing (split and target columns), not from_folders"
        )
    data_folder = Path(data_folder)
    label_map, labels = parse_label_map(label_map), parse_names(labels)
    targets = [t.lower() for t in parse_names(targets)]
    clash = sorted(set(targets) & RESERVED)
    if clash:
        raise PreparationError(f"target column(s) {clash} clash with the manifest fields {sorted(RESERVED)}")
    listing_path = None if from_folders else resolve_listing(listing or "listing.csv", data_folder)
    options = {
        "protocol": protocol,
        "label_map": label_map,
        "labels": labels,
        "targets": targets,
        "allow_subset": allow_subset,
        "skip_bad_files": skip_bad_files,
        "source": str(listing_path) if listing_path else "folders",
        **({"fold": int(fold), "n_folds": int(n_folds), "seed": int(seed)} if protocol == "kfold" else {}),
        **({"fold": int(fold), "valid_offset": int(valid_offset)} if protocol == "loso" else {}),
    }
    if from_folders:  # the tree is the listing: its file names and sizes join the options
        options["tree"] = tree_fingerprint(data_folder)
    prep = Preparation(
        "corpus",
        data_folder,
        save_folder,
        options,
        ("train", "valid", "test"),
        "the audio the listing names" if listing_path else "<label>/<speaker>/*.wav",
        [listing_path] if listing_path else [],
    )
    if prep.done():
        return prep.outputs
    where = str(listing_path or data_folder)
    if listing_path:
        rows, problems = read_listing(listing_path, targets, need_split=protocol == "given")
    else:
        rows, problems = rows_from_folders(data_folder), []
    problems += check_rows(rows, data_folder, targets, protocol, allow_subset)
    if problems:
        problems.sort(key=lambda p: int(p.split(":")[0][5:]) if p.startswith("line ") else 0)
        shown = problems[:MAX_ROW_ERRORS] + (
            [f"... and {len(problems) - MAX_ROW_ERRORS} more"] if len(problems) > MAX_ROW_ERRORS else []
        )
        raise PreparationError(f"{where}: {len(problems)} problem(s), nothing prepared:\n  " + "\n  ".join(shown))
    dropped = apply_labels(rows, label_map, labels, where)

    speakers = sorted({r["speaker"] for r in rows})
    if protocol == "kfold":
        roles = speaker_kfold(
            [r["label"] for r in rows], [r["speaker"] for r in rows], int(n_folds), int(fold), int(seed)
        )
    elif protocol == "loso":
        roles = leave_one_speaker_out(speakers, int(fold), int(valid_offset))
    else:
        roles = {s: sorted({r["speaker"] for r in rows if r["split"] == s}) for s in ("train", "valid", "test")}
    role_of = {spk: split for split, spks in roles.items() for spk in spks}

    items: dict[str, list[Item]] = {"train": [], "valid": [], "test": []}
    for row, utt_id in zip(rows, utterance_ids([r["path"] for r in rows])):
        fields = {"emo": row["label"]}
        if label_map:
            fields["emo_original"] = row["original"]
        if "transcript" in row:
            fields["transcript"] = row["transcript"]
        fields.update({t: row[t] for t in targets})
        split = row["split"] if protocol == "given" else role_of[row["speaker"]]
        items[split].append(Item(utt_id, row["audio"], row["speaker"], fields))
    summary = {
        "protocol": protocol,
        "source": options["source"],
        "labels": sorted({r["label"] for r in rows}),
        "label_map": label_map,
        "dropped_by_label_map": dict(dropped),
        "targets": targets,
        "held_out": {k: v for k, v in roles.items() if k != "train"},
    }
    summary.update({k: options[k] for k in ("fold", "n_folds", "seed", "valid_offset") if k in options})
    return prep.write(items, "emo", skip_bad_files, extra_summary=summary)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``python -m data_prep.listing DATA SAVE --listing FILE.csv [options]``."""
    parser = prepare_parser(__doc__)
    parser.add_argument("--listing", default="listing.csv", help="the CSV (path,label,speaker[,split,transcript,...])")
    parser.add_argument("--from-folders", action="store_true", help="read DATA/<label>/<speaker>/*.wav instead")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="kfold")
    parser.add_argument("--folds", type=int, default=5, help="kfold: number of folds")
    parser.add_argument("--fold", type=int, default=1, help="1-based fold to prepare")
    parser.add_argument("--seed", type=int, default=1986, help="kfold: shuffle seed")
    parser.add_argument("--valid-offset", type=int, default=1, help="loso: validation speaker offset")
    parser.add_argument("--label-map", default=None, help="merge or drop labels: old=new,other=drop")
    parser.add_argument("--labels", default=None, help="expected classes after the map: x,y,z")
    parser.add_argument("--targets", default=None, help="numeric columns to keep: arousal,valence")
    args = parse_prepare_args(parser, argv)
    prepare_listing(
        args.data_folder,
        args.save_folder,
        listing=args.listing,
        protocol=args.protocol,
        n_folds=args.folds,
        fold=args.fold,
        seed=args.seed,
        label_map=args.label_map,
        labels=args.labels,
        targets=args.targets,
        from_folders=args.from_folders,
        valid_offset=args.valid_offset,
        allow_subset=args.allow_subset,
        skip_bad_files=args.skip_bad_files,
    )


if __name__ == "__main__":
    main()
