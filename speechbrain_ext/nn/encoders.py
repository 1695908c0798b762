"""Self-supervised speech encoders with layer selection (wav2vec2, HuBERT, WavLM).

The papers take features from a chosen hidden layer rather than the last
one: compare2023_bayes_fusion uses layers 18/19/12 of the 24-layer XLSR
models, segment_triplet layer 23 for Finnish. :class:`SSLEncoder` wraps
SpeechBrain's HF lobes (``speechbrain.integrations.huggingface``), so models
load through ``from_pretrained`` from a hub id or a local folder, and adds:

- ``layer``: an index into HF ``hidden_states`` (0 = the transformer input,
  ``k`` = the output of transformer layer ``k``, as in the papers; the top
  index is the model's output, which for pre-layer-norm "stable" models
  includes the final layer norm), ``"last"``, ``"mean"`` of all hidden
  states, or ``"weighted"`` (a learnable softmax-weighted sum);
- layers above a selected index are dropped (not computed) unless
  ``drop_upper_layers=False``: layer 18 of 24 costs 18 layers;
- per-utterance waveform normalisation over real samples only (the HF
  feature extractor's ``do_normalize``); the attention mask where the
  model's feature extractor asks for one, or always (``attention_mask=True``,
  the recipes' choice for fine-tuning on padded batches);
- ``output_norm``: per-utterance standardisation of the output frames over
  real frames only;
- exact frame lengths from the convolutional front end.
"""

from __future__ import annotations

import torch
from speechbrain.integrations.huggingface.hubert import HuBERT
from speechbrain.integrations.huggingface.wav2vec2 import Wav2Vec2
from speechbrain.integrations.huggingface.wavlm import WavLM
from torch import nn

WRAPPERS = {"wav2vec2": Wav2Vec2, "hubert": HuBERT, "wavlm": WavLM}


def normalize_waveforms(wavs: torch.Tensor, n_samples: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per utterance over its real samples; padding stays zero.

    Example
    -------
    >>> w = torch.tensor([[1.0, 3.0, 0.0], [2.0, 4.0, 6.0]])
    >>> [[round(v, 3) + 0.0 for v in row] for row in normalize_waveforms(w, torch.tensor([2, 3])).tolist()]
    [[-1.0, 1.0, 0.0], [-1.225, 0.0, 1.225]]
    """
    real = (torch.arange(wavs.shape[1], device=wavs.device)[None, :] < n_samples[:, None]).to(wavs.dtype)
    count = n_samples.to(wavs.dtype).clamp_min(1).unsqueeze(1)
    mean = (wavs * real).sum(dim=1, keepdim=True) / count
    var = (((wavs - mean) * real) ** 2).sum(dim=1, keepdim=True) / count
    return (wavs - mean) / torch.sqrt(var + 1e-7) * real


def normalize_frames(frames: torch.Tensor, n_frames: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Standardise each utterance's real frames over time and features together; padding stays zero.

    SpeechBrain's HF lobes with ``output_norm=True`` apply
    ``layer_norm(out, out.shape[1:])`` over the padded batch; this is the same
    statistic over real frames only, so it does not depend on the batch.

    Example
    -------
    >>> x = torch.tensor([[[1.0, 3.0], [5.0, 7.0], [0.0, 0.0]]])
    >>> out = normalize_frames(x, torch.tensor([2]))
    >>> [round(v, 3) + 0.0 for v in out[0].flatten().tolist()]
    [-1.342, -0.447, 0.447, 1.342, 0.0, 0.0]
    """
    real = (
        (torch.arange(frames.shape[1], device=frames.device)[None, :] < n_frames[:, None])
        .to(frames.dtype)
        .unsqueeze(-1)
    )
    count = (n_frames.to(frames.dtype).clamp_min(1) * frames.shape[-1]).view(-1, 1, 1)
    mean = (frames * real).sum(dim=(1, 2), keepdim=True) / count
    var = (((frames - mean) * real) ** 2).sum(dim=(1, 2), keepdim=True) / count
    return (frames - mean) / torch.sqrt(var + eps) * real


class _ModelFromConfig(nn.Module):
    """A Hugging Face SSL model built from its configuration alone (weights come from a checkpoint).

    Holds ``model`` and ``feature_extractor`` as SpeechBrain's HF lobes do, so
    state-dict keys match those of a model loaded through them.
    """

    def __init__(
        self,
        config: dict,
        feature_extractor: dict,
        freeze: bool,
        freeze_feature_extractor: bool,
        apply_spec_augment: bool,
    ):
        super().__init__()
        from types import SimpleNamespace

        from transformers import AutoConfig, AutoModel

        config = {k: v for k, v in config.items() if not k.startswith("_")}
        hf_config = AutoConfig.for_model(**config)
        hf_config.apply_spec_augment = apply_spec_augment
        self.model = AutoModel.from_config(hf_config)
        self.feature_extractor = SimpleNamespace(
            do_normalize=bool(feature_extractor.get("do_normalize", False)),
            return_attention_mask=bool(feature_extractor.get("return_attention_mask", True)),
        )
        if freeze:
            self.model.eval()
            for param in self.model.parameters():
                param.requires_grad = False
        elif freeze_feature_extractor:
            for param in self.model.feature_extractor.parameters():
                param.requires_grad = False


def export_config(source: str, cache_dir: str | None = None) -> tuple[dict, dict]:
    """The configuration dictionaries an exported model needs to rebuild ``source``'s architecture offline.

    Returns
    -------
    config : dict
        The Hugging Face model configuration (private ``_`` keys such as the local path left out).
    feature_extractor_config : dict
        ``do_normalize`` and ``return_attention_mask``.
    """
    from transformers import AutoConfig, AutoFeatureExtractor

    config = {
        k: v
        for k, v in AutoConfig.from_pretrained(source, cache_dir=cache_dir).to_dict().items()
        if not k.startswith("_")
    }
    extractor = AutoFeatureExtractor.from_pretrained(source, cache_dir=cache_dir)
    return config, {
        "do_normalize": bool(getattr(extractor, "do_normalize", False)),
        "return_attention_mask": bool(getattr(extractor, "return_attention_mask", True)),
    }


class SSLEncoder(nn.Module):
    """wav2vec2 / HuBERT / WavLM encoder returning the frames of a chosen layer.

    Arguments
    ---------
    source : str or None
        Hub id (``facebook/wav2vec2-base``) or local ``save_pretrained`` folder.
    save_path : str, optional
        Download cache folder.
    layer : int or str
        ``"last"``, an index into HF ``hidden_states`` (negative counts from
        the end), ``"mean"`` or ``"weighted"``.
    freeze : bool
        Freeze the whole encoder (features only).
    freeze_feature_extractor : bool
        Freeze the convolutional feature encoder (the papers' fine-tuning setup).
    model_type : str, optional
        ``wav2vec2``, ``hubert`` or ``wavlm``; read from the model config when omitted.
    drop_upper_layers : bool
        With an integer ``layer``, delete the transformer layers above it.
    apply_spec_augment : bool
        HF's SpecAugment-style time masking during training.
    attention_mask : bool, optional
        Pass the padding mask to the transformer. ``None`` follows the model's
        feature extractor (``return_attention_mask``; False for wav2vec2-base,
        whose pre-training saw no mask). Recipes that fine-tune on padded
        batches set True, so that no frame attends to padding.
    output_norm : bool
        Standardise each utterance's output frames (:func:`normalize_frames`),
        as SpeechBrain's ``output_norm=True`` but over real frames only.
    config : dict, optional
        A Hugging Face model configuration (``config.to_dict()`` of the full,
        untruncated model). When given, the architecture is built from it with
        random weights and nothing is fetched: exported models carry it, and
        their weights come from their own checkpoint. ``source`` is then only
        the base model's name (or None).
    feature_extractor_config : dict, optional
        With ``config``: ``do_normalize`` and ``return_attention_mask`` of the
        model's feature extractor.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
    >>> path = write_tiny_ssl(tempfile.mkdtemp(), "wav2vec2")
    >>> enc = SSLEncoder(path, tempfile.mkdtemp(), layer=2)
    >>> frames, lens = enc(torch.randn(2, 16000), torch.tensor([1.0, 0.5]))
    >>> frames.shape, enc.n_layers, [round(x, 3) for x in lens.tolist()]
    (torch.Size([2, 49, 64]), 2, [1.0, 0.49])
    """

    def __init__(
        self,
        source: str | None,
        save_path: str | None = None,
        layer: int | str = "last",
        freeze: bool = False,
        freeze_feature_extractor: bool = True,
        model_type: str | None = None,
        drop_upper_layers: bool = True,
        apply_spec_augment: bool = False,
        attention_mask: bool | None = None,
        output_norm: bool = False,
        config: dict | None = None,
        feature_extractor_config: dict | None = None,
    ):
        super().__init__()
        self.output_norm = output_norm
        self.source = source
        if config is not None:
            self.ssl_model = _ModelFromConfig(
                dict(config), dict(feature_extractor_config or {}), freeze, freeze_feature_extractor, apply_spec_augment
            )
            model_type = self.ssl_model.model.config.model_type
        else:
            if model_type is None:
                from transformers import AutoConfig

                model_type = AutoConfig.from_pretrained(source, cache_dir=save_path).model_type
            if model_type not in WRAPPERS:
                raise ValueError(f"{source}: model type {model_type!r} is not one of {sorted(WRAPPERS)}")
            self.ssl_model = WRAPPERS[model_type](
                source,
                save_path,
                freeze=freeze,
                freeze_feature_extractor=freeze_feature_extractor,
                apply_spec_augment=apply_spec_augment,
            )
        self.freeze = freeze
        self.model_type = model_type
        model = self.ssl_model.model
        if not apply_spec_augment and getattr(model, "masked_spec_embed", None) is not None:
            # used only by SpecAugment: a trainable parameter no forward reaches makes DDP fail (speechbrain#2340)
            model.masked_spec_embed.requires_grad_(False)
        convolutions = getattr(model, "feature_extractor", None)
        if convolutions is not None and not any(p.requires_grad for p in convolutions.parameters()):
            # frozen by requires_grad alone, HF's CNN still marks its input as needing a gradient and
            # backpropagates through every convolution in training (HF's own freeze_feature_encoder clears this flag)
            convolutions._requires_grad = False
        self.normalize = bool(getattr(self.ssl_model.feature_extractor, "do_normalize", False))
        if attention_mask is None:
            attention_mask = bool(getattr(self.ssl_model.feature_extractor, "return_attention_mask", True))
        self.use_attention_mask = bool(attention_mask)
        total = model.config.num_hidden_layers
        if isinstance(layer, str) and layer not in ("last", "mean", "weighted"):
            raise ValueError(f"layer must be an int, 'last', 'mean' or 'weighted', got {layer!r}")
        if not isinstance(layer, str):
            layer = int(layer)
            if not -(total + 1) <= layer <= total:
                raise ValueError(f"{source} has hidden states 0..{total}; layer {layer} does not exist")
            layer %= total + 1
            if drop_upper_layers and layer < total:
                self._truncate(layer)
        self.layer = layer
        self.layer_weights = (
            nn.Parameter(torch.zeros(model.config.num_hidden_layers + 1)) if layer == "weighted" else None
        )

    def _truncate(self, keep: int) -> None:
        """Keep the first ``keep`` transformer layers; drop a final layer norm that only the full stack applies."""
        model = self.ssl_model.model
        model.encoder.layers = model.encoder.layers[:keep]
        if getattr(model.config, "do_stable_layer_norm", False):
            model.encoder.layer_norm = nn.Identity()
        model.config.num_hidden_layers = keep

    @property
    def n_layers(self) -> int:
        """Transformer layers actually computed."""
        return len(self.ssl_model.model.encoder.layers)

    @property
    def frame_rate(self) -> float:
        """Output frames per second of 16 kHz audio (50 for the wav2vec2 family's 20 ms stride)."""
        stride = 1
        for s in self.ssl_model.model.config.conv_stride:
            stride *= int(s)
        return 16000 / stride

    @property
    def output_dim(self) -> int:
        """Frame dimension."""
        return self.ssl_model.model.config.hidden_size

    def frame_lengths(self, n_samples: torch.Tensor) -> torch.Tensor:
        """Frames produced by the convolutional front end for ``n_samples`` samples."""
        return self.ssl_model.model._get_feat_extract_output_lengths(n_samples)

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(batch, samples)`` 16 kHz waveforms.
        wav_lens : torch.Tensor, optional
            Relative lengths (SpeechBrain convention).

        Returns
        -------
        frames : torch.Tensor
            ``(batch, frames, dim)`` of the selected layer (or combination).
        frame_lens : torch.Tensor
            Relative frame lengths, exact for the convolutional front end.
        """
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0], device=wavs.device)
        n_samples = torch.round(wav_lens * wavs.shape[1]).long().clamp(min=1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            return self._encode(wavs, n_samples)

    def hidden_states(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Every hidden state the encoder computes (the CNN's projection, then each transformer layer), for analysis.

        No output normalisation and no layer selection: the raw states that
        probing and layer-wise analyses read.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(batch, samples)`` 16 kHz waveforms.
        wav_lens : torch.Tensor, optional
            Relative lengths.

        Returns
        -------
        states : tuple of torch.Tensor
            ``n_layers + 1`` tensors ``(batch, frames, dim)``.
        n_frames : torch.Tensor
            Real frames per utterance.

        Example
        -------
        >>> import tempfile
        >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
        >>> enc = SSLEncoder(write_tiny_ssl(tempfile.mkdtemp(), "wav2vec2"), tempfile.mkdtemp(), layer=1)
        >>> states, n_frames = enc.hidden_states(torch.randn(1, 16000))
        >>> len(states), tuple(states[-1].shape), n_frames.tolist()
        (2, (1, 49, 64), [49])
        """
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0], device=wavs.device)
        n_samples = torch.round(wav_lens * wavs.shape[1]).long().clamp(min=1)
        out = self.ssl_model.model(
            self._prepare_input(wavs, n_samples), attention_mask=self._mask(wavs, n_samples), output_hidden_states=True
        )
        states = out.hidden_states
        return states, self.frame_lengths(n_samples).to(states[0].device).clamp(max=states[0].shape[1])

    def _prepare_input(self, wavs, n_samples):
        return normalize_waveforms(wavs, n_samples) if self.normalize else wavs

    def _mask(self, wavs, n_samples):
        if not self.use_attention_mask:
            return None
        return (torch.arange(wavs.shape[1], device=wavs.device)[None, :] < n_samples[:, None]).long()

    def _encode(self, wavs, n_samples):
        wavs = self._prepare_input(wavs, n_samples)
        attention_mask = self._mask(wavs, n_samples)
        need_all = self.layer in ("mean", "weighted") or (isinstance(self.layer, int) and self.layer < self.n_layers)
        out = self.ssl_model.model(wavs, attention_mask=attention_mask, output_hidden_states=need_all)
        if self.layer == "last" or (isinstance(self.layer, int) and not need_all):
            frames = out.last_hidden_state
        elif isinstance(self.layer, int):
            frames = out.hidden_states[self.layer]
        else:
            stacked = torch.stack(out.hidden_states, dim=0)
            if self.layer == "mean":
                frames = stacked.mean(dim=0)
            else:
                weights = torch.softmax(self.layer_weights, dim=0).to(stacked.dtype)
                frames = torch.einsum("l,lbtd->btd", weights, stacked)
        n_frames = self.frame_lengths(n_samples).to(frames.device).clamp(max=frames.shape[1])
        if self.output_norm:
            frames = normalize_frames(frames, n_frames)
        return frames, n_frames.float() / frames.shape[1]


def encoder_batch_exact(encoder) -> bool:
    """Whether an SSL encoder gives a file the same frames alone and in a padded batch, from its own configuration.

    True when its convolutional feature extractor is layer-normed (HF config
    ``feat_extract_norm == "layer"``: each frame is normalised on its own) and
    the attention mask is passed (``use_attention_mask``), so no real frame
    sees padding. Group norm (the base models) normalises over time, padding
    included. Anything that is not an :class:`~speechbrain_ext.nn.encoders.SSLEncoder` is not claimed exact.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
    >>> base = SSLEncoder(write_tiny_ssl(tempfile.mkdtemp()), tempfile.mkdtemp())
    >>> large = SSLEncoder(write_tiny_ssl(tempfile.mkdtemp(), large_style=True), tempfile.mkdtemp())
    >>> encoder_batch_exact(base), encoder_batch_exact(large)
    (False, True)
    """
    if not isinstance(encoder, SSLEncoder):
        return False
    config = encoder.ssl_model.model.config
    return getattr(config, "feat_extract_norm", None) == "layer" and bool(encoder.use_attention_mask)


def model_batch_exact(model: nn.Module) -> bool:
    """Whether a model (any module holding SSL encoders: a recipe's model, a fusion) scores a file alike alone and in a padded batch.

    Every :class:`SSLEncoder` in it must be :func:`encoder_batch_exact`; a
    model without one (a text branch) is not claimed exact.

    Example
    -------
    >>> model_batch_exact(nn.Linear(2, 2))
    False
    """
    encoders = [m for m in model.modules() if isinstance(m, SSLEncoder)]
    return bool(encoders) and all(encoder_batch_exact(e) for e in encoders)


def layer_for_target(layers: dict, target: str) -> int | str:
    """The SSL layer a YAML's ``ssl_layer_by_target`` map gives the recipe's ``target``.

    compare2023_bayes_fusion picks a layer per task (HealthCall30: 18 for
    HC-Requests, 12 for HC-Complaints, 19 for the joint 4-class model), so the
    HealthCall30 YAMLs derive ``ssl_layer`` from ``target`` with
    ``!applyref:speechbrain_ext.nn.encoders.layer_for_target``; that is resolved
    with the references, so an explicit ``--ssl_layer`` override replaces it.

    Arguments
    ---------
    layers : dict
        Target -> layer (a ``hidden_states`` index or a name :class:`SSLEncoder` takes).
    target : str
        The recipe's target.

    Returns
    -------
    int or str
        The layer for ``target``.

    Example
    -------
    >>> layer_for_target({"request": 18, "complaint": 12}, "complaint")
    12
    >>> layer_for_target({"request": 18, "complaint": 12}, "joint")
    Traceback (most recent call last):
    ...
    ValueError: ssl_layer_by_target has no layer for target 'joint' (it has request, complaint): add one, or pass --ssl_layer
    """
    if target not in layers:
        raise ValueError(
            f"ssl_layer_by_target has no layer for target {target!r} (it has {', '.join(map(str, layers))}): add one, or pass --ssl_layer"
        )
    return layers[target]
