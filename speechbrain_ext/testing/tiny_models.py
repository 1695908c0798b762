"""Tiny, randomly initialised Hugging Face models in the real on-disk format.

No weights can be downloaded on the test machines, so tests and the demo write
very small models from configs into a folder and load them through exactly the
code path that loads ``facebook/wav2vec2-base`` from the hub
(``from_pretrained(source)``); only ``source`` differs.

Command line::

    python -m speechbrain_ext.testing.tiny_models OUT_DIR [--only wav2vec2 bert ...]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import transformers

# A small multilingual text sample: tokenizers are trained on it so that the
# corpora's English, French and Finnish sentences tokenise into real pieces.
TEXT_SAMPLE = [
    "Kids are talking by the door.",
    "Dogs are sitting by the door.",
    "I would like to change the delivery address of my order please.",
    "This is the third time I call and nobody answers my complaint.",
    "Bonjour, je voudrais modifier l'adresse de livraison de ma commande.",
    "C'est la troisième fois que j'appelle et personne ne répond à ma réclamation.",
    "Merci beaucoup, bonne journée, au revoir.",
    "Je ne suis pas content du tout, le service est vraiment mauvais.",
    "Hyvää huomenta, miten voit tänään?",
    "Kirja on pöydällä ja kissa nukkuu sohvalla.",
    "the quick brown fox jumps over the lazy dog while the band plays music",
    "excuse me, where is the train station, is it far from here?",
]

# Conv front-end shaped like wav2vec2-base's (same kernels and strides, so the
# same 20 ms frame rate), but with few channels.
_CONV = {
    "conv_dim": (32,) * 7,
    "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
    "conv_stride": (5, 2, 2, 2, 2, 2, 2),
}
_TRANSFORMER = {
    "hidden_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
    "vocab_size": 32,
}


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


def _feature_extractor(attention_mask: bool = False) -> transformers.Wav2Vec2FeatureExtractor:
    # The preprocessing settings of facebook/wav2vec2-base (no attention mask)
    # or of the large layer-norm models such as wav2vec2-large-xlsr-53 (with one).
    return transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=attention_mask
    )


def write_tiny_ssl(folder: str | os.PathLike, kind: str = "wav2vec2", seed: int = 0, large_style: bool = False) -> str:
    """Write a tiny wav2vec2, HuBERT or WavLM encoder with its feature extractor.

    By default the architecture follows the base models (group-normed
    convolutions, post-layer-norm transformer, no attention mask);
    ``large_style=True`` follows the large/XLSR ones (layer-normed
    convolutions, pre-layer-norm "stable" transformer with a final layer
    norm, attention mask).

    Arguments
    ---------
    folder : str or PathLike
        Output folder (``config.json``, ``model.safetensors``, ``preprocessor_config.json``).
    kind : str
        ``wav2vec2``, ``hubert`` or ``wavlm``.
    seed : int
        Initialisation seed.
    large_style : bool
        Large-model architecture variant.

    Returns
    -------
    str
        The folder, usable as ``source``.

    Example
    -------
    >>> import tempfile
    >>> path = write_tiny_ssl(tempfile.mkdtemp(), "hubert")
    >>> transformers.AutoModel.from_pretrained(path).config.model_type
    'hubert'
    """
    configs = {
        "wav2vec2": (transformers.Wav2Vec2Config, transformers.Wav2Vec2Model, {"feat_extract_norm": "group"}),
        "hubert": (transformers.HubertConfig, transformers.HubertModel, {"feat_extract_norm": "group"}),
        "wavlm": (
            transformers.WavLMConfig,
            transformers.WavLMModel,
            {"feat_extract_norm": "group", "num_buckets": 32, "max_bucket_distance": 200},
        ),
    }
    if kind not in configs:
        raise ValueError(f"unknown SSL kind {kind!r}; known: {', '.join(configs)}")
    config_class, model_class, extra = configs[kind]
    if large_style:
        extra = {**extra, "feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True}
    _seeded(seed)
    config = config_class(**_CONV, **_TRANSFORMER, **extra)
    model = model_class(config)
    model.save_pretrained(folder)
    _feature_extractor(attention_mask=large_style).save_pretrained(folder)
    return str(folder)


def _train_bpe(vocab_size: int = 400) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a byte-level BPE (GPT-2 style, as Whisper uses) on :data:`TEXT_SAMPLE`."""
    import tokenizers

    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        TEXT_SAMPLE * 4, vocab_size=vocab_size, min_frequency=1, special_tokens=["<|endoftext|>"], show_progress=False
    )
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


# Far above transformers' 0.02: a random Whisper then writes transcripts that depend on the
# audio, so a test can tell two files' transcripts apart.
WHISPER_INIT_STD = 0.3


def write_tiny_whisper(folder: str | os.PathLike, seed: int = 0) -> str:
    """Write a tiny Whisper with a working feature extractor, tokenizer and generation config.

    The tokenizer is a byte-level BPE trained on the fly plus Whisper's special
    tokens (languages, tasks, ``<|notimestamps|>``), so ``generate(language=...,
    task="transcribe")`` runs as with ``openai/whisper-large-v2``.

    Example
    -------
    >>> import tempfile
    >>> path = write_tiny_whisper(tempfile.mkdtemp())
    >>> tok = transformers.WhisperTokenizer.from_pretrained(path)
    >>> tok.decode(tok("Bonjour").input_ids, skip_special_tokens=True)
    'Bonjour'
    """
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _train_bpe()
    tokenizer = transformers.WhisperTokenizer(vocab=vocab, merges=merges, pad_token="<|endoftext|>")
    specials = [
        "<|startoftranscript|>",
        *[f"<|{code}|>" for code in LANGUAGES],
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
    ]
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.save_pretrained(folder)
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in specials}
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")

    _seeded(seed)
    config = transformers.WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        max_target_positions=64,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=ids["<|startoftranscript|>"],
        begin_suppress_tokens=[eot],
        suppress_tokens=[],
        init_std=WHISPER_INIT_STD,
    )
    model = transformers.WhisperForConditionalGeneration(config)
    generation = transformers.GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=32,
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": ids[f"<|{code}|>"] for code in LANGUAGES},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        begin_suppress_tokens=[eot],
        suppress_tokens=[],
        return_timestamps=False,
    )
    model.generation_config = generation
    model.save_pretrained(folder)
    transformers.WhisperFeatureExtractor(feature_size=80, sampling_rate=16000).save_pretrained(folder)
    return str(folder)


def _word_vocab(lowercase: bool) -> list[str]:
    words = set()
    for line in TEXT_SAMPLE:
        for word in line.replace(",", " , ").replace(".", " . ").replace("?", " ? ").replace("'", " ' ").split():
            words.add(word.lower() if lowercase else word)
    chars = sorted({c for w in words for c in w})
    # WordPiece falls back on characters and ##-continuations for unseen words.
    return sorted(words) + chars + [f"##{c}" for c in chars]


def write_tiny_bert(folder: str | os.PathLike, seed: int = 0, cased: bool = True) -> str:
    """Write a tiny BERT with a WordPiece tokenizer (``bert-large-cased`` stand-in).

    Example
    -------
    >>> import tempfile
    >>> path = write_tiny_bert(tempfile.mkdtemp())
    >>> tok = transformers.AutoTokenizer.from_pretrained(path)
    >>> tok.convert_ids_to_tokens(tok("Dogs are sitting").input_ids)
    ['[CLS]', 'Dogs', 'are', 'sitting', '[SEP]']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokens = dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + _word_vocab(lowercase=not cased))
    tokenizer = transformers.BertTokenizer(vocab={tok: i for i, tok in enumerate(tokens)}, do_lower_case=not cased)
    tokenizer.save_pretrained(folder)
    _seeded(seed)
    config = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    transformers.BertModel(config).save_pretrained(folder)
    return str(folder)


def write_tiny_camembert(folder: str | os.PathLike, seed: int = 0) -> str:
    """Write a tiny CamemBERT with a SentencePiece tokenizer trained on the fly.

    Example
    -------
    >>> import tempfile
    >>> path = write_tiny_camembert(tempfile.mkdtemp())
    >>> tok = transformers.AutoTokenizer.from_pretrained(path)
    >>> tok.decode(tok("Bonjour, merci.").input_ids, skip_special_tokens=True)
    'Bonjour, merci.'
    """
    import sentencepiece

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "text.txt"
        text_file.write_text("\n".join(TEXT_SAMPLE * 4) + "\n", encoding="utf-8")
        prefix = str(Path(tmp) / "spm")
        sentencepiece.SentencePieceTrainer.train(
            input=str(text_file),
            model_prefix=prefix,
            vocab_size=120,
            hard_vocab_limit=False,
            model_type="unigram",
            character_coverage=1.0,
            # CamemBERT's layout: <s>=0, <pad>=1, </s>=2, <unk>=3
            bos_id=0,
            pad_id=1,
            eos_id=2,
            unk_id=3,
            minloglevel=2,
        )
        processor = sentencepiece.SentencePieceProcessor(model_file=prefix + ".model")
        pieces = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
        # keep the trained model under the name camembert-base ships it with
        (folder / "sentencepiece.bpe.model").write_bytes(Path(prefix + ".model").read_bytes())
    tokenizer = transformers.CamembertTokenizer(vocab=pieces + [("<mask>", 0.0)], additional_special_tokens=[])
    tokenizer.save_pretrained(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    _seeded(seed)
    config = transformers.CamembertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    transformers.CamembertModel(config).save_pretrained(folder)
    return str(folder)


#: Name -> writer; the hub model each stands in for is in the comment.
WRITERS: dict[str, Callable[[Path], str]] = {
    "wav2vec2": lambda p: write_tiny_ssl(p, "wav2vec2"),  # facebook/wav2vec2-base
    "wav2vec2_large": lambda p: write_tiny_ssl(
        p, "wav2vec2", large_style=True
    ),  # layer-norm, attention mask: wav2vec2-large/XLSR
    "hubert": lambda p: write_tiny_ssl(p, "hubert"),  # facebook/hubert-base-ls960
    "wavlm": lambda p: write_tiny_ssl(p, "wavlm"),  # microsoft/wavlm-base-plus
    "whisper": write_tiny_whisper,  # openai/whisper-large-v2
    "bert": write_tiny_bert,  # bert-large-cased
    "camembert": write_tiny_camembert,  # camembert-base
}


def write_tiny_models(root: str | os.PathLike, only: Sequence[str] | None = None) -> dict[str, str]:
    """Write the tiny models into ``root/<name>``; existing complete folders are reused.

    Returns
    -------
    dict
        Model name -> folder, to pass as ``source``.
    """
    root = Path(root)
    paths = {}
    for name in only or WRITERS:
        folder = root / name
        done = folder / "tiny_model.json"
        if not done.exists():
            WRITERS[name](folder)
            done.write_text(json.dumps({"name": name, "transformers": transformers.__version__}) + "\n")
        paths[name] = str(folder)
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--only", nargs="*", choices=sorted(WRITERS))
    args = parser.parse_args(argv)
    for name, path in write_tiny_models(args.out, args.only).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
