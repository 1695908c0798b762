"""The regression interface: emotion intensities of an exported regression model (re-exported by :mod:`speechbrain_ext.serving.inference`)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from speechbrain_ext.nn.models import ModelOutput
from speechbrain_ext.serving.model_interface import ModelInterface


class EmotionRegressor(ModelInterface):
    """The exported regression model: emotion intensities in [0, 1], named by ``output_names``.

    Example::

        model = EmotionRegressor.from_hparams(source="exported_regressor")
        model.predict_file("clip.wav")  # {"Anger": 0.12, "Boredom": 0.40, ...}
    """

    HPARAMS_NEEDED = ["output_names"]

    def predict_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, n_outputs)`` intensities of 16 kHz waveforms."""
        return self.forward_batch(wavs, wav_lens).decision

    def predict_file(self, path: str | os.PathLike, return_transcript: bool = False):
        """Named intensities of one file (any rate, channels and length); with ``return_transcript``, also the transcript read."""
        values = self.forward_file(path).decision[0]
        named = {name: round(float(v), 6) for name, v in zip(self.hparams.output_names, values)}
        return (named, self.last_transcript) if return_transcript else named

    def predict_files(
        self,
        paths: Sequence[str | os.PathLike],
        batch_size: int = 8,
        num_workers: int | None = None,
        progress: bool = False,
    ) -> list:
        """Named intensities of many files, batched as :meth:`EmotionClassifier.classify_files` (same exactness).

        Returns
        -------
        list
            In input order: :meth:`predict_file`'s dict, or the file's
            :class:`~speechbrain_ext.data.audio.AudioLoadError`.
        """

        def finish(out: ModelOutput) -> list:
            names = self.hparams.output_names
            return [{name: round(float(v), 6) for name, v in zip(names, row)} for row in out.decision]

        return self._run_files(paths, finish, batch_size, num_workers, progress)

    def uncertainty_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None, n_samples: int = 500) -> dict:
        """A Bayesian head's intensities: mean and standard deviation over ``n_samples`` weight draws, ``(batch, n_outputs)`` each."""
        self._require_bayesian()
        draws = self.model.activation(self.model.head.sample(self.encode_batch(wavs, wav_lens), n_samples))
        return {"mean": draws.mean(dim=0), "std": draws.std(dim=0)}

    def uncertainty_file(self, path: str | os.PathLike, n_samples: int = 500) -> dict[str, dict[str, float]]:
        """Named mean intensities and their predictive standard deviations for one file: ``{name: {"mean": m, "std": s}}``."""
        self._require_bayesian()
        draws = self.model.activation(self.model.head.sample(self.encode_file(path), n_samples))[:, 0]
        return {
            name: {"mean": round(float(m), 6), "std": round(float(sd), 6)}
            for name, m, sd in zip(self.hparams.output_names, draws.mean(0), draws.std(0))
        }

    def forward(self, wavs, wav_lens=None):
        """Same as :meth:`predict_batch`."""
        return self.predict_batch(wavs, wav_lens)


__all__ = ["EmotionRegressor"]
