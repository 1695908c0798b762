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
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from data_prep.synthetic_acted import fesc_layout, iemocap_layout, msp_improv_layout, ravdess_layout
from data_prep.synthetic_challenge import healthcall30_layout, hume_prosody_layout
from data_prep.synthetic_custom import custom_layout
from data_prep.synthetic_podcast import msp_podcast_layout
from data_prep.synthetic_speech import Utterance, synthesise

LAYOUTS: dict[str, Callable[..., tuple[list[Utterance], Callable[[Path], None]]]] = {
    "RAVDESS": ravdess_layout,
    "IEMOCAP": iemocap_layout,
    "FESC": fesc_layout,
    "HealthCall30": healthcall30_layout,
    "Hume-Prosody": hume_prosody_layout,
    "MSP-IMPROV": msp_improv_layout,
    "MSP-Podcast": msp_podcast_layout,
    "Custom": custom_layout,
}


def generate_corpus(
    corpus: str,
    out: str | Path,
    speakers: int = 24,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    **layout_options,
) -> Path:
    """Synthesise ``corpus`` into ``out`` in its real layout; existing files are kept.

    Arguments
    ---------
    corpus : str
        A key of :data:`LAYOUTS` (``RAVDESS``, ``IEMOCAP``, ``FESC``,
        ``HealthCall30``, ``Hume-Prosody``, ``MSP-IMPROV``).
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
        ``emotions``, ``song``; IEMOCAP: ``utterances_per_dialog``,
        ``dialogs_per_session``, ``sessions``; FESC: ``utterances_per_emotion``;
        HealthCall30, Hume-Prosody and MSP-Podcast: ``files_per_speaker``;
        MSP-IMPROV: ``utterances_per_speaker``; Custom: ``utterances_per_label``).

    Returns
    -------
    Path
        The corpus root.
    """
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(
                f"{tool} not found: install it (apt-get install -y espeak-ng sox, or run `make install`)"
            )
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
    parser.add_argument(
        "--per-speaker", type=int, default=None, help="other corpora: utterances per speaker (IEMOCAP: per dialog)"
    )
    args = parser.parse_args(argv)
    sizes = {}
    if args.per_speaker is not None:
        sizes = {
            "IEMOCAP": {"utterances_per_dialog": args.per_speaker},
            "FESC": {"utterances_per_emotion": max(1, args.per_speaker // 5)},
            "HealthCall30": {"files_per_speaker": args.per_speaker},
            "Hume-Prosody": {"files_per_speaker": args.per_speaker},
            "MSP-IMPROV": {"utterances_per_speaker": args.per_speaker},
            "MSP-Podcast": {"files_per_speaker": args.per_speaker},
            "Custom": {"utterances_per_label": max(1, args.per_speaker // 6)},
        }.get(args.corpus, {})
    root = generate_corpus(
        args.corpus,
        args.out,
        speakers=args.speakers,
        seed=args.seed,
        repetitions=args.repetitions,
        statements=args.statements,
        song=args.song,
        **sizes,
    )
    print(f"wrote {args.corpus} to {root}")


if __name__ == "__main__":
    main()
