"""Capture of the per-head self-attention maps of a wav2vec2, HuBERT or WavLM encoder (Hugging Face eager attention).

Hugging Face returns attention weights only with its eager attention
implementation, which :func:`eager_attention` switches on for the block and
back afterwards; it computes the same outputs. WavLM's Hugging Face attention
returns the maps averaged over heads; its per-head maps are recomputed from
the layer's projections and gated relative position bias (checked against
that average).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from speechbrain_ext.nn.encoders import SSLEncoder

# Tolerance of the checks that every attention row is a distribution and that
# the recomputed WavLM heads average to what Hugging Face returns.
ROW_SUM_TOLERANCE = 1e-3
WAVLM_MEAN_TOLERANCE = 1e-4


def max_samples_for_frames(encoder: SSLEncoder, max_frames: int) -> int:
    """The longest waveform (in samples) the encoder's convolutional front end turns into at most ``max_frames`` frames.

    Arguments
    ---------
    encoder : SSLEncoder
        The encoder (its ``conv_kernel`` and ``conv_stride``).
    max_frames : int
        Frame budget, at least 1.

    Returns
    -------
    int
        Sample count.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
    >>> enc = SSLEncoder(write_tiny_ssl(tempfile.mkdtemp()), tempfile.mkdtemp(), freeze=True)
    >>> n = max_samples_for_frames(enc, 49)
    >>> enc.frame_lengths(torch.tensor([n, n + 1])).tolist()
    [49, 50]
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    config = encoder.ssl_model.model.config
    length = max_frames + 1  # the shortest input giving max_frames + 1 frames, minus one sample
    for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride))):
        length = (length - 1) * int(stride) + int(kernel)
    return length - 1


def _set_attn_implementation(model, name: str) -> None:
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(name)
    else:  # older transformers
        model.config._attn_implementation = name


def _wavlm_per_head(attention, original):
    """Wrap a ``WavLMAttention``'s ``torch_multi_head_self_attention`` to return per-head weights ``(batch, heads, T, T)``."""

    def per_head(hidden_states, attention_mask, gated_position_bias):
        output, averaged = original(hidden_states, attention_mask, gated_position_bias)
        bsz, length, _ = hidden_states.shape
        heads, dim = attention.num_heads, attention.head_dim
        q = (attention.q_proj(hidden_states) * dim**-0.5).view(bsz, length, heads, dim).transpose(1, 2)
        k = attention.k_proj(hidden_states).view(bsz, length, heads, dim).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) + gated_position_bias.view(bsz, heads, length, length)
        if attention_mask is not None:
            scores = scores.masked_fill(attention_mask.ne(1)[:, None, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        if averaged is not None and (weights.mean(dim=1) - averaged[:, 0]).abs().max() > WAVLM_MEAN_TOLERANCE:
            raise RuntimeError(
                "WavLM per-head attention does not average to the maps transformers returns; its attention code changed"
            )
        return output, weights

    return per_head


@contextlib.contextmanager
def eager_attention(encoder: SSLEncoder) -> Iterator[None]:
    """Within the block, the encoder's Hugging Face model returns per-head attention maps (eager attention; WavLM's heads recomputed).

    The previous attention implementation is restored on exit.

    Arguments
    ---------
    encoder : SSLEncoder
        The encoder to switch.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
    >>> enc = SSLEncoder(write_tiny_ssl(tempfile.mkdtemp()), tempfile.mkdtemp(), freeze=True)
    >>> before = enc.ssl_model.model.config._attn_implementation
    >>> with eager_attention(enc):
    ...     enc.ssl_model.model.config._attn_implementation
    'eager'
    >>> enc.ssl_model.model.config._attn_implementation == before
    True
    """
    model = encoder.ssl_model.model
    previous = getattr(model.config, "_attn_implementation", None)
    patched = []
    if previous != "eager":
        _set_attn_implementation(model, "eager")
    for module in model.modules():
        if type(module).__name__ == "WavLMAttention" and hasattr(module, "torch_multi_head_self_attention"):
            original = module.torch_multi_head_self_attention
            module.torch_multi_head_self_attention = _wavlm_per_head(module, original)
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.torch_multi_head_self_attention  # back to the class's method
        if previous is not None and previous != "eager":
            _set_attn_implementation(model, previous)


@torch.no_grad()
def attention_maps(encoder: SSLEncoder, wav: torch.Tensor, max_frames: int | None = None) -> torch.Tensor:
    """Self-attention maps of every transformer layer and head for one utterance.

    Arguments
    ---------
    encoder : SSLEncoder
        A wav2vec2, HuBERT or WavLM encoder (eval mode; the layers it computes).
    wav : torch.Tensor
        ``(samples,)`` 16 kHz waveform.
    max_frames : int, optional
        Crop the waveform (keeping its start) so that ``N <= max_frames``
        (memory grows with ``N**2``).

    Returns
    -------
    torch.Tensor
        ``(layers, heads, N, N)`` float32; row ``i`` of map ``[l, h]`` is
        frame ``i``'s attention distribution over the frames.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
    >>> enc = SSLEncoder(write_tiny_ssl(tempfile.mkdtemp()), tempfile.mkdtemp(), freeze=True).eval()
    >>> maps = attention_maps(enc, torch.randn(16000), max_frames=20)
    >>> tuple(maps.shape), bool(torch.allclose(maps.sum(-1), torch.ones(1), atol=1e-5))
    ((3, 4, 20, 20), True)
    """
    if wav.dim() != 1:
        raise ValueError(f"attention_maps takes one waveform (samples,), got shape {tuple(wav.shape)}")
    if max_frames is not None:
        wav = wav[: max_samples_for_frames(encoder, max_frames)]
    model = encoder.ssl_model.model
    device = next(model.parameters()).device
    wavs = wav[None].to(device=device, dtype=torch.float32)
    n_samples = torch.tensor([wavs.shape[1]], device=device)
    with eager_attention(encoder):
        out = model(
            encoder._prepare_input(wavs, n_samples),
            attention_mask=encoder._mask(wavs, n_samples),
            output_attentions=True,
        )
    attentions = out.attentions
    if not attentions or any(a is None for a in attentions):
        raise RuntimeError(f"{type(model).__name__} returned no attention maps with eager attention")
    maps = torch.cat([a.float() for a in attentions], dim=0)  # (layers, heads, N, N): batch of one
    if maps.shape[0] != encoder.n_layers:
        raise RuntimeError(
            f"{type(model).__name__} returned {maps.shape[0]} attention maps for {encoder.n_layers} layers"
        )
    worst = float((maps.sum(dim=-1) - 1).abs().max()) if maps.numel() else 0.0
    if worst > ROW_SUM_TOLERANCE:
        raise RuntimeError(f"attention rows do not sum to 1 (off by up to {worst:.2g})")
    return maps
