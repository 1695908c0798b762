"""Synthetic speakers and utterances rendered by ``espeak-ng`` and ``sox``, with an emotion's prosody.

Each speaker is a distinct espeak-ng voice variant with its own base pitch
and speaking rate; each emotion has its own prosody (pitch, pitch range,
rate, loudness) and voice quality (a ``sox`` effect), jittered per utterance.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


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
    style: Style | None = None  # its own prosody and literal sox effects, instead of the emotion's


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
    style = utt.style or STYLES[utt.emotion]
    factor = STRONG_FACTOR if utt.strong else 1.0

    def jitter(value: float, neutral: float, spread: float) -> float:
        return neutral + (value - neutral) * factor * rng.uniform(1 - spread, 1 + spread) + rng.gauss(0, 3)

    pitch = jitter(style.pitch, 0, 0.25)
    pitch_range = max(10.0, jitter(style.pitch_range, 100, 0.25))
    rate = max(40.0, jitter(style.rate, 100, 0.15))
    volume = max(20.0, jitter(style.volume, 100, 0.2))
    ssml = f'<speak><prosody pitch="{pitch:+.0f}%" range="{pitch_range:.0f}%" rate="{rate:.0f}%" volume="{volume:.0f}%">{utt.text}</prosody></speak>'
    effects: list[str] = []
    for template in style.effects:
        strength = EFFECT_STRENGTH.get(utt.emotion, 1.0) * rng.uniform(
            0.7, 1.3
        )  # an utterance's own style gives literal effects
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
            [
                "espeak-ng",
                "-m",
                "-v",
                voice,
                "-p",
                str(utt.speaker.base_pitch),
                "-s",
                str(utt.speaker.base_speed),
                "-w",
                raw,
                ssml,
            ],
            check=True,
            capture_output=True,
        )
        # -G guards against clipping from loud styles, -D turns off (random) dither so a
        # seed gives the same bytes; 16-bit PCM at the corpus's rate
        subprocess.run(
            [
                "sox",
                "-G",
                "-D",
                raw,
                "-r",
                str(utt.sample_rate),
                "-b",
                "16",
                "-c",
                "1",
                out,
                *effects,
                "rate",
                "-h",
                str(utt.sample_rate),
            ],
            check=True,
            capture_output=True,
        )
        tmp_target = target.with_suffix(".tmp.wav")
        shutil.move(out, tmp_target)
        os.replace(tmp_target, target)
