"""A synthetic corpus of your own: German labels, a user's folder layout and a ``listing.csv``.

What a new user brings to ``recipes/Custom``: recordings sorted by speaker
(``aufnahmen/<speaker>/<speaker>_<nn>.wav`` at 48 kHz) and a listing
``path,label,speaker`` whose labels are German words, ``Ärger`` beside
``Wut`` (to be merged by a label map) and ``Ekel`` (to be dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from data_prep.synthetic_speech import Utterance, make_speaker
from speechbrain_ext.utils.fileio import atomic_write_text

GERMAN_SENTENCES = [
    "Der Zug fährt morgen früh um acht Uhr ab",
    "Wir haben den ganzen Nachmittag im Garten gearbeitet",
    "Die Kinder spielen draußen im Schnee",
    "Ich habe den Brief noch einmal gelesen",
]
#: Listing label -> the synthetic emotion that speaks it.
GERMAN_LABELS = {
    "neutral": "neutral",
    "Freude": "happy",
    "Trauer": "sad",
    "Wut": "angry",
    "Ärger": "angry",
    "Ekel": "disgust",
}


def custom_layout(
    speakers: int = 6, seed: int = 0, utterances_per_label: int = 1, **_
) -> tuple[list[Utterance], Callable[[Path], None]]:
    """``aufnahmen/<speaker>/<speaker>_<nn>.wav`` (48 kHz) and ``listing.csv`` (``path,label,speaker``, German labels).

    Speakers are first names (``Anna``, ``Bernd``, ...), alternately female and male.
    """
    names = ["Anna", "Bernd", "Clara", "Dieter", "Eva", "Frank", "Greta", "Hans", "Ilse", "Jörg", "Karin", "Lukas"]
    items = []
    for k in range(speakers):
        name = names[k % len(names)] + (str(k // len(names) + 1) if k >= len(names) else "")
        spk = make_speaker(name, "de", male=k % 2 == 1, index=k, seed=seed)
        n = 0
        for label, emotion in GERMAN_LABELS.items():
            for i in range(utterances_per_label):
                n += 1
                text = GERMAN_SENTENCES[(i + k + n) % len(GERMAN_SENTENCES)]
                path = f"aufnahmen/{name}/{name}_{n:02d}.wav"
                items.append(Utterance(path, text, spk, emotion, False, 48000, meta={"speaker": name, "label": label}))

    def write_labels(root: Path) -> None:
        rows = ["path,label,speaker"] + [f"{u.relpath},{u.meta['label']},{u.meta['speaker']}" for u in items]
        atomic_write_text(root / "listing.csv", "\n".join(rows) + "\n")

    return items, write_labels
