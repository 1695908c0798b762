"""Split helpers: fold numbers, leave-one-speaker-out, speaker k-fold, the speaker-leakage check and the per-split summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from data_prep.errors import PreparationError, SpeakerLeakageError


def check_fold(fold: int, n_folds: int, protocol: str) -> None:
    """Raise unless ``1 <= fold <= n_folds``.

    Example
    -------
    >>> check_fold(6, 5, "loso")
    Traceback (most recent call last):
    ...
    data_prep.errors.PreparationError: protocol 'loso' has folds 1..5, not 6
    """
    if not 1 <= int(fold) <= n_folds:
        raise PreparationError(f"protocol {protocol!r} has folds 1..{n_folds}, not {fold}")


def leave_one_speaker_out(speakers: Sequence[str], fold: int, valid_offset: int = 1) -> dict[str, list[str]]:
    """Fold ``fold`` (1-based) of leave-one-speaker-out with a validation speaker.

    Speakers are sorted; the test speaker is the ``fold``-th, the validation
    speaker the one ``valid_offset`` places after it (cyclically).

    Example
    -------
    >>> leave_one_speaker_out(["s3", "s1", "s2"], 3)
    {'train': ['s2'], 'valid': ['s1'], 'test': ['s3']}
    """
    ordered = sorted(speakers)
    check_fold(fold, len(ordered), "leave-one-speaker-out")
    test = ordered[fold - 1]
    valid = ordered[(fold - 1 + valid_offset) % len(ordered)]
    if valid == test:
        raise PreparationError("leave-one-speaker-out needs at least two speakers")
    return {"train": [s for s in ordered if s not in (test, valid)], "valid": [valid], "test": [test]}


def speaker_kfold(
    labels: Sequence[str], speakers: Sequence[str], n_folds: int, fold: int, seed: int = 1986
) -> dict[str, list[str]]:
    """Speakers of each split in fold ``fold`` (1-based) of a speaker-independent, stratified k-fold.

    ``StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)`` over the
    utterances (``labels[i]`` spoken by ``speakers[i]``) gives the test
    speakers. Validation comes from the training speakers only: they are split
    again the same way into ``min(n_folds, their number)`` folds, and the first
    fold validates.

    Example
    -------
    >>> speakers = [f"s{i}" for i in range(6) for _ in "ab"]
    >>> roles = speaker_kfold(list("ab" * 6), speakers, 3, 1, seed=0)
    >>> sorted(sum(roles.values(), [])) == sorted(set(speakers)), len(roles["test"])
    (True, 2)
    """
    from sklearn.model_selection import StratifiedGroupKFold

    check_fold(fold, n_folds, "kfold")
    pairs = sorted(zip(speakers, labels))  # the same folds whatever the utterances' order
    if n_folds < 2 or len({s for s, _ in pairs}) < n_folds:
        raise PreparationError(
            f"kfold needs 2 or more folds and at least as many speakers: {n_folds} folds, {len({s for s, _ in pairs})} speakers"
        )

    def split(subset: list[tuple[str, str]], n_splits: int, k: int) -> tuple[list[str], list[str]]:
        groups, y = [s for s, _ in subset], [c for _, c in subset]
        rest, held = list(StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(y, y, groups))[k - 1]
        return sorted({groups[i] for i in rest}), sorted({groups[i] for i in held})

    train_speakers, test = split(pairs, n_folds, fold)
    if len(train_speakers) < 2:
        raise PreparationError(
            f"kfold fold {fold} of {n_folds} leaves {train_speakers} to train and validate on; use fewer folds"
        )
    train, valid = split([p for p in pairs if p[0] in set(train_speakers)], min(n_folds, len(train_speakers)), 1)
    return {"train": train, "valid": valid, "test": test}


def check_speaker_disjoint(splits: Mapping[str, Mapping[str, Mapping[str, Any]]], speaker_key: str = "speaker") -> None:
    """Raise when any speaker appears in two splits (speaker leakage).

    Arguments
    ---------
    splits : mapping
        Split name -> manifest (utterance id -> fields).
    speaker_key : str
        Field holding the speaker id.

    Example
    -------
    >>> check_speaker_disjoint({"train": {"a": {"speaker": "s1"}}, "test": {"b": {"speaker": "s2"}}})
    >>> check_speaker_disjoint({"train": {"a": {"speaker": "s1"}}, "test": {"b": {"speaker": "s1"}}})
    Traceback (most recent call last):
    ...
    data_prep.errors.SpeakerLeakageError: speaker s1 is in splits test, train
    """
    seen: dict[str, set[str]] = {}
    for split, manifest in splits.items():
        for entry in manifest.values():
            seen.setdefault(entry[speaker_key], set()).add(split)
    for speaker, names in sorted(seen.items()):
        if len(names) > 1:
            raise SpeakerLeakageError(f"speaker {speaker} is in splits {', '.join(sorted(names))}")


def summarise_splits(
    splits: Mapping[str, Mapping[str, Mapping[str, Any]]], label_key: str, speaker_key: str = "speaker"
) -> dict:
    """Counts per class and speaker, hours, sample rates and channels, for each split.

    Entries without ``label_key`` (a masked test set) count as ``"(unlabelled)"``.

    Example
    -------
    >>> s = summarise_splits({"train": {"a": {"speaker": "s1", "emo": "sad", "duration": 3600.0}}}, "emo")
    >>> s["train"]["classes"], s["train"]["hours"]
    ({'sad': 1}, 1.0)
    """
    summary = {}
    for split, manifest in splits.items():
        entries = list(manifest.values())
        summary[split] = {
            "utterances": len(entries),
            "hours": round(sum(e["duration"] for e in entries) / 3600, 4),
            "classes": dict(sorted(Counter(str(e.get(label_key, "(unlabelled)")) for e in entries).items())),
            "speakers": dict(sorted(Counter(str(e[speaker_key]) for e in entries).items())),
        }
    return summary


def format_summary(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """Render :func:`summarise_splits` output as a short Markdown table."""
    classes = sorted({c for s in summary.values() for c in s["classes"]})
    header = "| split | utts | speakers | hours | " + " | ".join(classes) + " |"
    lines = [header, "|" + "---|" * (4 + len(classes))]
    for split, s in summary.items():
        counts = " | ".join(str(s["classes"].get(c, 0)) for c in classes)
        lines.append(f"| {split} | {s['utterances']} | {len(s['speakers'])} | {s['hours']:.3f} | {counts} |")
    return "\n".join(lines)
