"""IEMOCAP preparation: four-class or full label set, speaker-independent folds.

Expected layout (the ``IEMOCAP_full_release`` folder)::

    <data_folder>/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav
    <data_folder>/Session1/dialog/EmoEvaluation/Ses01F_impro01.txt
    <data_folder>/Session1/dialog/transcriptions/Ses01F_impro01.txt
    ... Session2 .. Session5

EmoEvaluation summary lines (tab separated) give each utterance's consensus
label and valence/activation/dominance::

    [140.2250 - 145.6000]	Ses01F_impro05_F019	ang	[1.5000, 4.0000, 4.5000]

The **speaker** is the session plus the gender letter of the utterance id's
last token: ``Ses01F_impro01_M003`` is spoken by ``Ses01M`` (the dialog
prefix ``Ses01F`` only names who led the dialog).

Label sets: ``4class`` (neu, hap with exc merged, sad, ang: 5531 utterances
in the full corpus) or ``all`` (every consensus label but ``xxx``, no
agreement). Protocols:

- ``session`` (5 folds, segment_triplet and w2v2_info_recovery: "for testing
  the k-th session, we trained the model on the remaining sessions"): fold k
  tests both speakers of session k; the papers name no validation set, so
  session k+1 (session 1 for fold 5) validates and the other three train;
- ``loso`` (5 folds, flea_hubert): fold k holds out session k; one of its
  speakers is validation, the other test (``valid_gender`` picks which);
- ``lo2so`` (10 folds, supcon_knn; SpeechBrain's speaker-independent split):
  fold k tests speaker k (``Ses01F`` = 1, ``Ses01M`` = 2, ... ``Ses05M`` = 10),
  the other speaker of that session is validation;
- ``random`` (SpeechBrain's default 80/10/10 split of utterances):
  **speaker-dependent**, for debugging only; never compare its numbers with
  the speaker-independent protocols.

Command line::

    python -m data_prep.iemocap /data/IEMOCAP_full_release results/prep --protocol loso --fold 1
    python -m data_prep.iemocap /data/IEMOCAP_full_release results/prep_session1 --protocol session --fold 1
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from data_prep.checks import check_labels
from data_prep.errors import PreparationError
from data_prep.preparation import Item, Preparation, parse_prepare_args, prepare_parser
from data_prep.splits import check_fold

logger = logging.getLogger(__name__)

ALL_LABELS = ("ang", "hap", "exc", "sad", "fru", "fea", "sur", "neu", "dis", "oth", "xxx")
FOUR_CLASS = {"neu": "neu", "hap": "hap", "exc": "hap", "sad": "sad", "ang": "ang"}
FOUR_CLASS_COUNTS = {"ang": 1103, "hap": 1636, "neu": 1708, "sad": 1084}  # 5531, the papers' set
SESSIONS = (1, 2, 3, 4, 5)
PROTOCOLS = {"session": 5, "loso": 5, "lo2so": 10, "random": 1}
SUMMARY_LINE = re.compile(
    r"^\[(\d+(?:\.\d+)?) - (\d+(?:\.\d+)?)\]\t(\S+)\t(\S+)\t\[([-\d.]+), ([-\d.]+), ([-\d.]+)\]\s*$"
)
TRANSCRIPT_LINE = re.compile(r"^(Ses\d\d[FM]_\S+_[FMX]\d+)\s*\[[\d.]+-[\d.]+\]:\s*(.*)$")
UTT_ID = re.compile(r"^Ses(\d\d)[FM]_.+_([FM])\d+$")


def speaker_of(utt_id: str) -> str:
    """Speaker of an utterance: session + gender letter of the id's last token.

    Example
    -------
    >>> speaker_of("Ses01F_impro01_M003"), speaker_of("Ses04F_script01_1_F012")
    ('Ses01M', 'Ses04F')
    """
    match = UTT_ID.match(utt_id)
    if match is None:
        raise PreparationError(f"utterance id {utt_id!r} does not look like IEMOCAP's Ses0nX_<dialog>_[FM]nnn")
    return f"Ses{match.group(1)}{match.group(2)}"


def speaker_number(speaker: str) -> int:
    """SpeechBrain's speaker numbering: ``Ses01F`` = 1, ``Ses01M`` = 2, ..., ``Ses05M`` = 10.

    Example
    -------
    >>> [speaker_number(s) for s in ("Ses01F", "Ses01M", "Ses05M")]
    [1, 2, 10]
    """
    return 2 * (int(speaker[3:5]) - 1) + (1 if speaker[5] == "F" else 2)


def fold_speakers(protocol: str, fold: int, valid_gender: str = "F") -> dict[str, list[str]]:
    """Validation and test speakers of a speaker-independent fold.

    Example
    -------
    >>> fold_speakers("loso", 3)
    {'valid': ['Ses03F'], 'test': ['Ses03M']}
    >>> fold_speakers("lo2so", 4)
    {'valid': ['Ses02F'], 'test': ['Ses02M']}
    >>> fold_speakers("session", 5)
    {'valid': ['Ses01F', 'Ses01M'], 'test': ['Ses05F', 'Ses05M']}
    """
    check_fold(fold, PROTOCOLS[protocol], protocol)
    if protocol == "session":
        valid = fold % len(SESSIONS) + 1  # the next session, cyclically
        return {"valid": [f"Ses{valid:02d}{g}" for g in "FM"], "test": [f"Ses{fold:02d}{g}" for g in "FM"]}
    if protocol == "loso":
        if valid_gender not in ("F", "M"):
            raise PreparationError(f"valid_gender must be 'F' or 'M', got {valid_gender!r}")
        other = "M" if valid_gender == "F" else "F"
        return {"valid": [f"Ses{fold:02d}{valid_gender}"], "test": [f"Ses{fold:02d}{other}"]}
    session, gender = (fold + 1) // 2, "F" if fold % 2 else "M"
    other = "M" if gender == "F" else "F"
    return {"valid": [f"Ses{session:02d}{other}"], "test": [f"Ses{session:02d}{gender}"]}


def read_emo_evaluation(path: Path) -> list[tuple[str, str, float, float, tuple[float, float, float]]]:
    """Summary lines of one EmoEvaluation file: ``(utt_id, label, start, end, (val, act, dom))``."""
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = SUMMARY_LINE.match(line)
        if match:
            start, end, utt, label, v, a, d = match.groups()
            rows.append((utt, label, float(start), float(end), (float(v), float(a), float(d))))
    return rows


def read_transcripts(path: Path) -> dict[str, str]:
    """Utterance id -> text from one transcription file (missing file: empty)."""
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = TRANSCRIPT_LINE.match(line.strip())
        if match:
            out[match.group(1)] = match.group(2).strip()
    return out


def prepare_iemocap(
    data_folder: str | Path,
    save_folder: str | Path,
    protocol: str = "loso",
    fold: int = 1,
    labels: str = "4class",
    valid_gender: str = "F",
    random_split: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 1234,
    allow_subset: bool = False,
    skip_bad_files: bool = False,
) -> dict[str, str]:
    """Write ``train.json``, ``valid.json`` and ``test.json`` for one IEMOCAP fold.

    Each entry holds ``wav`` (with ``{data_root}``), ``duration``, ``speaker``
    (``Ses01F``), ``gender``, ``session``, ``dialog``, ``emo``, the original
    ``emo_original`` label, ``valence``, ``activation``, ``dominance`` and
    ``transcript``.

    Arguments
    ---------
    data_folder : str or Path
        ``IEMOCAP_full_release`` (holding ``Session1`` .. ``Session5``).
    save_folder : str or Path
        Output folder (one per fold: the manifests are the fold's).
    protocol : str
        ``session`` (5 folds: test session k, validation session k+1),
        ``loso`` (5 folds), ``lo2so`` (10 folds) or ``random`` (speaker-dependent).
    fold : int
        1-based fold number.
    labels : str
        ``4class`` (exc merged into hap) or ``all`` (every label but ``xxx``).
    valid_gender : str
        ``loso``: which speaker of the held-out session validates (``F`` or ``M``).
    random_split : sequence of float
        ``random``: train/valid/test fractions.
    seed : int
        ``random``: shuffling seed.
    allow_subset : bool
        Accept a corpus whose four-class counts differ from 5531 (a sample, a synthetic corpus).
    skip_bad_files : bool
        Drop (and list) unreadable or empty audio instead of failing.

    Returns
    -------
    dict
        Split name -> manifest path.
    """
    if protocol not in PROTOCOLS:
        raise PreparationError(f"unknown IEMOCAP protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if labels not in ("4class", "all"):
        raise PreparationError(f"labels must be '4class' or 'all', got {labels!r}")
    check_fold(fold, PROTOCOLS[protocol], protocol)
    options = {
        "protocol": protocol,
        "fold": int(fold),
        "labels": labels,
        "valid_gender": valid_gender if protocol == "loso" else None,
        "random_split": list(random_split) if protocol == "random" else None,
        "seed": seed if protocol == "random" else None,
        "allow_subset": allow_subset,
        "skip_bad_files": skip_bad_files,
    }
    label_files = sorted(Path(data_folder).glob("Session*/dialog/*/*.txt"))
    prep = Preparation(
        "IEMOCAP",
        data_folder,
        save_folder,
        options,
        ("train", "valid", "test"),
        "Session1 ... Session5 inside",
        label_files,
    )
    if prep.done():
        return prep.outputs
    data_folder = Path(data_folder)
    sessions = [n for n in SESSIONS if (data_folder / f"Session{n}").is_dir()]
    if not sessions:
        raise PreparationError(
            f"{data_folder}: no Session1 ... Session5 folders; point data_folder at IEMOCAP_full_release"
        )
    if len(sessions) < len(SESSIONS) and not allow_subset:
        raise PreparationError(
            f"{data_folder}: found sessions {sessions}, expected 1-5; pass allow_subset=True to prepare fewer on purpose"
        )

    found = []
    for n in sessions:
        evaluation = sorted((data_folder / f"Session{n}" / "dialog" / "EmoEvaluation").glob("*.txt"))
        if not evaluation:
            raise PreparationError(
                f"{data_folder / f'Session{n}' / 'dialog' / 'EmoEvaluation'}: no EmoEvaluation .txt files"
            )
        for emo_file in evaluation:
            rows = read_emo_evaluation(emo_file)
            check_labels((r[1] for r in rows), ALL_LABELS, str(emo_file), "emotion")
            transcripts = read_transcripts(data_folder / f"Session{n}" / "dialog" / "transcriptions" / emo_file.name)
            for utt, label, _start, _end, vad in rows:
                found.append((n, utt, label, vad, transcripts.get(utt, ""), emo_file))

    label_map = FOUR_CLASS if labels == "4class" else {lab: lab for lab in ALL_LABELS if lab != "xxx"}
    kept = [row for row in found if row[2] in label_map]
    counts = Counter(label_map[row[2]] for row in kept)
    if labels == "4class" and not allow_subset and dict(counts) != FOUR_CLASS_COUNTS:
        raise PreparationError(
            f"{data_folder}: four-class counts {dict(sorted(counts.items()))} differ from the corpus's {FOUR_CLASS_COUNTS} (5531 utterances); "
            "pass allow_subset=True to prepare a partial corpus on purpose"
        )

    items = []
    for n, utt, label, vad, transcript, emo_file in kept:
        speaker = speaker_of(utt)
        if int(speaker[3:5]) != n:
            raise PreparationError(
                f"{emo_file}: utterance {utt} names session {speaker[3:5]} but is listed in Session{n}"
            )
        dialog = utt.rsplit("_", 1)[0]
        wav = data_folder / f"Session{n}" / "sentences" / "wav" / dialog / f"{utt}.wav"
        fields = {
            "gender": speaker[5],
            "session": n,
            "dialog": dialog,
            "emo": label_map[label],
            "emo_original": label,
            "valence": vad[0],
            "activation": vad[1],
            "dominance": vad[2],
            "transcript": transcript,
        }
        items.append(Item(utt, wav, speaker, fields))

    if protocol == "random":
        rng = random.Random(seed)
        shuffled = sorted(items, key=lambda i: i.utt_id)
        rng.shuffle(shuffled)
        n_train = int(round(random_split[0] * len(shuffled)))
        n_valid = int(round(random_split[1] * len(shuffled)))
        splits = {
            "train": shuffled[:n_train],
            "valid": shuffled[n_train : n_train + n_valid],
            "test": shuffled[n_train + n_valid :],
        }
        return prep.write(
            splits,
            "emo",
            skip_bad_files,
            speaker_independent=False,
            extra_summary={"protocol": "random (speaker-dependent)"},
        )

    held_out = fold_speakers(protocol, fold, valid_gender)
    role = {spk: split for split, spks in held_out.items() for spk in spks}
    splits = {"train": [], "valid": [], "test": []}
    for item in items:
        splits[role.get(item.speaker, "train")].append(item)
    return prep.write(
        splits, "emo", skip_bad_files, extra_summary={"protocol": protocol, "fold": fold, "held_out": held_out}
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``python -m data_prep.iemocap DATA_FOLDER SAVE_FOLDER [--protocol --fold ...]``."""
    parser = prepare_parser(__doc__)
    parser.add_argument("--protocol", default="loso", choices=sorted(PROTOCOLS))
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--labels", default="4class", choices=["4class", "all"])
    parser.add_argument("--valid-gender", default="F", choices=["F", "M"])
    args = parse_prepare_args(parser, argv)
    prepare_iemocap(
        args.data_folder,
        args.save_folder,
        protocol=args.protocol,
        fold=args.fold,
        labels=args.labels,
        valid_gender=args.valid_gender,
        allow_subset=args.allow_subset,
        skip_bad_files=args.skip_bad_files,
    )


if __name__ == "__main__":
    main()
