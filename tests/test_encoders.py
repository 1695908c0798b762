"""SSLEncoder layer selection against HF hidden states; padding invariance; freezing."""

import pytest
import torch
from transformers import AutoModel

from speechbrain_ext.nn.encoders import SSLEncoder
from speechbrain_ext.nn.pooling import frame_counts
from speechbrain_ext.testing.tiny_models import write_tiny_ssl


@pytest.fixture(scope="module")
def large_style(tmp_path_factory):
    return write_tiny_ssl(tmp_path_factory.mktemp("large"), "wav2vec2", large_style=True)


def _reference_hidden(source, wavs):
    model = AutoModel.from_pretrained(source).eval()
    normed = (wavs - wavs.mean(1, keepdim=True)) / torch.sqrt(wavs.var(1, unbiased=False, keepdim=True) + 1e-7)
    with torch.no_grad():
        out = model(normed, output_hidden_states=True)
    return out.hidden_states, out.last_hidden_state


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm", "large"])
@pytest.mark.parametrize("layer", [0, 1, 2, 3, -1, "last", "mean"])
def test_layer_selection_matches_hf_hidden_states(tiny_models, large_style, tmp_path, kind, layer):
    source = large_style if kind == "large" else tiny_models[kind]
    torch.manual_seed(0)
    wavs = torch.randn(2, 8000)
    hidden, last = _reference_hidden(source, wavs)
    assert len(hidden) == 4  # the transformer input + 3 layers
    encoder = SSLEncoder(source, str(tmp_path), layer=layer).eval()
    with torch.no_grad():
        frames, lens = encoder(wavs)
    if layer == "mean":
        expected = torch.stack(hidden).mean(0)
    elif layer in ("last", 3, -1):
        # the top index is the model's output; for pre-layer-norm ("stable") models
        # that includes the final layer norm that transformers 5 leaves out of hidden_states
        expected = last
    else:
        expected = hidden[layer]
    torch.testing.assert_close(frames, expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(lens, torch.ones(2))
    if isinstance(layer, int) and layer % 4 < 3:
        assert encoder.n_layers == layer % 4  # upper layers are not computed


def test_weighted_layers_start_as_mean_and_learn(tiny_models, tmp_path):
    encoder = SSLEncoder(tiny_models["wav2vec2"], str(tmp_path), layer="weighted").eval()
    mean = SSLEncoder(tiny_models["wav2vec2"], str(tmp_path), layer="mean").eval()
    wavs = torch.randn(1, 6000)
    frames, _ = encoder(wavs)
    torch.testing.assert_close(frames, mean(wavs)[0], atol=1e-5, rtol=1e-4)
    frames.sum().backward()
    assert encoder.layer_weights.grad is not None and encoder.layer_weights.grad.abs().sum() > 0


def test_padding_does_not_change_features_of_a_layer_norm_model(large_style, tmp_path):
    torch.manual_seed(0)
    encoder = SSLEncoder(large_style, str(tmp_path), layer=2).eval()
    short, long = torch.randn(1, 9000), torch.randn(1, 16000)
    batch = torch.zeros(2, 16000)
    batch[0, :9000], batch[1] = short[0], long[0]
    with torch.no_grad():
        frames, lens = encoder(batch, torch.tensor([9000 / 16000, 1.0]))
        alone, _ = encoder(short)
    n = frame_counts(lens, frames.shape[1])[0].item()
    assert n == alone.shape[1] == encoder.frame_lengths(torch.tensor(9000)).item()
    torch.testing.assert_close(frames[0, :n], alone[0], atol=1e-4, rtol=1e-3)


def test_freezing(tiny_models, tmp_path):
    partly = SSLEncoder(tiny_models["wav2vec2"], str(tmp_path), freeze_feature_extractor=True)
    conv = partly.ssl_model.model.feature_extractor
    assert not any(p.requires_grad for p in conv.parameters())
    frames, _ = partly(torch.randn(1, 4000))
    frames.sum().backward()
    assert partly.ssl_model.model.encoder.layers[0].attention.k_proj.weight.grad is not None
    frozen = SSLEncoder(tiny_models["wav2vec2"], str(tmp_path), freeze=True)
    frames, _ = frozen(torch.randn(1, 4000))
    assert not frames.requires_grad


def test_bad_layer_names_the_range(tiny_models, tmp_path):
    with pytest.raises(ValueError, match=r"0\.\.3"):
        SSLEncoder(tiny_models["wav2vec2"], str(tmp_path), layer=7)
    with pytest.raises(ValueError, match="weighted"):
        SSLEncoder(tiny_models["wav2vec2"], str(tmp_path), layer="middle")
