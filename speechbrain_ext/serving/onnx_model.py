"""ONNX export of an audio classifier, and a small onnxruntime loader with the same ``classify_file`` answer.

    python -m speechbrain_ext.hub export --train-hparams results/.../hyperparams.yaml --out my_model --onnx

    from speechbrain_ext.serving.onnx_model import OnnxEmotionClassifier
    model = OnnxEmotionClassifier("my_model", intra_op_num_threads=2)
    out_prob, score, index, text_lab = model.classify_file("speech.wav")

The graph (``model.onnx``) maps one 16 kHz waveform ``wav`` of shape
``(1, samples)`` (any number of samples: a dynamic axis) to the class
log-probabilities ``log_probs`` ``(1, n_classes)``: the waveform
normalisation, the SSL encoder with its selected layer and output
normalisation, the pooling, the head and its log-softmax, all inside the
graph, so the loader only reads and resamples audio. For a
:class:`~speechbrain_ext.nn.models.SegmentModel` the graph holds the segment
decision the PyTorch model makes (windows of ``segment_size`` frames every
``hop`` frames plus one aligned to the end, the most confident segment or the
mean), with a number of windows that follows the length of the file.

The batch is one file. The waveform normalisation and, for group-norm front
ends (wav2vec2-base, HuBERT-base), the first convolution's normalisation over
time are exact only over one file's own samples: a padded batch would change
them. Run files one at a time (or several sessions side by side).

What is exported: classifiers over audio (:class:`UtteranceModel` and
:class:`SegmentModel` with a log-softmax, linear or mean-weight Bayesian head).
Text and fused models (Whisper decoding is not a graph), intensity regressors
(the loader is a classifier) and Bayesian heads that sample their weights at
every call are refused with the reason, before anything is written. Files
longer than the exported interface's ``max_chunk_seconds`` (30 s), which the
PyTorch interface encodes chunk by chunk, are refused by the loader.

The exporter is PyTorch's TorchScript-based one (``torch.onnx.export(...,
dynamo=False)``): it needs nothing beyond torch and onnx, while the
``torch.export``-based default of torch >= 2.9 needs ``onnxscript``. Each
export is checked: onnxruntime must give the PyTorch model's probabilities on
signals of three lengths (to 1e-4), or nothing is written.

The loader imports numpy, soundfile, torch/torchaudio (resampling) and
onnxruntime only, not speechbrain or transformers.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from speechbrain_ext.data.audio import TARGET_SAMPLE_RATE, audio_frames, load_audio
from speechbrain_ext.serving.calibration import ModelCalibration, calibrated_decision

OPSET = 17  # LayerNormalization is a single op from opset 17 on
EXPORTABLE = ("UtteranceModel", "SegmentModel")
CHECK_SECONDS = (0.7, 2.1, 3.7)  # the export check: shorter than a segment window, one window and a tail, several
CHECK_TOLERANCE = 1e-4


def refusal(model_class: str, activation: str | None = None, sampling_head: bool = False) -> str | None:
    """Why a model cannot be exported to ONNX, or None when it can (from class names, so a YAML node can be checked before anything is built).

    Example
    -------
    >>> refusal("SegmentModel", "LogSoftmax") is None
    True
    >>> refusal("FusedModel")
    'a FusedModel cannot be exported to ONNX: only audio classifiers (UtteranceModel, SegmentModel) can (text models need Whisper decoding; fused models are not one graph)'
    """
    if model_class not in EXPORTABLE:
        return (
            f"a {model_class} cannot be exported to ONNX: only audio classifiers ({', '.join(EXPORTABLE)}) can"
            " (text models need Whisper decoding; fused models are not one graph)"
        )
    if activation != "LogSoftmax":
        return f"a {model_class} with a {activation} output is not a classifier; the ONNX export and its loader cover classifiers (log-softmax outputs)"
    if sampling_head:
        return "the Bayesian head samples its weights at every call (mean_weights: False); an ONNX graph would freeze one draw"
    return None


def model_refusal(model: torch.nn.Module) -> str | None:
    """:func:`refusal` for a built model."""
    from speechbrain_ext.nn.bayesian import BayesianLinear

    sampling = any(isinstance(m, BayesianLinear) and not m.mean_weights for m in model.modules())
    activation = getattr(model, "activation", None)
    return refusal(type(model).__name__, None if activation is None else type(activation).__name__, sampling)


def segment_decision_graph(model, frames: torch.Tensor) -> torch.Tensor:
    """A :class:`SegmentModel`'s decision on one file's frames ``(1, time, dim)``, in operations a trace keeps dynamic.

    :class:`~speechbrain_ext.nn.pooling.SegmentPooling` decides in Python how
    many windows there are (a trace would freeze that number); here every
    candidate start ``0, hop, 2 hop, ...`` gets a window and a validity flag,
    and the end-aligned window goes last, valid when the regular ones stop
    short of the end. Windows are means of the frames (a cumulative sum in
    float64); the decision is :func:`~speechbrain_ext.nn.pooling.segment_decision`
    over the valid ones, as in the PyTorch model.

    Example
    -------
    >>> from speechbrain_ext.nn.models import SegmentModel
    >>> from speechbrain_ext.nn.pooling import MaskedMeanPooling, SegmentPooling
    >>> class Frames(torch.nn.Module):
    ...     def forward(self, wavs, lens):
    ...         return wavs.view(1, -1, 2), lens
    >>> models = [SegmentModel(Frames(), MaskedMeanPooling(), torch.nn.Linear(2, 3), torch.nn.LogSoftmax(dim=-1), SegmentPooling(4, 2), mode)
    ...           for mode in ("most_confident", "mean")]
    >>> all(torch.allclose(segment_decision_graph(model, f), model.from_frames(f).decision, atol=1e-6)
    ...     for model in models for f in (torch.randn(1, n, 2) for n in (3, 4, 7, 8, 11)))
    True
    """
    from speechbrain_ext.nn.pooling import segment_decision

    size, hop = model.segments.segment_size, model.segments.hop
    positions = torch.arange(frames.shape[1], device=frames.device)
    n = positions[-1:] + 1  # (1,) frames of the file
    length = n.clamp(max=size)  # a file shorter than one window is one segment of all its frames
    last = n - length  # start of the end-aligned window
    regular = positions[::hop]
    starts = torch.cat([regular, last])
    valid = torch.cat([regular <= last, last % hop != 0])
    cumulative = torch.cat([frames.new_zeros(1, 1, frames.shape[2]).double(), frames.double().cumsum(dim=1)], dim=1)
    ends = torch.minimum(starts + length, n)
    sums = cumulative.index_select(1, ends) - cumulative.index_select(1, starts)
    segments = (sums / length.double()).to(frames.dtype) * valid.to(frames.dtype)[None, :, None]
    scores = model.activation(model.head(segments))
    return segment_decision(scores, valid[None], model.decision_mode)


class _OneFileGraph(torch.nn.Module):
    """What is traced: one waveform ``(1, samples)`` -> the model's decision ``(1, n_classes)``."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.training = (
            False  # the wrapper only (eval() would recurse into the model); the exporter restores this mode afterwards
        )

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        from speechbrain_ext.nn.models import SegmentModel

        frames, frame_lens = self.model.encode(wav, torch.ones(1, device=wav.device))
        if isinstance(self.model, SegmentModel):
            return segment_decision_graph(self.model, frames)
        return self.model.from_frames(frames, frame_lens).decision


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module, attention_mask: bool = True):
    """Eval mode (and, with ``attention_mask=False``, no attention mask) inside; every module's own state back afterwards.

    One file is all real samples, so its attention mask is all ones and
    changes nothing; tracing without it keeps none of the mask code's
    Python decisions (which a trace would freeze) in the graph.
    """
    from speechbrain_ext.nn.encoders import SSLEncoder

    modes = [(m, m.training) for m in model.modules()]
    masks = [(m, m.use_attention_mask) for m in model.modules() if isinstance(m, SSLEncoder)]
    try:
        model.eval()
        for m, _ in masks:
            m.use_attention_mask = m.use_attention_mask and attention_mask
        yield
    finally:
        for m, training in modes:
            m.training = training
        for m, flag in masks:
            m.use_attention_mask = flag


def _session(model_bytes_or_path, intra_op_num_threads: int | None = None, providers=None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if intra_op_num_threads:
        options.intra_op_num_threads = int(intra_op_num_threads)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    source = model_bytes_or_path if isinstance(model_bytes_or_path, bytes) else str(model_bytes_or_path)
    return onnxruntime.InferenceSession(source, options, providers=providers or ["CPUExecutionProvider"])


def export_onnx(interface_or_model, path: str | os.PathLike, opset: int = OPSET, check: bool = True) -> Path:
    """Write the ONNX graph of an audio classifier: one waveform ``(1, samples)`` -> log-probabilities ``(1, n_classes)``.

    Arguments
    ---------
    interface_or_model : EmotionClassifier or nn.Module
        An interface (its ``model``; its ``max_chunk_seconds`` goes into the
        graph's metadata) or an :class:`UtteranceModel` / :class:`SegmentModel`.
    path : str or PathLike
        The ``.onnx`` file to write.
    opset : int
        ONNX opset.
    check : bool
        Compare onnxruntime with PyTorch on random signals of three lengths
        (:data:`CHECK_SECONDS`) and refuse to write a graph that differs by
        more than 1e-4 in probability.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        A model that cannot be exported (nothing is written).
    RuntimeError
        The check failed (nothing is written).
    """
    import onnx

    interface = interface_or_model if hasattr(interface_or_model, "mods") else None
    model = interface.model if interface is not None else interface_or_model
    reason = model_refusal(model)
    if reason:
        raise ValueError(reason)
    path = Path(path)
    device = next(model.parameters()).device
    graph = _OneFileGraph(model)
    buffer = io.BytesIO()
    with _eval_mode(model, attention_mask=False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about frozen Python values: the check below is the test
        torch.onnx.export(
            graph,
            (torch.randn(1, int(2.5 * TARGET_SAMPLE_RATE), device=device),),
            buffer,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed (see the module docstring)
            input_names=["wav"],
            output_names=["log_probs"],
            dynamic_axes={"wav": {1: "samples"}},
            opset_version=int(opset),
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    meta = {
        "sample_rate": str(TARGET_SAMPLE_RATE),
        "max_chunk_seconds": str(
            float(interface._hparam("max_chunk_seconds", 30.0)) if interface is not None else 30.0
        ),
        "model_class": type(model).__name__,
        "exporter": f"torch {torch.__version__} torch.onnx.export(dynamo=False), opset {opset}",
    }
    if interface is not None and hasattr(interface, "labels"):
        meta["labels"] = repr(list(interface.labels))
    if getattr(interface, "calibration", None) is not None:  # the graph answers without kNN: the run's entry
        meta.update(interface.calibration.metadata("run"))
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    data = proto.SerializeToString()
    if check:
        worst = check_graph(model, _session(data))
        if worst > CHECK_TOLERANCE:
            raise RuntimeError(
                f"the ONNX graph differs from the PyTorch model by {worst:.2e} in probability (> {CHECK_TOLERANCE}); nothing written"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def export_folder(folder: str | os.PathLike, opset: int = OPSET) -> Path:
    """Write ``model.onnx`` into an exported model folder (what ``hub export --onnx`` calls after the export).

    The folder's model is loaded with :class:`~speechbrain_ext.serving.inference.EmotionClassifier`
    (a temporary ``savedir``, so nothing is written beside it) and exported by :func:`export_onnx`.
    """
    import tempfile

    from speechbrain_ext.serving.inference import EmotionClassifier

    folder = Path(folder)
    if not (folder / "label_encoder.txt").is_file():
        raise ValueError(f"{folder}: no label_encoder.txt; the ONNX export covers classifiers")
    with tempfile.TemporaryDirectory() as savedir:
        interface = EmotionClassifier.from_hparams(source=str(folder.resolve()), savedir=savedir)
        return export_onnx(interface, folder / "model.onnx", opset=opset)


def check_graph(model, session, seconds=CHECK_SECONDS, seed: int = 0) -> float:
    """Largest probability difference between ``session`` and ``model`` over random signals of the given lengths."""
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    graph = _OneFileGraph(model)
    worst = 0.0
    with _eval_mode(model), torch.no_grad():
        for s in seconds:
            worst = max(
                worst,
                _difference(
                    model,
                    graph,
                    session,
                    0.1 * torch.randn(1, int(s * TARGET_SAMPLE_RATE), generator=generator),
                    device,
                ),
            )
    return worst


def _difference(model, graph, session, wav: torch.Tensor, device) -> float:
    expected = model(wav.to(device), torch.ones(1, device=device)).decision.exp().cpu().numpy()
    rewritten = graph(wav.to(device)).exp().cpu().numpy()  # the traceable segment decision, before ONNX
    got = np.exp(session.run(None, {"wav": wav.numpy()})[0])
    return max(float(np.abs(got - expected).max()), float(np.abs(rewritten - expected).max()))


def read_labels(label_file: str | os.PathLike) -> list[str]:
    """Labels in index order from a SpeechBrain ``CategoricalEncoder`` file (``'angry' => 0`` lines), read without speechbrain.

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "label_encoder.txt"
    >>> _ = path.write_text("'sad' => 1\\n'angry' => 0\\n================\\n'starting_index' => 0\\n")
    >>> read_labels(path)
    ['angry', 'sad']
    """
    text = Path(label_file).read_text(encoding="utf-8").split("================\n", 1)[0]
    pairs = {}
    for line in text.splitlines():
        if " => " in line:
            label, index = line.rsplit(" => ", 1)
            pairs[int(index)] = ast.literal_eval(label)
    return [pairs[i] for i in sorted(pairs)]


class OnnxEmotionClassifier:
    """An exported folder's ``model.onnx`` run by onnxruntime, answering as :class:`~speechbrain_ext.serving.inference.EmotionClassifier`.

    Arguments
    ---------
    folder : str or PathLike
        An exported model folder holding ``model.onnx`` (``hub export --onnx``) and ``label_encoder.txt``.
    intra_op_num_threads : int, optional
        onnxruntime threads (default: onnxruntime's choice, all cores).
    providers : list, optional
        onnxruntime execution providers (default: CPU).
    model_file : str
        The graph's file name in ``folder``.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        intra_op_num_threads: int | None = None,
        providers=None,
        model_file: str = "model.onnx",
    ):
        folder = Path(folder)
        if not (folder / model_file).is_file():
            raise FileNotFoundError(
                f"{folder / model_file}: not found; export the model with `python -m speechbrain_ext.hub export ... --onnx`"
            )
        self.session = _session(folder / model_file, intra_op_num_threads, providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.sample_rate = int(meta.get("sample_rate", TARGET_SAMPLE_RATE))
        self.max_chunk_seconds = float(meta.get("max_chunk_seconds", 30.0))
        label_file = folder / "label_encoder.txt"
        self.labels = read_labels(label_file) if label_file.is_file() else list(ast.literal_eval(meta["labels"]))
        self.calibration = ModelCalibration.from_metadata(meta)  # temperature and conformal scores, or None

    def _run(self, wav: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"wav": np.ascontiguousarray(wav, dtype=np.float32).reshape(1, -1)})[0]

    def _decide(self, log_probs: np.ndarray, **options):
        return calibrated_decision(self.calibration, torch.from_numpy(log_probs), self.labels, "run", **options)

    def classify_batch(self, wavs: torch.Tensor | np.ndarray, wav_lens: torch.Tensor | None = None):
        """Classify 16 kHz waveforms ``(batch, time)`` with relative lengths, each file on its own (exact for any encoder).

        Returns ``(out_prob, score, index, text_lab)`` as :meth:`EmotionClassifier.classify_batch`.
        """
        wavs = torch.as_tensor(wavs, dtype=torch.float32)
        if wavs.ndim == 1:
            wavs = wavs.unsqueeze(0)
        lens = torch.ones(len(wavs)) if wav_lens is None else torch.as_tensor(wav_lens)
        rows = [
            self._run(wav[: max(1, int(round(float(rel) * wavs.shape[1])))].numpy()) for wav, rel in zip(wavs, lens)
        ]
        return self._decide(np.concatenate(rows))

    def classify_file(
        self,
        path: str | os.PathLike,
        prediction_set: bool = False,
        abstain: float | None = None,
        alpha: float | None = None,
        calibrated: bool | None = None,
    ):
        """Classify one audio file (any sample rate and channel count, up to ``max_chunk_seconds``).

        ``prediction_set``, ``abstain``, ``alpha`` and ``calibrated`` work as in
        :meth:`EmotionClassifier.classify_file`, from the temperature and
        conformal scores in the graph's metadata (``calibration``; the
        ``run`` entry: the graph carries no kNN datastore, so no OOD flags).

        Returns
        -------
        tuple
            ``(out_prob (1, n_classes), score (1,), index (1,), text_lab [str])``, as :meth:`EmotionClassifier.classify_file`,
            then the list of one set with ``prediction_set``/``abstain``.
        """
        options = {"prediction_set": prediction_set, "abstain": abstain, "alpha": alpha, "calibrated": calibrated}
        frames, file_sr = audio_frames(path)
        if frames / file_sr > self.max_chunk_seconds:
            raise ValueError(
                f"{path}: {frames / file_sr:.1f} s is longer than {self.max_chunk_seconds:g} s; the PyTorch interface encodes such files"
                " chunk by chunk (EmotionClassifier.classify_file), the ONNX graph only whole files"
            )
        return self._decide(self._run(load_audio(path, self.sample_rate).numpy()), **options)


__all__ = ["OnnxEmotionClassifier", "export_folder", "export_onnx", "read_labels", "refusal", "segment_decision_graph"]
