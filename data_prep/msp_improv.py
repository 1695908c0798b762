"""MSP-IMPROV preparation: four classes, leave-one-session-out.

Expected layout (details UNVERIFIED against a release; the script searches
the whole tree for the audio, so both known variants work)::

    <data_folder>/Evaluation.txt
    <data_folder>/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.wav   (or under Audio/)

Utterance ids ``MSP-IMPROV-S01A-F01-P-FM01``: sentence ``S01`` with
intended emotion ``A``, speaker ``F01`` (female, session 1), scenario ``P``.
``Evaluation.txt`` summary lines (ids may be spelt ``UTD-IMPROV-...avi``)::

    UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:3.000000; V:2.000000; D:2.000000; N:4.000000

give the consensus label (A angry, H happy, S sad, N neutral; O other and X
no agreement are left out) and mean arousal/valence/dominance. The four
classes hold 7798 utterances.

Protocol ``loso`` (w2v2_info_recovery): 6 folds; fold k tests session k
(both speakers) and validates on session k+1 (cyclically), the other four
sessions train.

Command line::

    python -m data_prep.msp_improv /data/MSP-IMPROV results/prep --fold 1
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from data_prep.checks import check_labels, index_audio
from data_prep.errors import PreparationError
from data_prep.preparation import Item, Preparation, parse_prepare_args, prepare_parser
from data_prep.splits import check_fold

logger = logging.getLogger(__name__)

LABELS = {"A": "ang", "H": "hap", "S": "sad", "N": "neu"}
ALL_CODES = (*LABELS, "O", "X")
N_UTTERANCES = 7798
N_SESSIONS = 6
SUMMARY_LINE = re.compile(
    r"^(?:UTD|MSP)-IMPROV-(S\d+[A-Z])-([FM])(\d\d)-([A-Z])-(\w+?)(?:\.\w+)?;\s*([A-Z]);\s*A:([-\d.]+);\s*V:([-\d.]+);\s*D:([-\d.]+);\s*N:([-\d.]+)"
)


def parse_evaluation(path: Path) -> list[dict]:
    """Summary lines of ``Evaluation.txt`` as dicts (per-evaluator lines are skipped)."""
    if not path.is_file():
        raise PreparationError(f"{path}: Evaluation.txt not found (MSP-IMPROV's label file, at the corpus root)")
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        match = SUMMARY_LINE.match(line.strip())
        if match is None:
            continue
        sentence, gender, session, scenario, turn, code, arousal, valence, dominance, n = match.groups()
        rows.append(
            {
                "utt_id": f"MSP-IMPROV-{sentence}-{gender}{session}-{scenario}-{turn}",
                "speaker": f"{gender}{session}",
                "session": int(session),
                "code": code,
                "arousal": float(arousal),
                "valence": float(valence),
                "dominance": float(dominance),
                "line": line_no,
            }
        )
    if not rows:
        raise PreparationError(
            f"{path}: no summary lines like 'UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:..; V:..; D:..; N:..'"
        )
    return rows


def prepare_msp_improv(
    data_folder: str | Path,
    save_folder: str | Path,
    protocol: str = "loso",
    fold: int = 1,
    allow_subset: bool = False,
    skip_bad_files: bool = False,
) -> dict[str, str]:
    """Write ``train.json``, ``valid.json`` and ``test.json`` for one MSP-IMPROV fold.

    Entries hold ``wav``, ``duration``, ``speaker`` (``F01``), ``session``,
    ``emo`` (ang/hap/sad/neu), ``arousal``, ``valence``, ``dominance``.

    Arguments
    ---------
    data_folder : str or Path
        Corpus root (``Evaluation.txt`` and the session folders).
    save_folder : str or Path
        Output folder (one per fold).
    protocol : str
        ``loso`` (6 folds).
    fold : int
        Held-out session.
    allow_subset : bool
        Accept other than 7798 four-class utterances or missing audio.
    skip_bad_files : bool
        Drop (and list) unreadable or empty audio instead of failing.

    Returns
    -------
    dict
        Split name -> manifest path.
    """
    if protocol != "loso":
        raise PreparationError(f"unknown MSP-IMPROV protocol {protocol!r}; MSP-IMPROV has 'loso'")
    check_fold(fold, N_SESSIONS, protocol)
    options = {"protocol": protocol, "fold": int(fold), "allow_subset": allow_subset, "skip_bad_files": skip_bad_files}
    evaluation = Path(data_folder) / "Evaluation.txt"
    prep = Preparation(
        "MSP-IMPROV",
        data_folder,
        save_folder,
        options,
        ("train", "valid", "test"),
        "Evaluation.txt and session1 ... session6",
        [evaluation],
    )
    if prep.done():
        return prep.outputs
    rows = parse_evaluation(evaluation)
    check_labels((r["code"] for r in rows), ALL_CODES, str(evaluation), "consensus label")
    kept = [r for r in rows if r["code"] in LABELS]
    if len(kept) != N_UTTERANCES and not allow_subset:
        raise PreparationError(
            f"{evaluation}: {len(kept)} four-class utterances, the corpus has {N_UTTERANCES}; pass allow_subset=True on purpose"
        )
    audio = index_audio(data_folder)
    missing = [r["utt_id"] for r in kept if r["utt_id"] not in audio]
    if missing and not allow_subset:
        raise PreparationError(
            f"{data_folder}: no audio for {len(missing)} labelled utterance(s), e.g. {', '.join(missing[:5])}; pass allow_subset=True on purpose"
        )
    test_session, valid_session = fold, fold % N_SESSIONS + 1
    items: dict[str, list[Item]] = {"train": [], "valid": [], "test": []}
    for row in kept:
        if row["utt_id"] not in audio:
            continue
        split = "test" if row["session"] == test_session else "valid" if row["session"] == valid_session else "train"
        fields = {
            "session": row["session"],
            "emo": LABELS[row["code"]],
            "arousal": row["arousal"],
            "valence": row["valence"],
            "dominance": row["dominance"],
        }
        items[split].append(Item(row["utt_id"], audio[row["utt_id"]], row["speaker"], fields))
    sessions = Counter(r["session"] for r in kept)
    summary = {
        "protocol": protocol,
        "fold": fold,
        "test_session": test_session,
        "valid_session": valid_session,
        "sessions": dict(sorted(sessions.items())),
    }
    return prep.write(items, "emo", skip_bad_files, extra_summary=summary)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``python -m data_prep.msp_improv DATA_FOLDER SAVE_FOLDER [--fold K]``."""
    parser = prepare_parser(__doc__)
    parser.add_argument("--fold", type=int, default=1)
    args = parse_prepare_args(parser, argv)
    prepare_msp_improv(
        args.data_folder,
        args.save_folder,
        fold=args.fold,
        allow_subset=args.allow_subset,
        skip_bad_files=args.skip_bad_files,
    )


if __name__ == "__main__":
    main()
