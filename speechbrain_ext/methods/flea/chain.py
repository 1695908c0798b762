"""FLEA (flea_hubert): frame-level emotional state alignment, one fold as a chain of resumable stages.

    python recipes/IEMOCAP/train_flea.py recipes/IEMOCAP/hparams/flea.yaml --data_folder=/data/IEMOCAP_full_release --fold=1

1. **tapt**: k-means (``tapt_clusters``, 500) on the layer-``tapt_layer``
   (9) frames of the pretrained HuBERT over the fold's training audio, or
   fairseq's k-means model (``tapt_kmeans_model``); masked-prediction
   pre-training on those targets (TAPT-HuBERT); SER fine-tuning of it with
   average pooling (``tapt_finetune_hparams``, the paper's TAPT row).
2. **pseudo_labels**: layer-``label_layer`` (9; 6 and 11 in Table 1) frames
   of the TAPT-fine-tuned encoder over the fold's training and validation
   audio only, never the test speakers' (what the paper holds against
   P-TAPT), clustered into ``label_clusters`` (50; 100, 150) pseudo-emotion
   labels; frames streamed to disk in shards, the k-means model and the
   per-frame labels saved, their frame rate checked against the encoder's.
3. **cpt**: masked-prediction pre-training of the pretrained HuBERT
   (``hubert_hub``) on the pseudo-labels (masked frames only): CPT-HuBERT,
   a Hugging Face folder.
4. **finetune**: SER fine-tuning of CPT-HuBERT with attention pooling
   (``finetune_hparams``; ``finetune_pooling: mean`` gives the average-pooling
   ablation). Both fine-tuning YAMLs must have ``pooling_type``, which the
   chain sets.

Every stage writes its outputs and is skipped when they exist: the TAPT
stage below ``fold_folder`` (shared by every layer, cluster count and
pooling of the fold), pseudo-labels and CPT below
``fold_folder/L<layer>_k<clusters>/`` (shared by both poolings), the final
fine-tuning and the reports in ``output_folder``. Masked-prediction
pre-training resumes from its last step checkpoint
(:mod:`speechbrain_ext.methods.flea.pretraining`). The fine-tuning stages are the
corpus's own recipe runs (``train.py`` with the stage's YAML and
``--ssl_hub`` set to the stage's encoder), resumable as any. The final
stage's reports are copied to the run folder, so ``run_folds.py`` tabulates
FLEA runs as any other.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from speechbrain_ext.methods.flea.frame_labels import assign_labels, extract_frames, fit_kmeans, load_labels
from speechbrain_ext.methods.flea.pretraining import PRETRAINING_FILE, manifest_items
from speechbrain_ext.methods.flea.trainer import pretrain
from speechbrain_ext.training.folds import CHAIN_DONE, recipe_run_finished
from speechbrain_ext.utils.fileio import atomic_write_json, read_done_marker, write_done_marker

logger = logging.getLogger(__name__)
REPORT_FILES = (
    "test_report.json",
    "test_report.md",
    "test_predictions.csv",
    "valid_report.json",
    "valid_report.md",
    "valid_predictions.csv",
)


def export_encoder(run_folder: str | Path, source: str | Path, out: str | Path) -> Path:
    """The fine-tuned HuBERT of a recipe run (its selected checkpoint) as a Hugging Face folder, written atomically."""
    from transformers import AutoFeatureExtractor, HubertModel

    from speechbrain_ext.training.tasks import best_checkpoint

    checkpoint = best_checkpoint(Path(run_folder) / "save")
    if checkpoint is None:
        raise FileNotFoundError(f"{run_folder}: no selected checkpoint to take the encoder from")
    prefix = "encoder.ssl_model.model."
    state = {
        k[len(prefix) :]: v
        for k, v in torch.load(checkpoint.path / "model.ckpt", map_location="cpu").items()
        if k.startswith(prefix)
    }
    model = HubertModel.from_pretrained(str(source))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if k != "masked_spec_embed"]:
        raise ValueError(
            f"{checkpoint.path}: its encoder does not match {source} (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    AutoFeatureExtractor.from_pretrained(str(source)).save_pretrained(tmp)
    record = (
        json.loads((Path(source) / PRETRAINING_FILE).read_text()) if (Path(source) / PRETRAINING_FILE).is_file() else {}
    )
    atomic_write_json(
        tmp / PRETRAINING_FILE,
        {
            "base_model": record.get("base_model", str(source)),
            "fine_tuned_in": str(run_folder),
            "checkpoint": checkpoint.path.name,
        },
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


class FleaChain:
    """The four stages of one fold (see the module docstring).

    Arguments
    ---------
    values : dict
        The resolved plain values of the FLEA YAML.
    prepare : callable
        The corpus's ``prepare(values)`` (writes the fold's manifests into ``prep_folder``).
    train_script : Path
        The corpus's ``train.py``, which runs the fine-tuning stages.
    device : str
        Where pre-training and feature extraction run (fine-tuning gets ``--device`` too).
    progress : bool
        Progress bars.
    """

    STAGES = ("tapt", "tapt_finetune", "pseudo_labels", "cpt", "finetune")

    def __init__(
        self,
        values: dict,
        prepare: Callable[[dict], None],
        train_script: Path,
        device: str = "cpu",
        progress: bool = True,
    ):
        self.values, self.prepare, self.train_script, self.device, self.progress = (
            values,
            prepare,
            Path(train_script),
            device,
            progress,
        )
        self.out = Path(str(values["output_folder"]))  # this run's fine-tuning and reports
        self.fold = Path(str(values["fold_folder"]))  # TAPT: shared by every layer, cluster and pooling of the fold
        self.labelling = (
            self.fold / f"L{values['label_layer']}_k{values['label_clusters']}"
        )  # pseudo-labels and CPT: shared by both poolings
        self.summary: dict = {}

    # -- helpers
    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def manifest(self, split: str) -> Path:
        return Path(str(self.values["prep_folder"])) / f"{split}.json"

    def items(self, *splits: str) -> list[dict]:
        return manifest_items([self.manifest(s) for s in splits], self.values["data_folder"])

    def say(self, stage: str, text: str) -> None:
        print(f"== FLEA {stage}: {text}", flush=True)

    def pretraining_options(self, stage: str) -> tuple[dict, dict]:
        v = self.values
        updates, warmup = {
            "tapt": (v["tapt_updates"], v["tapt_warmup_updates"]),
            "cpt": (v["cpt_updates"], v["cpt_warmup_updates"]),
        }[stage]
        model = {
            "mask_prob": v["mask_prob"],
            "mask_length": v["mask_length"],
            "proj_dim": v["proj_dim"],
            "temperature": v["temperature"],
        }
        trainer = {
            "max_updates": updates,
            "warmup_updates": warmup,
            "lr": v["pretrain_lr"],
            "max_batch_seconds": v["max_batch_seconds"],
            "num_buckets": v["num_buckets"],
            "checkpoint_every": v["checkpoint_every"],
            "seed": v["seed"],
            "device": self.device,
        }
        return model, trainer

    def frames(self, source: str, layer: int, items: Sequence[dict], folder: Path) -> dict:
        """Layer frames of ``source`` over ``items`` into ``folder`` (shards); the encoder is loaded only when frames are missing."""
        from speechbrain_ext.nn.encoders import SSLEncoder

        index = folder / "index.json"
        if index.is_file() and json.loads(index.read_text()).get("complete"):
            return json.loads(index.read_text())
        encoder = SSLEncoder(source, save_path=str(self.fold / "hub_cache"), layer=int(layer), freeze=True).to(
            self.device
        )
        return extract_frames(
            encoder, items, folder, shard_frames=int(self.values["shard_frames"]), progress=self.progress
        )

    def labels(self, kmeans, frames: Path, out: Path) -> dict:
        """Every stored frame's cluster, or the labels written earlier."""
        return load_labels(out) if out.is_file() else assign_labels(kmeans, frames, out)

    def kmeans(self, folder: Path, n_clusters: int, model_file: Path):
        """Fit (or reload) the k-means of ``folder``'s frames, saved as a joblib file."""
        import joblib

        if model_file.is_file():
            return joblib.load(model_file)
        kmeans = fit_kmeans(
            folder, n_clusters, seed=int(self.values["seed"]), max_fit_frames=int(self.values["max_fit_frames"])
        )
        model_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = model_file.with_suffix(".tmp")
        joblib.dump(kmeans, tmp)
        tmp.replace(model_file)
        return kmeans

    def finetune(self, stage: str, folder: Path, hparams: str, ssl_hub: Path, pooling: str) -> dict:
        """A recipe run of the corpus (``train.py hparams``) in ``folder`` on ``ssl_hub`` with ``pooling``; skipped when finished."""
        if recipe_run_finished(folder):
            self.say(stage, f"done, skipped ({folder})")
        else:
            v = self.values
            cmd = [
                sys.executable,
                str(self.train_script),
                str(hparams),
                f"--data_folder={v['data_folder']}",
                f"--output_folder={folder}",
            ]
            cmd += [f"--{key}={v[key]}" for key in self.values["fold_keys"]]
            cmd += [f"--prep_folder={v['prep_folder']}", "--skip_prep=True"]  # the chain's own manifests of the fold
            cmd += [
                f"--ssl_hub={ssl_hub}",
                f"--encoder_dim={v['encoder_dim']}",
                f"--pooling_type={pooling}",
                f"--device={self.device}",
            ]
            cmd += [
                f"--{key}={json.dumps(value) if isinstance(value, (dict, list)) else value}"
                for key, value in (v.get("finetune_overrides") or {}).items()
            ]
            cmd += ["--noprogressbar"] if not self.progress else []
            self.say(
                stage, f"{'resuming' if (folder / 'save').is_dir() else 'training'} in {folder}\n   $ {shlex.join(cmd)}"
            )
            if subprocess.run(cmd).returncode != 0:
                raise SystemExit(f"FLEA {stage} failed; run the same command again to resume it")
        return json.loads((folder / "test_report.json").read_text())

    def pretrained(self, stage: str, out: Path, announce: bool = True) -> bool:
        """Whether the stage's pre-trained HuBERT exists; if so its record goes into the summary."""
        if not (out / PRETRAINING_FILE).is_file():
            return False
        if announce:
            self.say(stage, f"done, skipped ({out})")
        self.summary[stage] = json.loads((out / PRETRAINING_FILE).read_text())
        return True

    # -- stages
    def run(self) -> dict:
        """Run (or skip) every stage; return the summary (also ``flea_summary.json``)."""
        v = self.values
        if read_done_marker(self.path(CHAIN_DONE)) is not None:
            self.say("chain", f"finished earlier, every stage skipped ({self.out})")
            return json.loads(self.path("flea_summary.json").read_text())
        self.out.mkdir(parents=True, exist_ok=True)
        self.fold.mkdir(parents=True, exist_ok=True)
        if not v.get("skip_prep", False):
            self.prepare(v)
        tapt = self.tapt()
        self.summary["tapt_finetune"] = self.finetune(
            "tapt_finetune", self.fold / "tapt_finetune", v["tapt_finetune_hparams"], tapt, v["tapt_pooling"]
        )
        tapt_encoder = self.fold / "tapt_finetune_hubert"
        if not (tapt_encoder / PRETRAINING_FILE).is_file():
            export_encoder(self.fold / "tapt_finetune", tapt, tapt_encoder)
        labels_file = self.pseudo_labels(tapt_encoder)
        cpt = self.cpt(labels_file)
        self.summary["finetune"] = report = self.finetune(
            "finetune", self.path("finetune"), v["finetune_hparams"], cpt, v["finetune_pooling"]
        )
        for name in REPORT_FILES:  # the chain's result is the last stage's, where run_folds looks for it
            if self.path("finetune", name).is_file():
                shutil.copyfile(self.path("finetune", name), self.path(name))
        atomic_write_json(self.path("flea_summary.json"), self.summary)
        write_done_marker(self.path(CHAIN_DONE), {"stages": list(self.STAGES), "test_UAR": report.get("UAR")})
        return self.summary

    def tapt(self) -> Path:
        """Stage 1: TAPT-HuBERT (masked prediction on k-means targets of the pretrained model's frames)."""
        v, folder = self.values, self.fold / "tapt"
        out = folder / "hubert"
        if self.pretrained("tapt", out):
            return out
        items = self.items("train")
        frames = self.frames(v["hubert_hub"], v["tapt_layer"], items, folder / "frames")
        if v.get("tapt_kmeans_model"):
            import joblib

            kmeans = joblib.load(v["tapt_kmeans_model"])
            self.say("tapt", f"targets from {v['tapt_kmeans_model']} ({kmeans.n_clusters} clusters)")
        else:
            kmeans = self.kmeans(folder / "frames", int(v["tapt_clusters"]), folder / "kmeans.joblib")
        n_clusters = int(kmeans.n_clusters)
        labels = self.labels(kmeans, folder / "frames", folder / "labels.npz")
        model_options, trainer_options = self.pretraining_options("tapt")
        self.say(
            "tapt",
            f"masked-prediction pre-training of {v['hubert_hub']} on {len(items)} training utterances, {n_clusters} clusters",
        )
        record = {
            "stage": "tapt",
            "layer": int(v["tapt_layer"]),
            "kmeans": str(v.get("tapt_kmeans_model") or folder / "kmeans.joblib"),
        }
        pretrain(
            v["hubert_hub"],
            items,
            labels,
            n_clusters,
            folder / "pretraining",
            out,
            frames["frame_rate"],
            model_options=model_options,
            trainer_options=trainer_options,
            progress=self.progress,
            record=record,
        )
        self.pretrained("tapt", out, announce=False)
        return out

    def pseudo_labels(self, encoder: Path) -> Path:
        """Stage 2: frame-level pseudo-emotion labels from the TAPT-fine-tuned encoder, training and validation audio only."""
        v, folder = self.values, self.labelling / "pseudo_labels"
        labels_file, info_file = folder / "labels.npz", folder / "pseudo_labels.json"
        if info_file.is_file():
            self.say("pseudo_labels", f"done, skipped ({labels_file})")
            self.summary["pseudo_labels"] = json.loads(info_file.read_text())
            return labels_file
        manifests = [self.manifest("train"), self.manifest("valid")]  # never the test speakers'
        items = manifest_items(manifests, v["data_folder"])
        frames = self.fold / f"L{v['label_layer']}_frames"  # shared by every cluster count of this layer
        index = self.frames(str(encoder), v["label_layer"], items, frames)
        kmeans = self.kmeans(frames, int(v["label_clusters"]), folder / "kmeans.joblib")
        labels = self.labels(kmeans, frames, labels_file)
        info = {
            "encoder": str(encoder),
            "layer": int(v["label_layer"]),
            "clusters": int(v["label_clusters"]),
            "manifests": [str(m) for m in manifests],
            "utterances": len(labels),
            "frames": int(sum(len(x) for x in labels.values())),
            "frame_rate": index["frame_rate"],
            "frames_folder": str(frames),
        }
        atomic_write_json(info_file, info)
        self.summary["pseudo_labels"] = info
        self.say(
            "pseudo_labels",
            f"{info['frames']} frames of {info['utterances']} utterances in {info['clusters']} clusters (layer {info['layer']})",
        )
        return labels_file

    def cpt(self, labels_file: Path) -> Path:
        """Stage 3: CPT-HuBERT, masked-prediction pre-training of the pretrained HuBERT on the pseudo-labels."""
        v, folder = self.values, self.labelling / "cpt"
        out = folder / "hubert"
        if self.pretrained("cpt", out):
            return out
        labels = load_labels(labels_file)
        info = json.loads((labels_file.parent / "pseudo_labels.json").read_text())
        train, valid = self.items("train"), self.items("valid")
        model_options, trainer_options = self.pretraining_options("cpt")
        self.say(
            "cpt",
            f"masked-prediction pre-training of {v['hubert_hub']} on {info['clusters']} pseudo-emotion labels ({len(train)} utterances)",
        )
        pretrain(
            v["hubert_hub"],
            train,
            labels,
            info["clusters"],
            folder / "pretraining",
            out,
            info["frame_rate"],
            valid_items=valid,
            valid_labels=labels,
            model_options=model_options,
            trainer_options=trainer_options,
            progress=self.progress,
            record={"stage": "cpt", "labels": str(labels_file), "layer": info["layer"]},
        )
        self.pretrained("cpt", out, announce=False)
        return out


def main(prepare: Callable[[dict], None], train_script: Path, argv: Sequence[str] | None = None) -> dict:
    """Command line of a corpus's ``train_flea.py``: ``FLEA_YAML --data_folder=... [--fold=k] [--key=value ...] [--device=cuda]``."""
    import speechbrain as sb

    from speechbrain_ext.training.recipe import check_inputs, check_overrides
    from speechbrain_ext.utils.hyperparams import plain_values

    hparams_file, run_opts, overrides = sb.parse_arguments(list(sys.argv[1:] if argv is None else argv))
    try:  # bad input: one line, before any model is loaded
        check_overrides(hparams_file, overrides, extra=())  # the chain reads only the FLEA YAML's keys
        values = plain_values(hparams_file, overrides)
        check_inputs(values, hparams_file)
        for key in ("tapt_finetune_hparams", "finetune_hparams"):  # relative to the FLEA YAML
            path = Path(hparams_file).parent / str(values[key])
            if not path.is_file():
                raise FileNotFoundError(f"{hparams_file}: {key} {str(path)!r} does not exist")
            values[key] = str(path)
        if values.get("tapt_kmeans_model") and not Path(str(values["tapt_kmeans_model"])).is_file():
            raise FileNotFoundError(f"{hparams_file}: tapt_kmeans_model {values['tapt_kmeans_model']!r} does not exist")
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    chain = FleaChain(
        values,
        prepare,
        train_script,
        device=run_opts.get("device") or "cpu",
        progress=not run_opts.get("noprogressbar", False),
    )
    return chain.run()
