"""The text branch against transformers itself: truncation, [CLS] and masked-mean pooling, batch independence."""

import pytest
import torch
import transformers

from speechbrain_ext.nn.text import TranscriptEncoder

LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 40)
TEXTS = ["I am so happy today.", LONG, "Why?"]


@pytest.mark.parametrize("name", ["bert", "camembert"])
def test_pooled_embeddings_equal_transformers_one_by_one(tiny_models, tmp_path, name):
    encoder = TranscriptEncoder(tiny_models[name], str(tmp_path / "save"), pooling="cls").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_models[name])
    model = transformers.AutoModel.from_pretrained(tiny_models[name]).eval()
    config = model.config
    assert encoder.max_length == config.max_position_embeddings - (
        config.pad_token_id + 1 if name == "camembert" else 0
    )
    with torch.no_grad():
        cls, n_tokens = encoder(TEXTS)
        encoder.pooling = "mean"
        mean, _ = encoder(TEXTS)
        for row, text in enumerate(TEXTS):
            ids = tokenizer(text, return_tensors="pt")["input_ids"][:, : encoder.max_length]
            if ids.shape[1] == encoder.max_length:  # cut by hand: keep the closing special token as the tokenizer does
                ids[0, -1] = tokenizer.sep_token_id
            hidden = model(input_ids=ids).last_hidden_state[0]
            torch.testing.assert_close(cls[row], hidden[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(mean[row], hidden.mean(dim=0), atol=1e-5, rtol=0)
            assert n_tokens[row] == ids.shape[1]
    assert encoder.truncated == 2  # the long transcript, cut in both calls


def test_frozen_or_fine_tuned(tiny_models, tmp_path):
    frozen = TranscriptEncoder(tiny_models["bert"], str(tmp_path / "a"), freeze=True)
    assert not any(p.requires_grad for p in frozen.parameters())
    tuned = TranscriptEncoder(tiny_models["bert"], str(tmp_path / "b"), freeze=False)
    tuned(TEXTS[:1])[0].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tuned.parameters())
    with pytest.raises(ValueError, match="pooling must be one of"):
        TranscriptEncoder(tiny_models["bert"], str(tmp_path / "c"), pooling="max")


def test_missing_transcripts_are_named(tmp_path):
    import json

    from speechbrain_ext.data.dataio import check_transcripts

    manifest = tmp_path / "valid.json"
    manifest.write_text(json.dumps({"a": {"wav": "x.wav", "transcript_whisper": "hi"}, "b": {"wav": "y.wav"}}))
    with pytest.raises(
        ValueError,
        match=r"valid.json: 1 entries have no transcript_whisper \(e.g. \['b'\]\); run python -m speechbrain_ext.transcribe",
    ):
        check_transcripts({"valid": str(manifest)})
