"""Whisper transcripts written into prepared manifests (compare2023_bayes_fusion's text branch input).

    python -m speechbrain_ext.transcribe prep/hc30/train.json prep/hc30/valid.json prep/hc30/test.json \\
        --data_folder /data/HealthCall30 --language fr

Each manifest entry gets ``transcript_whisper`` (the text),
``transcript_whisper_language`` (the language it was decoded in) and
``transcript_whisper_options`` (model id, language, beam size, chunk length).
Without ``--language`` (or with ``auto``) Whisper identifies each file's
language itself, as openai's ``transcribe`` does: the decoder's scores of the
language tokens after ``<|startoftranscript|>`` on the file's first 30 s, the
best one then put in the prefix of all its chunks. A forced language matters:
Whisper given ``en`` on Spanish speech tends to translate it into English.
Transcripts made elsewhere can be imported instead
(:func:`import_transcripts`, ``--transcripts_file`` with ``filename,transcript``).
The manifest is rewritten atomically after every batch, so a killed run
continues where it stopped; entries transcribed with the same options are not
redone, and changing the model or an option redoes them. Files are batched by
length (longest first) and files longer than ``chunk_seconds`` (Whisper's
30 s window: SpeechBrain's wrapper pads or cuts every input to 30 s) are
transcribed chunk by chunk and the pieces joined.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from speechbrain.utils.checkpoints import mark_as_transfer, register_checkpoint_hooks
from torch import nn
from tqdm import tqdm

from speechbrain_ext.data.audio import TARGET_SAMPLE_RATE, AudioLoadError, load_audio
from speechbrain_ext.data.manifests import fill_data_root, read_manifest
from speechbrain_ext.data.whisper import WHISPER_SECONDS, decode, language_code, load_whisper, make_searcher
from speechbrain_ext.utils.fileio import atomic_write_json

TRANSCRIPT_KEY = "transcript_whisper"
LANGUAGE_KEY = f"{TRANSCRIPT_KEY}_language"


def transcribe_waveforms(
    model,
    searcher,
    waveforms: Sequence[torch.Tensor],
    language: str | None = None,
    batch_size: int = 8,
    chunk_seconds: float = WHISPER_SECONDS,
) -> tuple[list[str], list[str]]:
    """Transcripts and languages of 16 kHz waveforms of any length: chunks of ``chunk_seconds``, batches of ``batch_size`` chunks.

    With ``language`` None a file's language is detected on its first chunk
    (as openai's ``transcribe`` detects on its first 30 s window) and its
    later chunks are decoded in it: all first chunks are decoded before any
    later one, so the language is known when they come.

    Returns
    -------
    texts, languages : list of str
        One per waveform: the chunks' transcripts joined, and the language code.
    """
    pieces = [chunks(wav.reshape(-1).cpu(), chunk_seconds) for wav in waveforms]
    parts: list[list[str]] = [[] for _ in waveforms]
    languages = [language_code(language)] * len(waveforms)
    firsts = [(k, file_pieces[0]) for k, file_pieces in enumerate(pieces)]
    laters = [(k, piece) for k, file_pieces in enumerate(pieces) for piece in file_pieces[1:]]
    for todo in (firsts, laters):
        for first in range(0, len(todo), batch_size):
            group = todo[first : first + batch_size]
            texts, found = decode(model, searcher, [piece for _, piece in group], [languages[k] for k, _ in group])
            for (k, _), text, code in zip(group, texts, found):
                parts[k].append(text)
                languages[k] = code
    return [" ".join(part for part in file_parts if part) for file_parts in parts], languages


def chunks(
    wav: torch.Tensor, chunk_seconds: float = WHISPER_SECONDS, sample_rate: int = TARGET_SAMPLE_RATE
) -> list[torch.Tensor]:
    """Consecutive pieces of at most ``chunk_seconds``.

    Example
    -------
    >>> [len(c) for c in chunks(torch.zeros(70 * 16000))]
    [480000, 480000, 160000]
    """
    size = int(chunk_seconds * sample_rate)
    return [wav[start : start + size] for start in range(0, max(len(wav), 1), size)]


def transcribe_manifests(
    manifests: Sequence[str | os.PathLike],
    data_folder: str | os.PathLike,
    source: str = "openai/whisper-large-v2",
    language: str | None = None,
    beam_size: int = 1,
    batch_size: int = 8,
    chunk_seconds: float = WHISPER_SECONDS,
    save_path: str | None = None,
    device: str = "cpu",
    skip_bad_files: bool = False,
    progress: bool = True,
) -> dict:
    """Write ``transcript_whisper`` into every entry of the manifests; resumable.

    Arguments
    ---------
    manifests : sequence of paths
        Prepared JSON manifests (``{id: {"wav": "{data_root}/...", ...}}``).
    data_folder : path
        What ``{data_root}`` stands for.
    source : str
        Whisper hub id or local folder.
    language : str, optional
        Language code (``fr`` for HealthCall30, a one-language corpus); None or
        ``auto``: detected per file (Hume-Prosody: speakers from the US, South Africa and Venezuela).
    beam_size : int
        1: greedy search.
    batch_size : int
        Chunks decoded at once.
    chunk_seconds : float
        Longer files are cut into pieces of this length (at most 30 s).
    save_path : str, optional
        Download folder of the model.
    device : str
        ``cpu`` or ``cuda``.
    skip_bad_files : bool
        List unreadable or empty files and go on instead of stopping.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``transcribed`` (entries done now), ``kept`` (already done with the
        same options), ``skipped`` (bad files, with the reason).
    """
    if not 0 < chunk_seconds <= WHISPER_SECONDS:
        raise ValueError(f"chunk_seconds must lie in (0, {WHISPER_SECONDS:g}]: Whisper sees 30 s at most")
    language = language_code(language)
    options = {
        "model": source,
        "language": language,
        "beam_size": int(beam_size),
        "chunk_seconds": float(chunk_seconds),
    }
    data, todo = {}, []
    for manifest in map(Path, manifests):
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest}: no such manifest (prepare the corpus first)")
        data[manifest] = read_manifest(manifest)  # as written: the manifest is rewritten with the transcripts
        backfilled = False
        for utt, entry in data[manifest].items():
            if "wav" not in entry:
                raise ValueError(f"{manifest}: entry {utt!r} has no 'wav'")
            same = entry.get(TRANSCRIPT_KEY) is not None and entry.get(f"{TRANSCRIPT_KEY}_options") == options
            if (
                same and language and LANGUAGE_KEY not in entry
            ):  # written before languages were recorded: in the forced one
                entry[LANGUAGE_KEY], backfilled = language, True
            # Such entries of language None were decoded in English (the wrapper's default), not detected: redone.
            if not same or LANGUAGE_KEY not in entry:
                todo.append(
                    (manifest, utt, str(fill_data_root(entry["wav"], data_folder)), float(entry.get("duration", 0.0)))
                )
        if backfilled:
            atomic_write_json(manifest, data[manifest])
    kept = sum(len(entries) for entries in data.values()) - len(todo)
    missing = [path for _, _, path, _ in todo if not Path(path).is_file()]
    if missing and not skip_bad_files:
        raise FileNotFoundError(f"{len(missing)} audio files are missing, e.g. {missing[:3]} (check --data_folder)")
    result = {"transcribed": 0, "kept": kept, "skipped": {}}
    if not todo:
        return result
    model = load_whisper(source, save_path, language, device)
    searcher = make_searcher(model, beam_size)
    todo.sort(key=lambda item: -item[3])  # longest first: similar lengths share a batch
    bar = tqdm(total=len(todo), desc="transcribing", unit="file", disable=not progress)
    for start in range(0, len(todo), batch_size):
        batch, loaded = todo[start : start + batch_size], []
        for manifest, utt, path, _ in batch:
            try:
                wav = load_audio(path)
                if wav.numel() == 0:
                    raise AudioLoadError(f"{path}: the file holds no audio")
            except AudioLoadError as err:
                if not skip_bad_files:
                    raise AudioLoadError(f"{manifest} [{utt}]: {err}") from None
                result["skipped"][path] = str(err)
                continue
            loaded.append((manifest, utt, wav))
        texts, languages = transcribe_waveforms(
            model, searcher, [wav for _, _, wav in loaded], language, batch_size, chunk_seconds
        )
        for (manifest, utt, _), text, code in zip(loaded, texts, languages):
            data[manifest][utt].update({TRANSCRIPT_KEY: text, LANGUAGE_KEY: code, f"{TRANSCRIPT_KEY}_options": options})
        for manifest in {manifest for manifest, _, _ in loaded}:
            atomic_write_json(manifest, data[manifest])
        result["transcribed"] += len(loaded)
        bar.update(len(batch))
    bar.close()
    return result


@register_checkpoint_hooks
class Transcriber(nn.Module):
    """Whisper transcripts of waveforms, made exactly as :func:`transcribe_manifests` makes them for training.

    The interfaces of text and fused models use it to transcribe a file
    before the text model reads it. In an exported model the Whisper model
    comes packed in ``whisper.ckpt`` (:func:`~speechbrain_ext.data.packaging.pack_folder`
    of its Hugging Face folder), installed by :meth:`load_packed` when
    SpeechBrain's ``Pretrainer`` loads the folder; nothing is downloaded.

    Arguments
    ---------
    source : str, optional
        Whisper hub id or local folder, loaded now; None for an exported model (loaded from its packed file).
    language, beam_size, chunk_seconds, batch_size
        The decoding options of :func:`transcribe_manifests` (the training run's ``transcribe:`` block).
    save_path : str, optional
        Download folder for ``source``.
    """

    def __init__(
        self,
        source: str | None = None,
        language: str | None = None,
        beam_size: int = 1,
        chunk_seconds: float = WHISPER_SECONDS,
        batch_size: int = 8,
        save_path: str | None = None,
    ):
        super().__init__()
        self.language, self.beam_size, self.chunk_seconds, self.batch_size = (
            language_code(language),
            int(beam_size),
            float(chunk_seconds),
            int(batch_size),
        )
        self.register_buffer("_device_probe", torch.zeros(0), persistent=False)  # follows .to(device)
        self.whisper, self.searcher = None, None
        if source is not None:
            self._build(source, save_path)

    def _build(self, source: str, save_path: str | None = None) -> None:
        self.whisper = load_whisper(source, save_path, self.language, str(self._device_probe.device))
        self.searcher = make_searcher(self.whisper, self.beam_size)

    @mark_as_transfer
    def load_packed(self, path) -> None:
        """Build Whisper from the folder packed in ``path``; SpeechBrain's ``Pretrainer`` calls it."""
        from speechbrain_ext.data.packaging import unpack

        folder = unpack(path)
        self._build(str(folder), str(folder))

    @torch.no_grad()
    def transcribe(self, waveforms: Sequence[torch.Tensor]) -> list[str]:
        """Transcripts of 16 kHz waveforms of any length (chunks of ``chunk_seconds`` joined)."""
        if self.whisper is None:
            raise RuntimeError("no Whisper model loaded (give a source, or load an exported model)")
        self.whisper.to(self._device_probe.device)
        return transcribe_waveforms(
            self.whisper, self.searcher, waveforms, self.language, self.batch_size, self.chunk_seconds
        )[0]


def import_transcripts(manifests: Sequence[str | os.PathLike], transcripts_file: str | os.PathLike) -> dict:
    """Write transcripts from a CSV (``filename,transcript``) into the manifests, in place of Whisper's.

    For transcripts made elsewhere (another ASR system, a manual
    transcription, or the synthetic corpora's ``transcripts.csv``). Entries
    are matched by the file name of their ``wav``; the options record the CSV,
    so switching between it and Whisper redoes the entries.

    Returns
    -------
    dict
        ``imported`` (entries written now), ``kept`` (already from this file).
    """
    import pandas as pd

    path = Path(transcripts_file)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: transcripts file not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"filename", "transcript"} <= set(frame.columns):
        raise ValueError(f"{path}: needs the columns filename,transcript; found {', '.join(frame.columns)}")
    texts = dict(zip(frame["filename"], frame["transcript"]))
    options = {"transcripts_file": path.name}
    result = {"imported": 0, "kept": 0}
    for manifest in map(Path, manifests):
        data = read_manifest(manifest)
        missing = [utt for utt, entry in data.items() if Path(str(entry.get("wav", ""))).name not in texts]
        if missing:
            raise ValueError(f"{path}: no transcript for {len(missing)} entries of {manifest} (e.g. {missing[:3]})")
        changed = False
        for entry in data.values():
            text = texts[Path(str(entry["wav"])).name]
            if entry.get(TRANSCRIPT_KEY) == text and entry.get(f"{TRANSCRIPT_KEY}_options") == options:
                result["kept"] += 1
                continue
            entry[TRANSCRIPT_KEY], entry[f"{TRANSCRIPT_KEY}_options"] = text, options
            entry.pop(LANGUAGE_KEY, None)  # Whisper's, from an earlier run: says nothing of these transcripts
            result["imported"] += 1
            changed = True
        if changed:
            atomic_write_json(manifest, data)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speechbrain_ext.transcribe", description=__doc__.split("\n\n")[0])
    parser.add_argument("manifests", nargs="+", help="prepared JSON manifests")
    parser.add_argument("--data_folder", required=True, help="the corpus folder ({data_root} in the manifests)")
    parser.add_argument("--model", default="openai/whisper-large-v2", help="Whisper hub id or local folder")
    parser.add_argument(
        "--language",
        default=None,
        help="force a language code, e.g. fr (HealthCall30); default or auto: detected per file",
    )
    parser.add_argument("--beam_size", type=int, default=1, help="1: greedy search (default)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--chunk_seconds", type=float, default=WHISPER_SECONDS)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip_bad_files", action="store_true", help="list unreadable files and go on")
    parser.add_argument("--transcripts_file", default=None, help="import a CSV filename,transcript instead of decoding")
    args = parser.parse_args(argv)
    if args.transcripts_file:
        try:
            result = import_transcripts(args.manifests, args.transcripts_file)
        except (FileNotFoundError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"imported {result['imported']}, kept {result['kept']} from {args.transcripts_file}")
        return 0
    try:
        result = transcribe_manifests(
            args.manifests,
            args.data_folder,
            source=args.model,
            language=args.language,
            beam_size=args.beam_size,
            batch_size=args.batch_size,
            chunk_seconds=args.chunk_seconds,
            device=args.device,
            skip_bad_files=args.skip_bad_files,
        )
    except (FileNotFoundError, ValueError, AudioLoadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"transcribed {result['transcribed']}, kept {result['kept']} (same options), skipped {len(result['skipped'])}"
    )
    for path, reason in result["skipped"].items():
        print(f"  skipped {path}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
