"""Text branch: a BERT-like encoder over transcripts (compare2023_bayes_fusion).

:class:`TranscriptEncoder` wraps SpeechBrain's Hugging Face ``TextEncoder``
(``camembert-base`` for HealthCall30, ``bert-large-cased`` for
Hume-Prosody) and adds what it lacks: truncation to the model's maximum
length (SpeechBrain's forward pass does not truncate, and BERT fails past 512
tokens), a count of truncated transcripts, and [CLS] or masked-mean pooling.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from speechbrain.utils.checkpoints import mark_as_transfer, register_checkpoint_hooks
from torch import nn

logger = logging.getLogger(__name__)
POOLINGS = ("cls", "mean")
# RoBERTa-style models number positions from padding_idx + 1
OFFSET_POSITIONS = ("roberta", "camembert", "xlm-roberta")


def usable_positions(config, tokenizer) -> int:
    """The longest input (in tokens, specials included) the model takes.

    Example
    -------
    >>> from types import SimpleNamespace as NS
    >>> usable_positions(NS(model_type="camembert", max_position_embeddings=514, pad_token_id=1), NS(model_max_length=10**30))
    512
    >>> usable_positions(NS(model_type="bert", max_position_embeddings=512, pad_token_id=0), NS(model_max_length=512))
    512
    """
    positions = int(config.max_position_embeddings)
    if config.model_type in OFFSET_POSITIONS:
        positions -= int(config.pad_token_id) + 1
    return min(positions, int(getattr(tokenizer, "model_max_length", positions) or positions))


class _TextLobe(nn.Module):
    """A text model built from its configuration, holding ``model`` and ``tokenizer`` as SpeechBrain's ``TextEncoder`` does (same state-dict keys)."""

    def __init__(self, config: dict, freeze: bool):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        self.model = AutoModel.from_config(
            AutoConfig.for_model(**{k: v for k, v in config.items() if not k.startswith("_")})
        )
        self.tokenizer = None  # comes with the exported model (TranscriptEncoder.load_tokenizer)
        if freeze:
            self.model.eval()
            for param in self.model.parameters():
                param.requires_grad = False


@register_checkpoint_hooks
class TranscriptEncoder(nn.Module):
    """Transcripts -> one embedding each, through a pre-trained text encoder.

    Arguments
    ---------
    source : str or None
        Hub id or local folder (``camembert-base``, ``bert-large-cased``).
    save_path : str
        Download folder.
    pooling : str
        ``cls`` (the first token's last hidden state) or ``mean`` (masked mean over tokens).
    freeze : bool
        Keep the encoder's weights fixed (features, as in the paper) or fine-tune them.
    max_length : int, optional
        Tokens kept per transcript (default: the most the model takes).
    config : dict, optional
        A Hugging Face model configuration: build the architecture from it
        with random weights and fetch nothing (exported models: the weights
        come from their checkpoint and the tokenizer from a packed file,
        :meth:`load_tokenizer`). ``source`` is then only the base model's
        name (or None), and ``max_length`` is required.
    """

    def __init__(
        self,
        source: str | None,
        save_path: str | None = None,
        pooling: str = "cls",
        freeze: bool = True,
        max_length: int | None = None,
        config: dict | None = None,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        self.pooling, self.freeze = pooling, bool(freeze)
        self.truncated = 0  # transcripts cut so far
        if config is not None:
            if not max_length:
                raise ValueError("a TranscriptEncoder built from a configuration needs max_length")
            self.lobe = _TextLobe(dict(config), freeze)
            self.max_length = int(max_length)
        else:
            from speechbrain.integrations.huggingface.textencoder import TextEncoder

            self.lobe = TextEncoder(source, save_path, freeze=freeze)
            limit = usable_positions(self.lobe.model.config, self.lobe.tokenizer)
            self.max_length = min(int(max_length), limit) if max_length else limit
        self.output_dim = int(self.lobe.model.config.hidden_size)

    @mark_as_transfer
    def load_tokenizer(self, path) -> None:
        """Install the tokenizer packed in ``path`` (:func:`~speechbrain_ext.data.packaging.save_tokenizer`); SpeechBrain's ``Pretrainer`` calls it."""
        from transformers import AutoTokenizer

        from speechbrain_ext.data.packaging import unpack

        self.lobe.tokenizer = AutoTokenizer.from_pretrained(str(unpack(path)))

    def tokenize(self, texts: Sequence[str]):
        """Padded, truncated token ids; counts (and logs) the transcripts that were cut."""
        tokenizer = self.lobe.tokenizer
        if tokenizer is None:
            raise RuntimeError(
                "this TranscriptEncoder was built from a configuration and has no tokenizer yet (load_tokenizer)"
            )
        texts = ["" if t is None else str(t) for t in texts]
        too_long = sum(len(ids) > self.max_length for ids in tokenizer(texts)["input_ids"])
        if too_long:
            self.truncated += too_long
            logger.warning("%d transcript(s) cut to %d tokens (%d so far)", too_long, self.max_length, self.truncated)
        return tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length)

    def forward(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, hidden)`` pooled embeddings and ``(batch,)`` token counts."""
        inputs = self.tokenize(texts).to(self.lobe.model.device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.lobe.model(**inputs).last_hidden_state
        mask = inputs["attention_mask"]
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return pooled, mask.sum(dim=1)
