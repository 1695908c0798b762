"""The tiny models load through the same wrappers and calls as the hub models."""

import torch
import transformers
from speechbrain.integrations.huggingface.hubert import HuBERT
from speechbrain.integrations.huggingface.wav2vec2 import Wav2Vec2
from speechbrain.integrations.huggingface.wavlm import WavLM


def test_ssl_models_through_speechbrain_wrappers(tiny_models, tmp_path):
    wavs, lens = torch.randn(2, 16000), torch.tensor([1.0, 0.5])
    for wrapper, name in ((Wav2Vec2, "wav2vec2"), (HuBERT, "hubert"), (WavLM, "wavlm")):
        model = wrapper(
            source=tiny_models[name],
            save_path=str(tmp_path / name),
            freeze_feature_extractor=True,
            output_all_hiddens=True,
        )
        out = model(wavs, lens)
        # (hidden states, batch, frames, hidden): 16000 samples at 20 ms per frame. The
        # number of stacked states (3 layers, with or without the input embedding)
        # differs between the transformers model classes.
        assert out.shape[1:] == (2, 49, 64) and out.shape[0] in (3, 4), name
        assert model.feature_extractor.do_normalize


def test_whisper_generates_with_language_and_task(tiny_models):
    model = transformers.WhisperForConditionalGeneration.from_pretrained(tiny_models["whisper"])
    extractor = transformers.WhisperFeatureExtractor.from_pretrained(tiny_models["whisper"])
    tokenizer = transformers.WhisperTokenizer.from_pretrained(tiny_models["whisper"])
    features = extractor(torch.randn(16000).numpy(), sampling_rate=16000, return_tensors="pt").input_features
    assert features.shape == (1, 80, 3000)
    out = model.generate(features, language="fr", task="transcribe", max_new_tokens=4)
    assert out.shape[0] == 1 and isinstance(tokenizer.batch_decode(out, skip_special_tokens=True)[0], str)
    assert tokenizer.decode(tokenizer("Bonjour, merci.").input_ids, skip_special_tokens=True) == "Bonjour, merci."


def test_text_models_embed_cls(tiny_models):
    for name, text in (
        ("bert", "Dogs are sitting by the door."),
        ("camembert", "Bonjour, je voudrais modifier ma commande."),
    ):
        tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_models[name])
        model = transformers.AutoModel.from_pretrained(tiny_models[name])
        batch = tokenizer([text, "merci"], padding=True, return_tensors="pt")
        cls = model(**batch).last_hidden_state[:, 0]
        assert cls.shape == (2, 64)
        assert tokenizer.unk_token_id not in batch.input_ids[0].tolist(), name
