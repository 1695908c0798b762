"""Whisper through SpeechBrain: loading, language identification and greedy or beam decoding of a batch.

Decoding goes through SpeechBrain's ``Whisper`` wrapper and its
``S2SWhisperGreedySearcher``/``S2SWhisperBeamSearcher``. The language is set
in the tokenizer's prefix tokens (``set_prefix_tokens``), not through the
wrapper's ``to_language_token``, which fails in SpeechBrain 1.1.2 (it calls
``.get`` on a method), nor through its ``language`` argument, which it ignores
for models whose vocabulary is smaller than the multilingual one; the language
token of each row of a batch is then replaced by the searchers'
``set_lang_tokens``, so files of different languages share a batch. The log-mel
features are computed file by file: the wrapper's ``log_mel_spectrogram``
clamps at the maximum over the whole batch (openai's code does it per file),
so a batched transcript would depend on its batch-mates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

WHISPER_SECONDS = 30.0


def language_code(language: str | None) -> str | None:
    """Whisper's code of a language given by code or English name; None for ``None``, ``""`` or ``auto`` (detect it).

    Example
    -------
    >>> language_code("Spanish"), language_code("en"), language_code("auto")
    ('es', 'en', None)
    """
    from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

    if language is None or str(language).strip().lower() in ("", "auto"):
        return None
    name = str(language).strip().lower()
    if name in LANGUAGES:
        return name
    if name in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[name]
    raise ValueError(
        f"language {language!r} is not one of Whisper's (a code such as en, fr, es, or auto/null to detect it per file)"
    )


def whisper_languages(tokenizer) -> dict[str, int]:
    """Language code -> token id, for the language tokens the tokenizer's vocabulary has.

    Read from the vocabulary rather than counted from ``<|startoftranscript|>``
    (SpeechBrain's ``all_language_tokens``): large-v2 has 99 languages, so the
    100th code (``yue``) would name its ``<|translate|>`` token.
    """
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    ids = {code: tokenizer.convert_tokens_to_ids(f"<|{code}|>") for code in LANGUAGES}
    return {code: i for code, i in ids.items() if tokenizer.convert_ids_to_tokens(i) == f"<|{code}|>"}


def load_whisper(source: str, save_path: str | None = None, language: str | None = None, device: str = "cpu"):
    """SpeechBrain's frozen ``Whisper`` with the language (``en`` when None: a slot :func:`decode` fills per file) and task in its prefix tokens."""
    from speechbrain.integrations.huggingface.whisper import Whisper

    model = Whisper(source, save_path or f"pretrained_models/{Path(source).name}", freeze=True, task="transcribe")
    if not whisper_languages(model.tokenizer):
        raise ValueError(
            f"{source}: the vocabulary has no language tokens (an English-only Whisper?); use a multilingual model"
        )
    model.tokenizer.set_prefix_tokens(language=language_code(language) or "en", task="transcribe")
    return model.to(device).eval()


@torch.no_grad()
def detect_languages(model, encoded: torch.Tensor) -> list[str]:
    """Whisper's language identification: the best-scored language token after ``<|startoftranscript|>``.

    As openai's ``detect_language`` and transformers' (which needs
    ``WhisperForConditionalGeneration``; SpeechBrain's wrapper holds a
    ``WhisperModel``): one decoder step from ``<|startoftranscript|>``, its
    logits restricted to the language tokens.

    Arguments
    ---------
    model : speechbrain Whisper
        The model of :func:`load_whisper`.
    encoded : torch.Tensor
        Encoder states of 30 s windows, ``[batch, frames, dim]``.

    Returns
    -------
    list of str
        One language code per row.
    """
    codes = whisper_languages(model.tokenizer)
    start = torch.full((len(encoded), 1), model.bos, dtype=torch.long, device=encoded.device)
    logits = model.forward_decoder(encoded, start, use_cache=False)[0][:, -1]
    best = logits[:, list(codes.values())].argmax(dim=-1)
    return [list(codes)[k] for k in best.tolist()]


def make_searcher(model, beam_size: int = 1):
    """Greedy search for ``beam_size`` 1, beam search otherwise."""
    from speechbrain.decoders.seq2seq import S2SWhisperBeamSearcher, S2SWhisperGreedySearcher

    if beam_size <= 1:
        return S2SWhisperGreedySearcher(model, min_decode_ratio=0.0, max_decode_ratio=1.0)
    return S2SWhisperBeamSearcher(module=[model], min_decode_ratio=0.0, max_decode_ratio=1.0, beam_size=beam_size)


@torch.no_grad()
def decode(
    model, searcher, waveforms: Sequence[torch.Tensor], languages: Sequence[str | None]
) -> tuple[list[str], list[str]]:
    """Transcripts of 16 kHz waveforms of at most 30 s, decoded as one batch.

    Arguments
    ---------
    model, searcher
        From :func:`load_whisper` and :func:`make_searcher`.
    waveforms : sequence of torch.Tensor
        One 1-D waveform per row.
    languages : sequence of str or None
        The language code of each row; None: detected from that row (:func:`detect_languages`).

    Returns
    -------
    texts, languages : list of str
        The transcripts and the languages they were decoded in.
    """
    device = next(model.parameters()).device
    # One log-mel per file: the wrapper clamps at the maximum of the whole batch, which
    # would make a file's transcript depend on the files batched with it.
    mels = torch.cat([model._get_mel(wav.to(device)[None]) for wav in waveforms])
    encoded = model.forward_encoder(mels)
    languages = list(languages)
    unknown = [k for k, language in enumerate(languages) if language is None]
    if unknown:
        for k, language in zip(unknown, detect_languages(model, encoded[unknown])):
            languages[k] = language
    # Each row's language token goes into its own prefix (the searchers' reset_mem writes this
    # column after <|startoftranscript|>), so one batch mixes languages; a beam searcher holds
    # beam_size rows per file, in order (repeat_interleave), hence the repeat. Set on every call:
    # SpeechBrain 1.1.2's reset_mem never clears it (it resets ``lang_token``, a typo).
    codes = whisper_languages(model.tokenizer)
    tokens = torch.tensor([codes[language] for language in languages], device=device)
    searcher.set_lang_tokens(tokens.repeat_interleave(getattr(searcher, "beam_size", 1)))
    hyps = searcher(encoded, torch.ones(len(waveforms), device=device))[0]
    return [text.strip() for text in model.tokenizer.batch_decode(hyps, skip_special_tokens=True)], languages
