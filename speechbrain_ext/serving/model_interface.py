"""The base of the pretrained-model interfaces: the exported model run on batches and on files of any length.

:class:`ModelInterface` is SpeechBrain's ``Pretrained`` around the exported ``model``
(:mod:`speechbrain_ext.nn.models`): transcripts for models that read text, encoder frames chunk by chunk for
long files, and many files in exact batches (:mod:`~speechbrain_ext.serving.batches`). The interfaces users
load are in :mod:`speechbrain_ext.serving.inference`.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import itertools
import math
import os
import sys
import types
from collections.abc import Callable, Sequence

import torch
from speechbrain.inference.interfaces import Pretrained

from speechbrain_ext.data.audio import TARGET_SAMPLE_RATE, AudioLoadError, audio_frames, iter_chunks, load_audio
from speechbrain_ext.nn.bayesian import BayesianLinear
from speechbrain_ext.nn.encoders import model_batch_exact
from speechbrain_ext.nn.models import FusedModel, ModelOutput, TextModel
from speechbrain_ext.serving.batches import AudioFiles, default_num_workers, equal_runs, pad_collate

EXPORTED_MODULE = "custom_interface"  # an exported folder's interface file; its YAML names classes from it
ORIGINS_NAME = "PACKAGE_ORIGINS"  # in that file: the package module of each class the YAML names


def read_origins(path: str | os.PathLike) -> dict[str, str]:
    """The package module of each class an exported folder's YAML names, read from its ``custom_interface.py``
    as a literal (nothing of the file runs); ``{}`` when the file records none."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [ORIGINS_NAME]:
            return ast.literal_eval(node.value)
    return {}


@contextlib.contextmanager
def exported_classes(cls: type, source, **fetch_options):
    """While an exported folder's YAML loads, ``custom_interface.<Name>`` names the classes of ``cls``'s own code.

    The generated ``custom_interface.py`` registers itself under that name when imported, so its interfaces
    need nothing here. The package's interfaces instead get the package's classes, from the modules the
    file records (:data:`ORIGINS_NAME`, read as a literal: nothing of the file runs), so that the package
    and the generated file each run their own code on the same folder.
    """
    if cls.__module__ == EXPORTED_MODULE:
        yield
        return
    from speechbrain.utils.fetching import fetch

    try:
        origins = read_origins(fetch(filename=f"{EXPORTED_MODULE}.py", source=source, **fetch_options))
    except (OSError, ValueError, SyntaxError):  # a folder from before the generated file: its tags name the package
        yield
        return
    namespace = types.ModuleType(EXPORTED_MODULE)
    namespace.__dict__.update(
        {name: getattr(importlib.import_module(module), name) for name, module in origins.items()}
    )
    previous = sys.modules.get(EXPORTED_MODULE)
    sys.modules[EXPORTED_MODULE] = namespace
    try:
        yield
    finally:
        if previous is None:
            sys.modules.pop(EXPORTED_MODULE, None)
        else:
            sys.modules[EXPORTED_MODULE] = previous


class ModelInterface(Pretrained):
    """Running the exported model on batches and on files of any length.

    Audio models read the waveforms; text models (and fused models with a
    text branch) read Whisper transcripts, made by the packaged
    ``transcriber`` exactly as the training run made them.
    """

    MODULES_NEEDED = ["model"]

    @classmethod
    def from_hparams(cls, source, hparams_file="hyperparams.yaml", **kwargs):
        """SpeechBrain's ``from_hparams``, with the folder's ``custom_interface.<Name>`` tags naming this code's classes."""
        fetch_options = {k: kwargs[k] for k in ("savedir", "local_strategy", "fetch_config") if k in kwargs}
        with exported_classes(cls, source, **fetch_options):
            return super().from_hparams(source, hparams_file=hparams_file, **kwargs)

    def _hparam(self, name, default):
        return getattr(self.hparams, name, default)

    @property
    def model(self):
        """The exported model (:mod:`speechbrain_ext.nn.models`)."""
        return self.mods.model

    @property
    def reads_text(self) -> bool:
        """Whether the model reads transcripts (a text model, or a fused model with a text branch)."""
        return "transcript" in list(self._hparam("model_inputs", ["sig"]))

    def transcribe_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> list[str]:
        """Whisper transcripts of a padded batch of 16 kHz waveforms."""
        if "transcriber" not in self.mods:
            raise ValueError("this model reads no transcripts and carries no Whisper transcriber")
        lens = torch.ones(len(wavs)) if wav_lens is None else wav_lens
        return self.mods.transcriber.transcribe(
            [wav[: int(round(float(rel) * wavs.shape[1]))] for wav, rel in zip(wavs, lens)]
        )

    @contextlib.contextmanager
    def remembering(self, on_chunk: Callable[[int, int], None] | None = None):
        """Within the block, each file is transcribed and encoded once; ``on_chunk(done, total)`` follows its encoding.

        A page that shows a file's decision, its timeline and its uncertainty
        asks for the same file's frames three times: inside the block the
        first answer is kept and given again (a dictionary of the file's
        frames, so for one file at a time).

        Arguments
        ---------
        on_chunk : callable, optional
            Called after each encoded chunk with the chunks done and the file's chunk count.
        """
        self._remembered, self._on_chunk = {}, on_chunk
        try:
            yield
        finally:
            self._remembered, self._on_chunk = None, None

    def _recall(self, key: tuple, compute: Callable[[], object]):
        remembered = getattr(self, "_remembered", None)
        if remembered is None:
            return compute()
        if key not in remembered:
            remembered[key] = compute()
        return remembered[key]

    def transcribe_file(self, path: str | os.PathLike) -> str:
        """The Whisper transcript of one file (any rate, channels and length)."""
        return self._recall(
            ("transcript", os.fspath(path)),
            lambda: self.transcribe_batch(load_audio(path, TARGET_SAMPLE_RATE).unsqueeze(0))[0],
        )

    def forward_batch(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None, transcripts: list[str] | None = None
    ) -> ModelOutput:
        """The model's output for a padded batch of 16 kHz waveforms ``(batch, time)`` with relative lengths.

        A model that reads text transcribes the batch first (or takes the given ``transcripts``).
        """
        wavs = wavs.to(self.device).float()
        wav_lens = torch.ones(wavs.shape[0], device=self.device) if wav_lens is None else wav_lens.to(self.device)
        if self.reads_text and transcripts is None:
            transcripts = self.transcribe_batch(wavs, wav_lens)
        with torch.no_grad():
            if isinstance(self.model, FusedModel):
                return self.model(wavs, wav_lens, transcripts)
            if isinstance(self.model, TextModel):
                return self.model(transcripts)
            return self.model(wavs, wav_lens)

    def file_frames(self, path: str | os.PathLike, model=None) -> torch.Tensor:
        """``(1, frames, dim)`` encoder frames of a file (of ``model``, default the exported one), chunk by chunk past ``max_chunk_seconds``."""
        model = self.model if model is None else model
        return self._recall(("frames", os.fspath(path), id(model)), lambda: self._encode_file(path, model))

    def _encode_file(self, path: str | os.PathLike, model) -> torch.Tensor:
        chunk_seconds = float(self._hparam("max_chunk_seconds", 30.0))
        frames_total, file_sr = audio_frames(path)
        on_chunk = getattr(self, "_on_chunk", None) or (lambda done, total: None)
        ones = torch.ones(1, device=self.device)
        with torch.no_grad():
            if frames_total / file_sr <= chunk_seconds:
                frames = model.encode(load_audio(path, TARGET_SAMPLE_RATE).unsqueeze(0).to(self.device), ones)[0]
                on_chunk(1, 1)
                return frames
            total, parts = math.ceil(frames_total / max(1, round(chunk_seconds * file_sr))), []  # iter_chunks' count
            for done, (_, wav) in enumerate(iter_chunks(path, chunk_seconds, TARGET_SAMPLE_RATE), start=1):
                parts.append(model.encode(wav.unsqueeze(0).to(self.device), ones)[0])
                on_chunk(done, total)
        return torch.cat(parts, dim=1)

    def _file_output(self, model, path, transcript) -> ModelOutput:
        if isinstance(model, FusedModel):
            return model.combine([self._file_output(branch, path, transcript) for branch in model.branches])
        if isinstance(model, TextModel):
            return model([transcript])
        return model.from_frames(self.file_frames(path, model))

    def forward_file(self, path: str | os.PathLike) -> ModelOutput:
        """The model's output for one file (any rate, channels and length); ``self.last_transcript`` holds its transcript, if read."""
        self.last_transcript = self.transcribe_file(path) if self.reads_text else None
        with torch.no_grad():
            return self._file_output(self.model, path, self.last_transcript)

    @property
    def batch_exact(self) -> bool:
        """Whether files of different lengths may share a padded batch and still get their one-by-one answers.

        Read from the loaded model, never from a model name: every SSL
        encoder in it (each branch of a fusion) must be layer-normed with the
        attention mask passed (:func:`~speechbrain_ext.nn.encoders.model_batch_exact`). Models that read
        transcripts are not batch-exact (``classify_files`` runs them one file
        at a time); group-norm models are batched only among files of equal
        length, which is exact too.
        """
        return not self.reads_text and model_batch_exact(self.model)

    def _batches(self, paths: Sequence, batch_size: int) -> tuple[list[list[int]], list[int], dict[int, Exception]]:
        """Batches of file indices by length (from the headers), files to run alone (over one chunk), header errors."""
        chunk_seconds = float(self._hparam("max_chunk_seconds", 30.0))
        lengths, alone, errors = [], [], {}
        for i, path in enumerate(paths):
            try:
                frames, file_sr = audio_frames(path)
            except AudioLoadError as err:
                errors[i] = err
                continue
            if frames / file_sr > chunk_seconds:
                alone.append(i)
            else:
                lengths.append((i, math.ceil(frames * TARGET_SAMPLE_RATE / file_sr)))
        lengths.sort(key=lambda item: -item[1])  # longest first; input order among equal lengths
        size = 1 if self.reads_text else max(1, int(batch_size))
        if self.batch_exact:
            groups = [lengths]
        else:
            groups = [list(group) for _, group in itertools.groupby(lengths, key=lambda item: item[1])]
        batches = [[i for i, _ in group[k : k + size]] for group in groups for k in range(0, len(group), size)]
        return batches, alone, errors

    def _run_files(
        self,
        paths: Sequence,
        finish: Callable[[ModelOutput], list],
        batch_size: int,
        num_workers: int | None,
        progress: bool,
    ) -> list:
        """``finish(output)`` of every file (one entry per row of the output), in input order; unreadable files give their error."""
        from tqdm import tqdm

        paths = [str(p) for p in paths]
        batches, alone, errors = self._batches(paths, batch_size)
        results: dict = dict(errors)
        num_workers = default_num_workers(self.device) if num_workers is None else int(num_workers)
        bar = tqdm(total=len(paths), desc="classifying", unit="file", disable=not progress or len(paths) < 2)
        bar.update(len(errors))
        loader = torch.utils.data.DataLoader(
            AudioFiles(paths, load_audio),  # the reader of the one-by-one path, in the workers too
            batch_sampler=batches,
            num_workers=num_workers if batches else 0,
            collate_fn=pad_collate,
            pin_memory=str(self.device).startswith("cuda"),
        )
        exact = self.batch_exact
        for indices, wavs, n_samples, bad in loader:
            results.update(bad)
            # Group-norm models: equal lengths only (the headers' lengths could be off by a sample after resampling).
            runs = [(0, len(indices))] if exact else equal_runs(n_samples.tolist())
            for start, stop in runs:
                part = wavs[start:stop, : int(n_samples[start:stop].max())]
                lens = n_samples[start:stop].float() / part.shape[1]
                for i, row in zip(indices[start:stop], finish(self.forward_batch(part, lens))):
                    results[i] = row
            bar.update(len(indices) + len(bad))
        for i in alone:
            try:
                results[i] = finish(self.forward_file(paths[i]))[0]
            except AudioLoadError as err:
                results[i] = err
            bar.update(1)
        bar.close()
        return [results[i] for i in range(len(paths))]

    def encode_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """Utterance embeddings ``(batch, dim)`` (the head's input)."""
        return self.forward_batch(wavs, wav_lens).embeddings

    def encode_file(self, path: str | os.PathLike) -> torch.Tensor:
        """``(1, dim)`` embedding of a file."""
        return self.forward_file(path).embeddings

    @property
    def is_bayesian(self) -> bool:
        """True when the output layer is a :class:`BayesianLinear`."""
        return isinstance(getattr(self.model, "head", None), BayesianLinear)

    def _require_bayesian(self) -> None:
        if not self.is_bayesian:
            raise ValueError(
                "uncertainty needs a Bayesian head (a run of a *bayes.yaml recipe); this model's head is deterministic"
            )
