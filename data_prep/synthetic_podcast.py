"""Synthetic MSP-Podcast in the release layout: ``Audios/*.wav`` and ``Labels/labels_consensus.csv``.

Every segment gets a point of the arousal x valence plane near its emotion
class's centre (:data:`PODCAST_CENTRES`); the point drives the prosody
(pitch and pitch range with valence, rate and loudness with arousal:
:func:`data_prep.synthetic_challenge.hume_style`), so a small model can learn
the dimensions on held-out speakers. Dominance follows arousal, with noise.
Ratings are written on the release's 1-7 scale.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from data_prep.synthetic_acted import ENGLISH_SENTENCES
from data_prep.synthetic_challenge import hume_style
from data_prep.synthetic_speech import Utterance, make_speaker
from speechbrain_ext.utils.fileio import atomic_write_text

# Class -> (arousal, valence) centre in [0, 1]; X (no agreement) and O (other) anywhere.
PODCAST_CENTRES = {
    "A": (0.9, 0.1),
    "S": (0.1, 0.15),
    "H": (0.75, 0.9),
    "U": (0.95, 0.6),
    "F": (0.65, 0.3),
    "D": (0.45, 0.05),
    "C": (0.3, 0.4),
    "N": (0.35, 0.65),
}
PODCAST_CYCLE = [*PODCAST_CENTRES, "X", *PODCAST_CENTRES, "O"]  # every class, with a no-agreement and an other row
HEADER = "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"


def podcast_partition(index: int, speakers: int) -> str:
    """Split_Set of the ``index``-th synthetic speaker: the last five are Development x2, Test1 x2, Test2.

    Example
    -------
    >>> [podcast_partition(k, 8) for k in range(8)]
    ['Train', 'Train', 'Train', 'Development', 'Development', 'Test1', 'Test1', 'Test2']
    """
    tail = ["Development", "Development", "Test1", "Test1", "Test2"]
    offset = index - (speakers - len(tail))
    return tail[offset] if offset >= 0 else "Train"


def msp_podcast_layout(
    speakers: int = 10, seed: int = 0, files_per_speaker: int = 10, unknown_speaker_files: int = 3, **_
) -> tuple[list[Utterance], Callable[[Path], None]]:
    """MSP-Podcast: ``Audios/MSP-PODCAST_<podcast>_<segment>.wav`` (16 kHz) and ``Labels/labels_consensus.csv``.

    Speakers are numeric ``SpkrID``s split Train / Development / Test1 /
    Test2 (:func:`podcast_partition`); ``unknown_speaker_files`` training
    segments have ``SpkrID`` ``Unknown``, as in the release. Labels hold
    every class of :data:`PODCAST_CENTRES` plus X and O rows.
    """
    if speakers < 6:
        raise ValueError(
            f"MSP-Podcast needs 6 or more speakers (1+ train, 2 development, 2 Test1, 1 Test2), got {speakers}"
        )
    items = []
    for k in range(speakers):
        male = k % 2 == 0
        speaker_id = str(100 + k)
        spk = make_speaker(f"podcast{k:03d}", "en-us", male=male, index=k, seed=seed)
        rng = random.Random(f"{seed}-podcast-{k}")
        count = files_per_speaker + (unknown_speaker_files if k == 0 else 0)
        for i in range(count):
            unknown = k == 0 and i >= files_per_speaker  # a voice the release could not name
            code = PODCAST_CYCLE[(i + 3 * k) % len(PODCAST_CYCLE)]
            if code in PODCAST_CENTRES:
                centre = PODCAST_CENTRES[code]
                arousal, valence = (min(1.0, max(0.0, c + rng.uniform(-0.15, 0.15))) for c in centre)
            else:
                arousal, valence = rng.random(), rng.random()
            dominance = min(1.0, max(0.0, 0.7 * arousal + 0.3 * rng.random()))
            name = f"MSP-PODCAST_{1000 + k:04d}_{i + 1:04d}.wav"
            meta = {
                "code": code,
                "ratings": [round(1.0 + 6.0 * v, 4) for v in (arousal, valence, dominance)],
                "speaker": "Unknown" if unknown else speaker_id,
                "gender": "Unknown" if unknown else ("Male" if male else "Female"),
                "partition": podcast_partition(k, speakers),
            }
            text = ENGLISH_SENTENCES[rng.randrange(len(ENGLISH_SENTENCES))]
            items.append(
                Utterance(
                    f"Audios/{name}", text, spk, code, False, 16000, meta=meta, style=hume_style(arousal, valence)
                )
            )

    def write_labels(root: Path) -> None:
        rows = [HEADER]
        for u in items:
            act, val, dom = u.meta["ratings"]
            rows.append(
                f"{Path(u.relpath).name},{u.meta['code']},{act},{val},{dom},{u.meta['speaker']},{u.meta['gender']},{u.meta['partition']}"
            )
        atomic_write_text(root / "Labels" / "labels_consensus.csv", "\n".join(rows) + "\n")

    return items, write_labels
