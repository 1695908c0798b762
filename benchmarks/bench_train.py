"""Training throughput of the recipes against a bare PyTorch loop on the same batches, with the data pipeline alone.

Three comparisons, measured in one run on one machine:

1. **Training steps.** The real ``Brain.fit`` of a recipe YAML
   (``recipes/RAVDESS/hparams/baseline.yaml``: ``UtteranceBrain``;
   ``triplet_seg.yaml``: ``SegmentTripletBrain``) with its own loader
   options, against a bare loop written here: the transformers
   ``Wav2Vec2Model`` (a copy of the recipe's: same weights, config and
   attention implementation, frozen CNN, training mode), per-utterance input normalisation, attention mask, output
   standardisation, masked mean pooling, linear head, log-softmax NLL, the
   two Adam optimisers at the YAML's rates; for triplet_seg the bare loop
   runs a copy of the YAML's model and losses in the same plain loop. Both
   see the same batches in the same order (the recipe draws them with its
   own loader options and sampler; beside each recipe step, before it on
   odd steps and after it on even ones, the bare loop pads the same
   utterances from signals decoded before timing and takes its step), the same precision and the same thread count. The
   step-by-step alternation makes load from other processes hit both
   alike. Figures are audio-seconds per second over the epochs after the
   first (a warm-up: the pipeline measurement has already filled the audio cache), as totals and as the median
   over steps of each step's ratio (bare step time over the recipe's step
   time with its wait for data: robust to bursts of load from other
   processes). The last line is ``ratio <recipe/bare>``, that median, for
   the baseline.
2. **Data pipeline alone.** One process (what each loader worker does):
   files/s and audio-seconds/s of the recipe's ``sig`` pipeline for 48 kHz
   sources (decode + resample), for the same sources through the 16 kHz
   cache, and for 16 kHz sources; as a multiple of what the fastest bare
   step consumes. And the share of the recipe's training stage the step
   waited for its next batch.
3. **Whole epoch** (train + valid + checkpoint) against the training stage alone.

Encoder: with ``--size small`` (the CPU default) a wav2vec2 with the base
model's convolution kernels and strides but 128 channels, 4 transformer
layers of 256 dimensions (4 heads, 1024 feed-forward), so that loop
overhead shows; ``--size base`` the wav2vec2-base architecture
(``Wav2Vec2Config()``, the GPU default); ``--size tiny`` the test suite's
tiny model (smoke runs). Random weights: nothing is downloaded.

Audio: the real RAVDESS sample (48 kHz) when ``/work/shared/data/ravdess_sample``
or ``--corpus`` exists, else voice-like 48 kHz signals of 3-4 s in
RAVDESS's layout; 16 kHz copies are written for the pipeline figure.

Usage: ``python benchmarks/bench_train.py [--threads 2] [--epochs 3] [--size small] [--device cuda] [--precision bf16]``
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]
DEFAULT_CORPUS = Path("/work/shared/data/ravdess_sample")
YAMLS = {"baseline": "UtteranceBrain", "triplet_seg": "SegmentTripletBrain"}
SIZES = {
    "small": {
        "conv_dim": (128,) * 7,
        "hidden_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
    },
    "base": {},
}


def write_corpus(folder: Path, corpus: Path | None, n_files: int) -> tuple[Path, Path]:
    """Corpus folders at 48 kHz and 16 kHz (same utterances), RAVDESS file names. Real files when given."""
    from speechbrain_ext.data.audio import load_audio, resample

    high, low = folder / "48k", folder / "16k"
    sources = sorted(corpus.rglob("*.wav"))[:n_files] if corpus else []
    rng = np.random.default_rng(0)
    for index in range(len(sources) or n_files):
        if sources:
            name, signal = sources[index].name, load_audio(sources[index], 48000)
        else:
            from bench_stream import voiced

            emotion = 1 + index % 4
            name = f"03-01-{emotion:02d}-01-{1 + index // 4 % 2:02d}-{1 + index // 8 % 2:02d}-{1 + index // 16:02d}.wav"
            signal = resample(torch.from_numpy(voiced(rng.uniform(3.0, 4.0), seed=index)), 16000, 48000)
        for root, rate in ((high, 48000), (low, 16000)):
            root.mkdir(parents=True, exist_ok=True)
            soundfile.write(root / name, resample(signal, 48000, rate).numpy(), rate, subtype="PCM_16")
    return high, low


def write_manifests(data_folder: Path, out: Path) -> dict[str, str]:
    """train/valid/test manifests (valid = test = every fifth file); emotion from the file name."""
    from speechbrain_ext.data.audio import audio_frames

    entries = {}
    for path in sorted(data_folder.glob("*.wav")):
        frames, rate = audio_frames(path)
        entries[path.stem] = {"wav": str(path), "duration": frames / rate, "emo": path.stem.split("-")[2]}
    ids = list(entries)
    train = [i for i in ids if i not in ids[::5]]
    known = {entries[i]["emo"] for i in train}
    held_out = [i for i in ids[::5] if entries[i]["emo"] in known]
    splits = {"train": train, "valid": held_out, "test": held_out}
    out.mkdir(parents=True, exist_ok=True)
    manifests = {}
    for split, keys in splits.items():
        manifests[split] = str(out / f"{split}.json")
        Path(manifests[split]).write_text(json.dumps({k: entries[k] for k in keys}), encoding="utf-8")
    return manifests


def write_encoder(folder: Path, size: str) -> str:
    """An encoder folder in Hugging Face format with random weights."""
    import transformers

    from speechbrain_ext.testing.tiny_models import write_tiny_ssl

    if size == "tiny":
        return write_tiny_ssl(folder)
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**SIZES[size])).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False).save_pretrained(folder)
    return str(folder)


def recipe_brain(yaml: str, encoder: str, manifests: dict, data_folder: Path, out: Path, args):
    """The YAML's Brain and datasets, built as ``recipes/RAVDESS/train.py`` builds them."""
    from hyperpyyaml import load_hyperpyyaml

    from speechbrain_ext.training import brains
    from speechbrain_ext.training.recipe import recipe_datasets_of

    labels = {e["emo"] for e in json.loads(Path(manifests["train"]).read_text(encoding="utf-8")).values()}
    overrides = {
        "data_folder": str(data_folder),
        "output_folder": str(out),
        "skip_prep": True,
        **{f"{split}_annotation": path for split, path in manifests.items()},
        "ssl_hub": encoder,
        "encoder_dim": __import__("transformers").AutoConfig.from_pretrained(encoder).hidden_size,
        "n_classes": len(labels),
        "batch_size": args.batch_size,
        "number_of_epochs": args.epochs,
        **({} if args.audio_cache else {"audio_cache": False}),
    }
    with open(REPO / "recipes" / "RAVDESS" / "hparams" / f"{yaml}.yaml", encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle, overrides, overrides_must_match=False)  # audio_cache: a runner key
    run_opts = {"device": args.device, "noprogressbar": True, "precision": args.precision}
    brain = getattr(brains, YAMLS[yaml])(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    return brain, hparams, recipe_datasets_of(hparams)


class StepClock:
    """Times a Brain's training stage, its waits for data and its checkpoints, and runs the bare step of each batch beside the recipe's.

    The wrappers go around the Brain's own methods; the bare step's time is
    taken out of the recipe's (step-by-step interleaving: load from other
    processes hits both alike); the bare step goes first on odd steps, second on even ones.
    """

    def __init__(self, brain, bare, index_of: dict):
        self.stage_end, self.waits, self.bare, self.checkpoint, self.last, self.steps = [], [], [], [], None, 0
        self.pairs = []  # per epoch: (bare, recipe) seconds of each step
        fit_batch, on_stage_end, on_stage_start = brain.fit_batch, brain.on_stage_end, brain.on_stage_start
        save = brain.checkpointer.save_and_keep_only

        def timed_fit_batch(batch):
            began = time.perf_counter()
            self.waits[-1] += began - self.last
            indices = [[index_of[utt] for utt in batch.id]]
            self.steps += 1
            bare_first = self.steps % 2  # alternate, so that neither always meets a new shape first
            bare_s = bare.epoch(indices) if bare_first else 0.0
            step_began = time.perf_counter()
            loss = fit_batch(batch)
            recipe_s = time.perf_counter() - step_began
            bare_s = bare_s or bare.epoch(indices)
            self.bare[-1] += bare_s
            self.pairs[-1].append((bare_s, recipe_s + began - self.last))  # the recipe's step with its wait for data
            self.last = time.perf_counter()
            return loss

        def timed_start(stage, epoch=None):
            on_stage_start(stage, epoch)
            if stage.name == "TRAIN":
                self.waits.append(0.0)
                self.bare.append(0.0)
                self.pairs.append([])
                self.last = time.perf_counter()

        def timed_end(stage, loss, epoch=None):
            if stage.name == "TRAIN":
                self.stage_end.append(time.perf_counter())
            on_stage_end(stage, loss, epoch)

        def timed_save(*args, **kwargs):
            began = time.perf_counter()
            save(*args, **kwargs)
            self.checkpoint.append(time.perf_counter() - began)

        brain.fit_batch, brain.on_stage_start, brain.on_stage_end = timed_fit_batch, timed_start, timed_end
        brain.checkpointer.save_and_keep_only = timed_save


class BareLoop:
    """The minimal training loop: the same model math in plain torch, signals already decoded."""

    def __init__(self, brain, hparams, signals: list, targets: list, device: str, precision: str):
        recipe_model = brain.model
        encoder = recipe_model.encoder
        self.plain = type(recipe_model).__name__ == "UtteranceModel"
        if self.plain:  # transformers' model itself, same config and initial weights as the recipe's
            # a copy keeps what loading set (attention implementation, dropout); training mode as the Brain's
            self.wav2vec2 = copy.deepcopy(encoder.ssl_model.model).to(device).train()
            self.wav2vec2.freeze_feature_encoder()
            self.head = copy.deepcopy(recipe_model.head.w if hasattr(recipe_model.head, "w") else recipe_model.head)
            self.head.to(device)
            encoder_params = [p for p in self.wav2vec2.parameters() if p.requires_grad]
            head_params = list(self.head.parameters())
        else:  # the YAML's model and losses, outside the Brain
            self.model = copy.deepcopy(recipe_model).to(device).train()
            self.hparams = hparams
            ids = {id(p) for p in self.model.encoder.parameters()}
            encoder_params = [p for p in self.model.encoder.parameters() if p.requires_grad]
            head_params = [p for p in self.model.parameters() if p.requires_grad and id(p) not in ids]
        self.optimizers = [
            torch.optim.Adam(head_params, lr=hparams["lr"]),
            torch.optim.Adam(encoder_params, lr=hparams["lr_ssl"]),
        ]
        self.signals, self.targets, self.device = signals, targets, device
        self.max_grad_norm = (
            brain.max_grad_norm
        )  # the recipe clips each optimiser's gradients (SpeechBrain's default 5)
        self.autocast = precision != "fp32"
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float16

    def batch(self, indices):
        lengths = torch.tensor([len(self.signals[i]) for i in indices])
        wavs = torch.nn.utils.rnn.pad_sequence([self.signals[i] for i in indices], batch_first=True)
        targets = torch.tensor([self.targets[i] for i in indices])
        return wavs.to(self.device), lengths.to(self.device), targets.to(self.device)

    def loss(self, wavs, lengths, targets):
        if not self.plain:
            out = self.model(wavs, lengths.float() / wavs.shape[1])
            flat_args = (out.segments, out.segment_mask, targets, out.n_frames, self.model.segments.segment_size)
            from speechbrain_ext.nn.losses import flatten_segments, segment_nll

            nll = torch.nn.functional.nll_loss(out.scores, targets)
            nll = nll + segment_nll(out.segment_scores, out.segment_mask, targets, "sum_per_utterance")
            return self.hparams["loss_weighting"](nll, self.hparams["triplet_loss"](*flatten_segments(*flat_args)))
        real = torch.arange(wavs.shape[1], device=wavs.device)[None] < lengths[:, None]
        mean = (wavs * real).sum(1, keepdim=True) / lengths[:, None]
        std = (((wavs - mean) * real) ** 2).sum(1, keepdim=True).div(lengths[:, None]).add(1e-7).sqrt()
        frames = self.wav2vec2((wavs - mean) / std * real, attention_mask=real.long()).last_hidden_state
        n_frames = self.wav2vec2._get_feat_extract_output_lengths(lengths).clamp(max=frames.shape[1])
        mask = (torch.arange(frames.shape[1], device=wavs.device)[None] < n_frames[:, None]).unsqueeze(-1)
        count = n_frames[:, None, None] * frames.shape[2]
        mu = (frames * mask).sum((1, 2), keepdim=True) / count
        sd = ((((frames - mu) * mask) ** 2).sum((1, 2), keepdim=True) / count + 1e-5).sqrt()
        pooled = (((frames - mu) / sd) * mask).sum(1) / n_frames[:, None]
        return torch.nn.functional.nll_loss(torch.log_softmax(self.head(pooled), -1), targets)

    def epoch(self, batches) -> float:
        """Seconds for one pass over ``batches``."""
        began = time.perf_counter()
        for indices in batches:
            wavs, lengths, targets = self.batch(indices)
            with torch.autocast(wavs.device.type, dtype=self.dtype, enabled=self.autocast):
                loss = self.loss(wavs, lengths, targets)
            loss.backward()
            for optimizer in self.optimizers:
                torch.nn.utils.clip_grad_norm_(optimizer.param_groups[0]["params"], self.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        if str(self.device).startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - began


def timed_epochs(n_epochs: int, clock: StepClock, times: dict):
    """An epoch counter for ``Brain.fit`` that times each epoch, less the bare steps run inside it."""
    for epoch in range(1, n_epochs + 1):
        began = time.perf_counter()
        yield epoch
        bare = clock.bare[-1]
        times["bare"].append(bare)
        times["epoch"].append(time.perf_counter() - began - bare)
        times["train"].append(clock.stage_end[-1] - began - bare)
        times["wait"].append(clock.waits[-1])
        times["checkpoint"].append(clock.checkpoint[-1])


def compare(yaml: str, encoder: str, manifests: dict, data_folder: Path, out: Path, args) -> dict:
    """Seconds of the bare loop, the recipe's training stage and its whole epoch, summed over the timed epochs.

    The recipe trains with its own loader options and sampler; the bare loop
    takes each of its batches (by utterance id) beside it. The first
    epoch, a warm-up (the audio cache is already filled), is left out when there are more.
    """
    torch.manual_seed(0)
    brain, hparams, datasets = recipe_brain(yaml, encoder, manifests, data_folder, out, args)
    train = datasets["train"]
    audio_seconds = sum(train.data[i]["duration"] for i in train.data_ids)
    items = [train[i] for i in range(len(train))]
    bare = BareLoop(
        brain, hparams, [x["sig"] for x in items], [int(x["target"]) for x in items], args.device, args.precision
    )
    bare.epoch([list(range(min(args.batch_size, len(items))))])  # warm-up, untimed
    clock = StepClock(brain, bare, {x["id"]: i for i, x in enumerate(items)})
    times = {"bare": [], "train": [], "epoch": [], "wait": [], "checkpoint": []}
    brain.fit(
        timed_epochs(args.epochs, clock, times),
        train,
        datasets["valid"],
        train_loader_kwargs=brain.train_loader_options(train, hparams),
        valid_loader_kwargs=hparams["valid_dataloader_options"],
    )
    timed = slice(1 if args.epochs > 1 else 0, None)
    totals = {key: sum(values[timed]) for key, values in times.items()}
    paired = statistics.median(b / r for pairs in clock.pairs[timed] for b, r in pairs)
    n = len(times["bare"][timed])
    return {
        **totals,
        "audio_seconds": n * audio_seconds,
        "wait_share": totals["wait"] / totals["train"],
        "paired": paired,
        "first": times["train"][0],
    }


def pipeline_rates(manifests: dict, data_folder: Path, cache: Path | None, repeats: int = 1) -> tuple[float, float]:
    """(files/s, audio-seconds/s) of the recipe's ``sig`` item in this one process (a loader worker's work)."""
    from speechbrain_ext.data.dataio import audio_pipeline, load_split

    dataset = load_split(manifests["train"], str(data_folder))
    dataset.add_dynamic_item(audio_pipeline(16000, None, str(cache) if cache else None))
    dataset.set_output_keys(["sig"])
    seconds = sum(dataset.data[i]["duration"] for i in dataset.data_ids)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a loader worker
    began = time.perf_counter()
    for _ in range(repeats):
        for i in range(len(dataset)):
            dataset[i]
    elapsed = time.perf_counter() - began
    torch.set_num_threads(threads)
    return repeats * len(dataset) / elapsed, repeats * seconds / elapsed


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per YAML (medians)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--size", choices=["tiny", "small", "base"], default=None, help="small on CPU, base on GPU")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS if DEFAULT_CORPUS.is_dir() else None)
    parser.add_argument("--synthetic", action="store_true", help="voice-like signals even where the real sample exists")
    parser.add_argument("--files", type=int, default=60, help="files (the real corpus's first, or synthetic)")
    parser.add_argument("--no_audio_cache", dest="audio_cache", action="store_false", help="resample every epoch")
    parser.add_argument("--yamls", nargs="+", default=list(YAMLS), choices=list(YAMLS))
    args = parser.parse_args(argv)
    args.corpus = None if args.synthetic else args.corpus
    args.size = args.size or ("base" if args.device.startswith("cuda") else "small")
    torch.set_num_threads(args.threads)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip() if os.name == "posix" else ""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        high, low = write_corpus(tmp / "corpus", args.corpus, args.files)
        manifests = write_manifests(high, tmp / "prep")
        encoder = write_encoder(tmp / "encoder", args.size)
        source = f"{args.corpus} (first {args.files} files)" if args.corpus else f"{args.files} synthetic files"
        print(f"device {args.device}, {args.threads} threads, {args.precision}, encoder {args.size}, {source}")
        print(f"load: {load}")
        results = {yaml: compare(yaml, encoder, manifests, high, tmp / yaml, args) for yaml in args.yamls}

        timed = f"epochs 2-{args.epochs}" if args.epochs > 1 else "epoch 1"
        print(f"\n1. training steps: audio-seconds per second ({timed}, step by step alternately)")
        print(f"{'yaml':<12} {'bare loop':>10} {'recipe':>10} {'recipe/bare':>12} {'median of steps':>16}")
        for yaml, r in results.items():
            bare, recipe = r["audio_seconds"] / r["bare"], r["audio_seconds"] / r["train"]
            print(f"{yaml:<12} {bare:>10.1f} {recipe:>10.1f} {recipe / bare:>12.2f} {r['paired']:>16.2f}")

        print("\n2. data pipeline, one process (= one loader worker)")
        cache = tmp / "pipeline_cache"
        pipeline_rates(manifests, high, cache)  # fills the cache
        consumed = max(r["audio_seconds"] / r["bare"] for r in results.values())
        rows = {
            "48 kHz, decode + resample": pipeline_rates(manifests, high, None),
            "48 kHz, 16 kHz cache": pipeline_rates(manifests, high, cache, repeats=3),
            "16 kHz sources": pipeline_rates(manifests_16k(manifests, high, low, tmp), low, None, repeats=3),
        }
        print(f"{'source':<28} {'files/s':>9} {'audio-s/s':>10} {'x step':>8}")
        for name, (files, audio) in rows.items():
            print(f"{name:<28} {files:>9.1f} {audio:>10.1f} {audio / consumed:>8.1f}")
        for yaml, r in results.items():
            print(f"{yaml}: the training step waits for data {100 * r['wait_share']:.1f}% of the training stage")

        print(f"\n3. whole epoch (train + valid + checkpoint) against the training stage alone (seconds, {timed})")
        for yaml, r in results.items():
            valid = r["epoch"] - r["train"] - r["checkpoint"]
            print(
                f"{yaml:<12} train {r['train']:.2f} s, valid {valid:.2f} s, checkpoint {r['checkpoint']:.2f} s,"
                f" epoch {r['epoch']:.2f} s, epoch/train {r['epoch'] / r['train']:.2f}"
            )
            print(f"{'':<12} (first epoch's training stage, the warm-up: {r['first']:.2f} s)")
    ratio = results[args.yamls[0]]["paired"]
    print(f"ratio {ratio:.2f}")
    return ratio


def manifests_16k(manifests: dict, high: Path, low: Path, tmp: Path) -> dict:
    """The manifests with every path moved to the 16 kHz copies."""
    out = tmp / "prep16"
    out.mkdir(exist_ok=True)
    moved = {}
    for split, path in manifests.items():
        text = Path(path).read_text(encoding="utf-8").replace(str(high), str(low))
        moved[split] = str(out / Path(path).name)
        Path(moved[split]).write_text(text, encoding="utf-8")
    return moved


if __name__ == "__main__":
    main()
