"""Synthetic corpora in the real corpora's layouts, spoken by ``espeak-ng``.

No emotional speech corpus can be shipped or downloaded here, so tests and the
demo use look-alikes: the same folder trees, file names, sample rates and label
files as the real corpus, with sentences read in the corpus's language. Each
speaker is a distinct espeak-ng voice variant with its own base pitch and
speaking rate; each emotion has its own prosody (pitch, pitch range, rate,
loudness) and voice quality (a ``sox`` effect), jittered per utterance, so a
small model can learn it on held-out speakers without it being trivial.

Usage::

    python -m data_prep.synthetic --corpus RAVDESS --out /tmp/RAVDESS --speakers 12

Adding a corpus means adding a layout function to :data:`LAYOUTS` that lists
its utterances (path, text, speaker, emotion) and writes its label files.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm


@dataclass(frozen=True)
class Style:
    """How an emotion changes a speaker's neutral voice.

    pitch: shift in percent; pitch_range, rate, volume: percent of neutral;
    effects: a ``sox`` effect chain with ``{k}`` scaled by intensity and jitter.
    """

    pitch: float
    pitch_range: float
    rate: float
    volume: float
    effects: tuple[str, ...] = ()


STYLES: dict[str, Style] = {
    "neutral": Style(0, 100, 100, 100),
    "calm": Style(-6, 70, 90, 85, ("lowpass {k:.0f}",)),
    "happy": Style(25, 170, 112, 115, ("treble {k:.1f}",)),
    "sad": Style(-15, 45, 75, 70, ("lowpass {k:.0f}",)),
    "angry": Style(8, 150, 118, 150, ("overdrive {k:.1f}",)),
    "fearful": Style(35, 80, 125, 90, ("tremolo 7 {k:.0f}",)),
    "disgust": Style(-10, 120, 80, 100, ("bass {k:.1f}",)),
    "surprised": Style(45, 220, 105, 120, ("highpass {k:.0f}",)),
    "affection": Style(5, 130, 85, 80, ("lowpass {k:.0f}",)),
}
# The ``{k}`` of each effect at normal intensity; strong intensity pushes it further.
EFFECT_STRENGTH = {
    "calm": 5000.0,
    "happy": 4.0,
    "sad": 2200.0,
    "angry": 8.0,
    "fearful": 45.0,
    "disgust": 7.0,
    "surprised": 350.0,
    "affection": 3500.0,
}
# Strong intensity scales the distance from neutral by this factor.
STRONG_FACTOR = 1.6

MALE_VOICES = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Andy", "Denis", "Lee", "travis"]
FEMALE_VOICES = ["f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "belinda", "linda", "steph"]


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: an espeak-ng voice and its habitual pitch and rate."""

    name: str
    language: str
    variant: str
    base_pitch: int
    base_speed: int


@dataclass(frozen=True)
class Utterance:
    """One file to synthesise, relative to the corpus root."""

    relpath: str
    text: str
    speaker: Speaker
    emotion: str
    strong: bool = False
    sample_rate: int = 16000
    meta: dict = field(default_factory=dict, compare=False, hash=False)


def make_speaker(name: str, language: str, male: bool, index: int, seed: int) -> Speaker:
    """A distinct voice: a variant from the gender's list plus a jittered base pitch/rate.

    Example
    -------
    >>> make_speaker("Actor_01", "en-us", True, 0, 1).variant
    'm1'
    """
    voices = MALE_VOICES if male else FEMALE_VOICES
    rng = random.Random(f"{seed}-{name}")
    return Speaker(
        name=name,
        language=language,
        variant=voices[index % len(voices)],
        base_pitch=rng.randint(35, 65),
        base_speed=rng.randint(150, 190),
    )


def ssml_and_effects(utt: Utterance, rng: random.Random) -> tuple[str, list[str]]:
    """The espeak-ng SSML text and the sox effect chain for one utterance.

    Example
    -------
    >>> spk = make_speaker("s", "en-us", True, 0, 0)
    >>> ssml, effects = ssml_and_effects(Utterance("a.wav", "Hi", spk, "angry"), random.Random(0))
    >>> ssml.startswith("<speak><prosody pitch=") and effects[0] == "overdrive"
    True
    """
    style = STYLES[utt.emotion]
    factor = STRONG_FACTOR if utt.strong else 1.0

    def jitter(value: float, neutral: float, spread: float) -> float:
        return neutral + (value - neutral) * factor * rng.uniform(1 - spread, 1 + spread) + rng.gauss(0, 3)

    pitch = jitter(style.pitch, 0, 0.25)
    pitch_range = max(10.0, jitter(style.pitch_range, 100, 0.25))
    rate = max(40.0, jitter(style.rate, 100, 0.15))
    volume = max(20.0, jitter(style.volume, 100, 0.2))
    ssml = (
        f'<speak><prosody pitch="{pitch:+.0f}%" range="{pitch_range:.0f}%" '
        f'rate="{rate:.0f}%" volume="{volume:.0f}%">{utt.text}</prosody></speak>'
    )
    effects: list[str] = []
    for template in style.effects:
        strength = EFFECT_STRENGTH[utt.emotion] * rng.uniform(0.7, 1.3)
        if utt.strong:
            # filters go lower/higher, gains go up: push away from a neutral setting
            strength = strength / 1.3 if template.startswith("lowpass") else strength * 1.3
        effects += template.format(k=strength).split()
    return ssml, effects


def synthesise(utt: Utterance, root: Path, seed: int) -> None:
    """Write one utterance to ``root/utt.relpath`` (atomically; skipped when present)."""
    target = root / utt.relpath
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}-{utt.relpath}")
    ssml, effects = ssml_and_effects(utt, rng)
    voice = f"{utt.speaker.language}+{utt.speaker.variant}"
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = os.path.join(tmp, "raw.wav"), os.path.join(tmp, "out.wav")
        subprocess.run(
            ["espeak-ng", "-m", "-v", voice, "-p", str(utt.speaker.base_pitch), "-s", str(utt.speaker.base_speed), "-w", raw, ssml],
            check=True,
            capture_output=True,
        )
        # -G guards against clipping from loud styles, -D turns off (random) dither so a
        # seed gives the same bytes; 16-bit PCM at the corpus's rate
        subprocess.run(
            ["sox", "-G", "-D", raw, "-r", str(utt.sample_rate), "-b", "16", "-c", "1", out, *effects, "rate", "-h", str(utt.sample_rate)],
            check=True,
            capture_output=True,
        )
        tmp_target = target.with_suffix(".tmp.wav")
        shutil.move(out, tmp_target)
        os.replace(tmp_target, target)


# ---------------------------------------------------------------- layouts
RAVDESS_STATEMENTS = ["Kids are talking by the door", "Dogs are sitting by the door"]
RAVDESS_CODES = {
    "neutral": "01",
    "calm": "02",
    "happy": "03",
    "sad": "04",
    "angry": "05",
    "fearful": "06",
    "disgust": "07",
    "surprised": "08",
}
RAVDESS_SONG_EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fearful"]


def ravdess_actor_ids(speakers: int) -> list[int]:
    """Actor numbers for ``speakers`` actors, always keeping the validation and test actors 21-24.

    Example
    -------
    >>> ravdess_actor_ids(8)
    [1, 2, 3, 4, 21, 22, 23, 24]
    """
    if speakers >= 24:
        return list(range(1, 25))
    if speakers < 5:
        raise ValueError("RAVDESS needs at least 5 speakers: one for training plus actors 21-24")
    return list(range(1, speakers - 3)) + [21, 22, 23, 24]


def ravdess_layout(speakers: int, seed: int, repetitions: int = 2, statements: int = 2, emotions: Sequence[str] | None = None, song: bool = False, **_) -> tuple[list[Utterance], Callable[[Path], None]]:
    """RAVDESS: ``Actor_NN/03-01-EE-II-SS-RR-NN.wav`` at 48 kHz, no label files."""
    emotions = list(emotions or RAVDESS_CODES)
    items = []
    for actor in ravdess_actor_ids(speakers):
        spk = make_speaker(f"Actor_{actor:02d}", "en-us", male=actor % 2 == 1, index=(actor - 1) // 2, seed=seed)
        for emotion in emotions:
            for strong in (False, True) if emotion != "neutral" else (False,):
                for statement in range(1, statements + 1):
                    for rep in range(1, repetitions + 1):
                        name = f"03-01-{RAVDESS_CODES[emotion]}-{'02' if strong else '01'}-{statement:02d}-{rep:02d}-{actor:02d}.wav"
                        items.append(Utterance(f"Actor_{actor:02d}/{name}", RAVDESS_STATEMENTS[statement - 1], spk, emotion, strong, 48000))
            if song and emotion in RAVDESS_SONG_EMOTIONS:
                name = f"03-02-{RAVDESS_CODES[emotion]}-01-01-01-{actor:02d}.wav"
                items.append(Utterance(f"Actor_{actor:02d}/{name}", RAVDESS_STATEMENTS[0], spk, emotion, False, 48000))
    return items, lambda root: None


LAYOUTS: dict[str, Callable[..., tuple[list[Utterance], Callable[[Path], None]]]] = {
    "RAVDESS": ravdess_layout,
}


def generate_corpus(corpus: str, out: str | Path, speakers: int = 24, seed: int = 0, workers: int | None = None, progress: bool = True, **layout_options) -> Path:
    """Synthesise ``corpus`` into ``out`` in its real layout; existing files are kept.

    Arguments
    ---------
    corpus : str
        A key of :data:`LAYOUTS` (``RAVDESS``).
    out : str or Path
        Corpus root to write.
    speakers : int
        Number of speakers (the layout decides which ids they get).
    seed : int
        Seeds voices and per-utterance jitter; same seed, same corpus.
    workers : int, optional
        Parallel synthesis processes (default: CPU count).
    progress : bool
        Show a progress bar.
    **layout_options
        Passed to the layout (RAVDESS: ``repetitions``, ``statements``,
        ``emotions``, ``song``).

    Returns
    -------
    Path
        The corpus root.
    """
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: install it (apt-get install -y espeak-ng sox, or run `make install`)")
    if corpus not in LAYOUTS:
        raise ValueError(f"unknown corpus {corpus!r}; known: {', '.join(LAYOUTS)}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    items, write_labels = LAYOUTS[corpus](speakers=speakers, seed=seed, **layout_options)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        jobs = pool.map(lambda u: synthesise(u, root, seed), items)
        for _ in tqdm(jobs, total=len(items), desc=f"synthesising {corpus}", disable=not progress, unit="utt"):
            pass
    write_labels(root)
    return root


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, choices=sorted(LAYOUTS))
    parser.add_argument("--out", required=True)
    parser.add_argument("--speakers", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repetitions", type=int, default=2, help="RAVDESS: repetitions per sentence (1 or 2)")
    parser.add_argument("--statements", type=int, default=2, help="RAVDESS: statements (1 or 2)")
    parser.add_argument("--song", action="store_true", help="RAVDESS: also write a few song files (03-02-*)")
    args = parser.parse_args(argv)
    root = generate_corpus(args.corpus, args.out, speakers=args.speakers, seed=args.seed, repetitions=args.repetitions, statements=args.statements, song=args.song)
    print(f"wrote {args.corpus} to {root}")


if __name__ == "__main__":
    main()
