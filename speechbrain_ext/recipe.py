"""The body of every classification recipe's ``train.py``.

A corpus's ``train.py`` passes its preparation function to :func:`run_recipe`;
the method comes from the YAML:

1. data preparation (unless ``skip_prep``) and, for ``wav_augment``, the
   locally generated noise and room responses;
2. training with validation and the test of the best checkpoint
   (:class:`speechbrain_ext.brain.EmotionBrain`);
3. with ``bayes_classifier`` in the hparams, stage two of
   compare2023_bayes_fusion (:func:`bayesian_stage`);
4. with ``knn_eval: True``, kNN interpolation at inference (supcon_knn,
   :func:`knn_stage`), for any method.

Embeddings of the trained model are cached per split in
``<output_folder>/embeddings/`` (keyed by the checkpoint), so stage two and
kNN re-runs do not encode the corpus again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.distributed import run_on_main

from data_prep.common import atomic_write_text
from speechbrain_ext.bayesian import BayesianLinear, fit_bayesian_head
from speechbrain_ext.brain import EmotionBrain, fit_and_test, load_recipe_hparams
from speechbrain_ext.dataio import classification_datasets
from speechbrain_ext.knn import KNNInterpolator
from speechbrain_ext.metrics import classification_metrics
from speechbrain_ext.reports import metrics_table, plot_confidence_by_correctness, write_classification_report
from speechbrain_ext.uncertainty import confidence_by_correctness, expected_calibration_error, mc_predictive

logger = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")


def dataio_prep(hparams: dict) -> dict:
    """Train/valid/test datasets of 16 kHz audio and encoded ``label_key`` labels; sets ``hparams["label_encoder"]``."""
    label_key = hparams.get("label_key", "emo")
    manifests = {"train": hparams["train_annotation"], "valid": hparams["valid_annotation"], "test": hparams["test_annotation"]}
    datasets, label_encoder = classification_datasets(
        manifests,
        hparams["data_folder"],
        hparams["label_encoder_file"],
        label_key=label_key,
        sorting=hparams["sorting"],
        sample_rate=hparams["sample_rate"],
        max_seconds=hparams.get("max_audio_seconds"),
    )
    hparams["label_encoder"] = label_encoder
    if len(label_encoder) != hparams["n_classes"]:
        raise ValueError(f"the training split has {len(label_encoder)} classes {sorted(label_encoder.lab2ind)} but n_classes is {hparams['n_classes']}")
    return datasets


def run_recipe(prepare: Callable[[dict], None], argv: list[str] | None = None) -> dict:
    """Prepare, train, test, then run the Bayesian and kNN stages the hparams ask for.

    Arguments
    ---------
    prepare : callable
        ``prepare(hparams)``: the corpus's data preparation.
    argv : list of str, optional
        Command line (default ``sys.argv[1:]``).

    Returns
    -------
    dict
        The final test report.
    """
    _, hparams, run_opts, _ = load_recipe_hparams(argv)
    if not hparams["skip_prep"]:
        run_on_main(prepare, kwargs={"hparams": hparams})
    if "augmentation_folder" in hparams:
        from speechbrain_ext.augment import generate_noise_and_rirs

        run_on_main(generate_noise_and_rirs, kwargs={"folder": hparams["augmentation_folder"], "sample_rate": hparams["sample_rate"]})
    datasets = dataio_prep(hparams)
    brain = EmotionBrain(modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams, run_opts=run_opts, checkpointer=hparams["checkpointer"])
    report = fit_and_test(brain, datasets, hparams)
    bayesian, knn = "bayes_classifier" in hparams, hparams.get("knn_eval", False)
    if not (bayesian or knn):
        return report
    embeddings = cached_embeddings(brain, datasets, hparams)
    bayes = None
    if bayesian:
        report, bayes = bayesian_stage(brain, embeddings, hparams, report)
    if knn:
        knn_stage(brain, embeddings, hparams, bayes)
    return report


def cached_embeddings(brain: EmotionBrain, datasets: dict, hparams: dict) -> dict:
    """``brain.embed`` of every split, cached on disk for the checkpoint the brain holds."""
    folder = Path(hparams["output_folder"]) / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = brain.checkpointer.find_checkpoint(max_key="UAR")
    tag = str(checkpoint.path.name) if checkpoint is not None else "none"
    out = {}
    for split in SPLITS:
        path = folder / f"{split}.pt"
        if path.is_file():
            cached = torch.load(path, weights_only=False)
            if cached.get("checkpoint") == tag:
                out[split] = cached
                continue
        data = brain.embed(datasets[split], hparams["test_dataloader_options"], description=f"embedding {split}")
        data["checkpoint"] = tag
        tmp = path.with_suffix(".tmp")
        torch.save(data, tmp)
        tmp.replace(path)
        out[split] = data
    return out


def mc_probabilities(layer: BayesianLinear, embeddings: torch.Tensor, n_samples: int, seed: int):
    """MC predictive of a Bayesian head with a fixed seed (the same draws every call)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        layer.mean_weights = False
        return mc_predictive(layer(embeddings.to(layer.weight_mu.device), n_samples=n_samples).cpu())


def bayesian_stage(brain: EmotionBrain, embeddings: dict, hparams: dict, linear_report: dict) -> tuple[dict, BayesianLinear]:
    """Stage two of compare2023_bayes_fusion: a Bayesian output layer on the frozen fine-tuned encoder.

    The priors come from the trained linear layer (``bayes_prior``); the layer
    is trained by SVI on cached embeddings (:func:`fit_bayesian_head`) and
    saved with the encoder in ``bayes_save_folder`` (what export reads). The
    test report holds the mean probabilities of ``bayes_test_samples`` weight
    samples, the confidence of correct vs wrong predictions (Figure 1) and
    the calibration error; the linear stage's report stays in ``report_folder``.

    Arguments
    ---------
    brain : EmotionBrain
        The trained stage-one model (best checkpoint loaded).
    embeddings : dict
        Split -> :meth:`EmotionBrain.embed` output (:func:`cached_embeddings`).
    hparams : dict
        The recipe's hparams (``bayes_*`` keys).
    linear_report : dict
        Stage one's test report.

    Returns
    -------
    report : dict
        The Bayesian test report (``<output_folder>/test_report.json``).
    layer : BayesianLinear
    """
    layer = hparams["bayes_classifier"].to(brain.device)
    checkpointer = Checkpointer(hparams["bayes_save_folder"], recoverables={"ssl": brain.modules.ssl, "model": hparams["bayes_model"]})
    done = checkpointer.find_checkpoint(max_key="UAR")
    if done is not None:
        checkpointer.recover_if_possible(max_key="UAR")
        fit = json.loads((Path(hparams["output_folder"]) / "bayes_training.json").read_text())
        logger.info("Bayesian stage already trained (%s); evaluating it", done.path)
    else:
        start = BayesianLinear.from_linear(brain.modules.classifier, prior=hparams["bayes_prior"])
        layer.load_state_dict(start.state_dict())
        torch.manual_seed(hparams["seed"])
        fit = fit_bayesian_head(
            layer,
            embeddings["train"]["embeddings"].to(brain.device),
            embeddings["train"]["targets"].to(brain.device),
            embeddings["valid"]["embeddings"].to(brain.device),
            embeddings["valid"]["targets"].to(brain.device),
            epochs=hparams["bayes_epochs"],
            lr=hparams["bayes_lr"],
            batch_size=hparams["bayes_batch_size"],
            kl_weight=hparams["bayes_kl_weight"],
            train_samples=hparams["bayes_train_samples"],
            valid_samples=hparams["bayes_valid_samples"],
            progress=not getattr(brain, "noprogressbar", False),
        )
        atomic_write_text(Path(hparams["output_folder"]) / "bayes_training.json", json.dumps(fit, indent=2) + "\n")
        checkpointer.save_checkpoint(meta={"UAR": fit["valid_UAR"], "stage": "bayes"})

    test = embeddings["test"]
    n_samples = int(hparams["bayes_test_samples"])
    pred = mc_probabilities(layer, test["embeddings"], n_samples, hparams["seed"])
    probs, targets = pred.mean_probs.numpy(), test["targets"].numpy()
    correct = probs.argmax(axis=1) == targets
    report = write_classification_report(
        hparams["output_folder"],
        test["ids"],
        targets.tolist(),
        probs,
        brain.labels,
        title="test",
        extra={
            "method": "bayes",
            "mc_samples": n_samples,
            "bayes_prior": hparams["bayes_prior"],
            "bayes_best_epoch": fit["best_epoch"],
            "bayes_valid_UAR": round(fit["valid_UAR"], 6),
            "confidence_by_correctness": confidence_by_correctness(probs, targets),
            "expected_calibration_error": expected_calibration_error(probs, targets),
            "mean_entropy": round(float(pred.entropy.mean()), 6),
            "mean_mutual_information": round(float(pred.mutual_information.mean()), 6),
            "linear_stage": {"UAR": linear_report["UAR"], "WA": linear_report["WA"]},
        },
    )
    rows = ["id,true,predicted,confidence,entropy,mutual_information,correct"]
    for utt, t, p, conf, ent, mi, ok in zip(
        test["ids"], targets, probs.argmax(axis=1), pred.confidence.tolist(), pred.entropy.tolist(), pred.mutual_information.tolist(), correct
    ):
        rows.append(f"{utt},{brain.labels[t]},{brain.labels[p]},{conf:.6f},{ent:.6f},{mi:.6f},{int(ok)}")
    atomic_write_text(Path(hparams["output_folder"]) / "test_uncertainty.csv", "\n".join(rows) + "\n")
    plot_confidence_by_correctness(
        pred.confidence.numpy(), correct, Path(hparams["output_folder"]) / "confidence_by_correctness.png", f"Bayesian head, {n_samples} weight samples"
    )
    stats = report["confidence_by_correctness"]
    print(metrics_table(report, f"test (Bayes, {n_samples} samples)"))
    print(f"confidence: correct {stats['correct']['mean']} (n={stats['correct']['n']}), wrong {stats['wrong']['mean']} (n={stats['wrong']['n']})")
    return report, layer


def knn_stage(brain: EmotionBrain, embeddings: dict, hparams: dict, bayes: BayesianLinear | None = None) -> dict:
    """kNN interpolation at inference (supcon_knn eq. 4) for the trained model of a recipe run.

    Calls :func:`knn_evaluate` on the run's embeddings (:func:`cached_embeddings`);
    with a Bayesian head, the model's probabilities are its MC means.

    Returns
    -------
    dict
        The summary written to ``knn_summary.json``.
    """
    evaluated = ("valid", "test")  # the model's probabilities on train are never used
    if bayes is not None:
        probs = {s: mc_probabilities(bayes, embeddings[s]["embeddings"], int(hparams["bayes_test_samples"]), hparams["seed"]).mean_probs for s in evaluated}
    else:
        probs = {s: embeddings[s]["log_probs"].exp() for s in evaluated}
    return knn_evaluate(
        embeddings, probs, brain.labels, hparams["output_folder"], weights=hparams["knn_weights"], max_k=hparams["knn_max_k"], alphas=hparams["knn_alphas"]
    )


def knn_evaluate(
    embeddings: dict, model_probs: dict, labels: list[str], output_folder: str | Path, weights: str = "uniform", max_k: int = 32, alphas=None
) -> dict:
    """Tune kNN interpolation on validation, then report test with and without it.

    ``k`` and ``alpha`` are chosen on the validation split against a
    datastore of the training split only (a validation item would otherwise
    find itself); nothing of the test split enters the choice. The test split
    is then classified against the train+valid datastore (supcon_knn).
    Writes ``knn_summary.json``, ``knn/test_report.json`` (with the usual
    predictions CSV and confusion matrix) and ``knn_datastore.pt``.

    Arguments
    ---------
    embeddings : dict
        Split -> ``{"ids", "embeddings", "targets"}`` (as :meth:`EmotionBrain.embed` returns).
    model_probs : dict
        Split -> ``(n, n_classes)`` model probabilities (``valid`` and ``test`` are used).
    labels : list of str
        Class names in index order.
    output_folder : str or Path
        Where the files go.
    weights : str
        ``uniform`` or ``distance`` neighbour votes.
    max_k : int
        Candidates ``k`` = 1..max_k.
    alphas : sequence of float, optional
        Candidate ``alpha`` (default 0, 0.05, ..., 1).

    Returns
    -------
    dict
        The summary.
    """
    n_classes = len(labels)
    train, valid, test = (embeddings[s] for s in SPLITS)
    tuner = KNNInterpolator(n_classes, weights=weights)
    tuner.add(train["embeddings"], train["targets"])
    tune_kwargs = {"alphas": alphas} if alphas is not None else {}
    tuned = tuner.tune(valid["embeddings"], valid["targets"].tolist(), model_probs["valid"], ks=range(1, int(max_k) + 1), **tune_kwargs)
    store = KNNInterpolator(n_classes, k=tuned["k"], alpha=tuned["alpha"], weights=weights)
    store.add(torch.cat([train["embeddings"], valid["embeddings"]]), torch.cat([train["targets"], valid["targets"]]))
    test_model = torch.as_tensor(model_probs["test"]).float()
    test_knn = store.interpolate(test_model, test["embeddings"])
    targets = test["targets"].tolist()
    without = classification_metrics(targets, test_model.argmax(dim=1).tolist(), labels)
    output_folder = Path(output_folder)
    with_knn = write_classification_report(
        output_folder / "knn", test["ids"], targets, test_knn.numpy(), labels, title="test+kNN", extra={"k": tuned["k"], "alpha": tuned["alpha"]}
    )
    summary = {
        "k": tuned["k"],
        "alpha": tuned["alpha"],
        "weights": weights,
        "tuned_on": "valid",
        "datastore": {"tuning": "train", "test": "train+valid", "size": len(store)},
        "valid": {"UAR_model": round(tuned["model_score"], 6), "UAR_knn": round(tuned["score"], 6)},
        "test": {"without_knn": {"UAR": without["UAR"], "WA": without["WA"]}, "with_knn": {"UAR": with_knn["UAR"], "WA": with_knn["WA"]}},
        "grid": {"ks": tuned["ks"], "alphas": tuned["alphas"], "valid_UAR": tuned["grid"]},
    }
    atomic_write_text(output_folder / "knn_summary.json", json.dumps(summary, indent=2) + "\n")
    torch.save(store.state_dict(), output_folder / "knn_datastore.pt")
    print(f"kNN (k={tuned['k']}, alpha={tuned['alpha']}, tuned on validation):")
    print(f"| test | UAR % | WA % |\n|---|---|---|\n| without kNN | {100 * without['UAR']:.2f} | {100 * without['WA']:.2f} |")
    print(f"| with kNN | {100 * with_knn['UAR']:.2f} | {100 * with_knn['WA']:.2f} |")
    return summary
