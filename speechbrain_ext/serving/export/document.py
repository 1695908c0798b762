"""The inference ``hyperparams.yaml``, built from the training YAML's own nodes, and the check that it stands alone.

:class:`Exporter` makes a run's model node loadable offline (each encoder's Hugging Face configuration
inline, tokenizers and Whisper packed beside it); :func:`inference_document` wraps it with the label set,
the transcriber, the kNN datastore and the pretrainer; :func:`check_standalone` refuses a folder that would
need the training machine.
"""

from __future__ import annotations

import json
from pathlib import Path

from speechbrain_ext.nn.encoders import export_config
from speechbrain_ext.serving.export.nodes import SSL_ENCODER, TEXT_ENCODER, nodes_of, strings_of
from speechbrain_ext.serving.export.run import RunModel
from speechbrain_ext.utils.fileio import is_local_path
from speechbrain_ext.utils.hyperparams import load_yaml, plain_values

INFERENCE_HEADER = """\
# Inference hyperparameters exported by the recipe collection's `hub export` from a training run.
# `model` is the run's own model node: the module that was trained and evaluated.
# Its encoders are built from the configurations below (no weights are fetched);
# every weight comes from model.ckpt, tokenizers and Whisper from their packed files.
# The classes named `custom_interface.<Name>` are in this folder's custom_interface.py:
#
#   from speechbrain.inference.interfaces import foreign_class
#   model = foreign_class(source="path/or/org-model", pymodule_file="custom_interface.py", classname="{interface}")
"""


class Exporter:
    """Turns run model nodes into loadable, stand-alone nodes; packs what they need beside them.

    Every SSL encoder gets its Hugging Face configuration inline; every text
    encoder its configuration inline and its tokenizer packed
    (``text_tokenizer_<k>.ckpt``); a text-reading model gets the training
    run's Whisper packed (``whisper.ckpt``) with its decoding options.
    """

    def __init__(self, out: Path):
        self.out, self.loadables, self.base_models, self.transcribe = out, {}, [], None

    def encoders(self, node) -> None:
        for encoder in nodes_of(node, SSL_ENCODER):
            if "config" not in encoder:
                config, extractor = export_config(
                    str(encoder["source"]),
                    cache_dir=str(encoder.get("save_path")) if encoder.get("save_path") else None,
                )
                encoder["config"], encoder["feature_extractor_config"] = config, extractor
            self._base(encoder)
            for key in ("save_path", "freeze_feature_extractor", "apply_spec_augment"):
                encoder.pop(key, None)
            encoder["freeze"] = True
        from transformers import AutoConfig, AutoTokenizer

        from speechbrain_ext.data.packaging import save_tokenizer
        from speechbrain_ext.nn.text import usable_positions

        for k, encoder in enumerate(nodes_of(node, TEXT_ENCODER)):
            source, cache = str(encoder["source"]), str(encoder.get("save_path")) if encoder.get("save_path") else None
            if "config" not in encoder:
                config = AutoConfig.from_pretrained(source, cache_dir=cache)
                limit = usable_positions(config, AutoTokenizer.from_pretrained(source, cache_dir=cache))
                encoder["max_length"] = min(int(encoder["max_length"]), limit) if encoder.get("max_length") else limit
                encoder["config"] = {key: value for key, value in config.to_dict().items() if not key.startswith("_")}
            name = f"text_tokenizer_{k}"
            save_tokenizer(source, cache, self.out / f"{name}.ckpt")
            self._base(encoder)
            encoder.pop("save_path", None)
            encoder["freeze"] = True
            encoder.yaml_set_anchor(name, always_dump=True)
            self.loadables[name] = encoder

    def _base(self, encoder) -> None:
        from speechbrain_ext.methods.flea.pretraining import base_model_of

        source = encoder.get("source")
        base = (
            None if source is None else base_model_of(source)
        )  # a folder pre-trained here (FLEA's CPT-HuBERT) names its hub model
        encoder["source"] = base
        if base and base not in self.base_models:
            self.base_models.append(base)

    def whisper(self, run: RunModel, override: str | None = None) -> None:
        """Pack the Whisper model the run's transcripts came from (or ``override``), with its decoding options."""
        from speechbrain_ext.data.packaging import local_folder, pack_folder

        options = dict(run.values.get("transcribe") or {})
        source = override or options.get("source")
        if not source:
            raise ValueError(
                f"{run.folder}: the model reads transcripts but the run names no Whisper model (transcribe: source)"
            )
        try:
            folder = local_folder(str(source), options.get("save_path") if not override else None)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{err}; a run that imported its transcripts (transcripts_file) never loaded Whisper: pass --whisper with a local Whisper folder"
            ) from None
        pack_folder(folder, self.out / "whisper.ckpt")
        self.transcribe = {
            "language": options.get("language"),
            "beam_size": int(options.get("beam_size", 1)),
            "chunk_seconds": float(options.get("chunk_seconds", 30.0)),
            "batch_size": int(options.get("batch_size", 8)),
        }


def inference_document(
    model, task, model_inputs: list[str], exporter: Exporter, knn: bool = False, calibration: bool = False
) -> dict:
    """The inference YAML document: the model node, the task's label set, the transcriber, the kNN datastore, the calibration and the pretrainer."""
    classification = "label_encoder_file" in task
    reads_text = "transcript" in model_inputs
    lines = ["sample_rate: 16000", "max_chunk_seconds: 30  # longer files are encoded chunk by chunk"]
    lines += [f"model_inputs: [{', '.join(model_inputs)}]"]
    if classification:
        lines += ["label_encoder: &label_encoder !new:speechbrain.dataio.encoder.CategoricalEncoder"]
    if reads_text:
        lines += ["transcriber: &transcriber !new:speechbrain_ext.data.transcribe.Transcriber"]
        lines += [f"    {k}: {json.dumps(v)}" for k, v in exporter.transcribe.items()]
    if knn:
        lines += [
            "knn: &knn !new:speechbrain_ext.nn.knn.KNNDatastore  # supcon_knn: p = alpha p_knn + (1 - alpha) p_model, k and alpha tuned on valid"
        ]
    if calibration:
        lines += [
            "calibration: &calibration !new:speechbrain_ext.serving.calibration_checkpoint.PretrainedCalibration  # the run's "
            "calibration.json (fitted on valid): temperature, conformal scores, OOD thresholds"
        ]
    lines += ["modules: {}", "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer", "    loadables:"]
    lines += ["        label_encoder: *label_encoder"] if classification else []
    lines += ["        knn: *knn"] if knn else []
    lines += ["        calibration: *calibration"] if calibration else []
    lines += ["        whisper: *transcriber"] if reads_text else []
    doc = load_yaml("\n".join(lines) + "\n")
    if classification:
        doc.insert(0, "n_classes", int(task["n_classes"]))
    else:
        doc.insert(0, "output_names", list(task["output_names"]))
    model.yaml_set_anchor("model", always_dump=True)
    doc.insert(len(doc) - 2, "model", model)
    doc["modules"]["model"] = model
    if reads_text:
        doc["modules"]["transcriber"] = doc["transcriber"]
    if doc["pretrainer"]["loadables"] is None:  # a regressor of audio: nothing but the model to load
        doc["pretrainer"]["loadables"] = load_yaml("{}")
    loadables = doc["pretrainer"]["loadables"]
    loadables.insert(0, "model", model)
    for name, node in exporter.loadables.items():
        loadables[name] = node
    return doc


def check_standalone(folder: str | Path) -> dict:
    """Check that an exported folder loads without the training machine; return its plain values.

    Raises ``ValueError`` naming the problem: an encoder without its
    configuration (it would download the base model at load time), a text
    model without its packed tokenizer or Whisper, or any local path in
    ``hyperparams.yaml``.
    """
    folder = Path(folder)
    values = plain_values(folder / "hyperparams.yaml")
    for kind in (SSL_ENCODER, TEXT_ENCODER):
        for encoder in nodes_of(values.get("model"), kind):
            if "config" not in encoder:
                raise ValueError(
                    f"{folder}/hyperparams.yaml: the encoder has no configuration; loading would fetch {encoder.get('source')!r} (re-export with this version)"
                )
            if encoder.get("source") is not None and is_local_path(encoder["source"]):
                raise ValueError(
                    f"{folder}/hyperparams.yaml: the encoder names the local path {encoder['source']!r} of the training machine"
                )
    local = sorted({text for text in strings_of(values) if text.startswith(("/", "~"))})
    if local:
        raise ValueError(f"{folder}/hyperparams.yaml: names the local path(s) {local[:3]} of the training machine")
    needed = [
        f"{name}.ckpt"
        for name in values.get("pretrainer", {}).get("loadables", {})
        if name not in ("model", "label_encoder")
    ]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise ValueError(
            f"{folder}: {', '.join(missing)} missing (the packed tokenizer or Whisper model); re-export the run"
        )
    return values
