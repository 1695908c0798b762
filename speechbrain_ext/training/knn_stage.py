"""The kNN post-training stage (supcon_knn eq. 4): k and alpha tuned on valid, test reported with and without kNN."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from speechbrain_ext.data.manifests import SPLITS
from speechbrain_ext.nn.knn import KNNInterpolator
from speechbrain_ext.training.post_training import StageContext, require_classification
from speechbrain_ext.training.tasks import ClassificationTask
from speechbrain_ext.utils.fileio import atomic_write_text


class KNNStage:
    """kNN interpolation at inference (supcon_knn eq. 4) for the trained model of a run (:func:`knn_evaluate`).

    With a Bayesian stage before it, the model's probabilities are the MC means.

    Arguments
    ---------
    max_k : int
        Candidates ``k`` = 1..max_k.
    alphas : sequence of float, optional
        Candidate interpolation weights.
    weights : str
        ``uniform`` or ``distance`` neighbour votes.
    enabled : bool
        Run the stage (``knn_eval`` in the YAMLs).
    """

    def __init__(self, max_k: int = 32, alphas=None, weights: str = "uniform", enabled: bool = False):
        self.max_k, self.alphas, self.weights, self.enabled = int(max_k), alphas, weights, bool(enabled)

    def run(self, context: StageContext) -> dict:
        """Tune on valid, report test with and without kNN."""
        task = require_classification(context, "kNN interpolation")
        probs = {s: context.model_probabilities(s) for s in ("valid", "test")}
        kept: dict = {}
        summary = knn_evaluate(
            context.embeddings(),
            probs,
            task,
            context.output_folder,
            weights=self.weights,
            max_k=self.max_k,
            alphas=self.alphas,
            keep=kept,
        )
        folder = context.output_folder / "knn"
        context.decisions["knn"] = {s: {**kept[s], "method": "knn", "folder": folder} for s in ("valid", "test")}
        distance = {s: (kept[s]["ids"], kept[s].pop("distance")) for s in ("valid", "test")}
        context.ood_scores["knn_distance"] = {"k": summary["k"], **distance}
        return summary


def knn_evaluate(
    embeddings: dict,
    model_probs: dict,
    task: ClassificationTask,
    output_folder,
    weights: str = "uniform",
    max_k: int = 32,
    alphas=None,
    keep: dict | None = None,
) -> dict:
    """Tune kNN interpolation on validation, then report test with and without it.

    ``k`` and ``alpha`` are chosen on the validation split against a
    datastore of the training split only (a validation item would otherwise
    find itself); nothing of the test split enters the choice. The test split
    is then classified against the train+valid datastore (supcon_knn).
    Writes ``knn_summary.json``, ``knn/{valid,test}_report.json`` (with the
    usual predictions CSV and confusion matrix) and ``knn_datastore.pt``.

    Arguments
    ---------
    embeddings : dict
        Split -> ``{"ids", "embeddings", "targets"}`` (as ``RecipeBrain.embed`` returns).
    model_probs : dict
        Split -> ``(n, n_classes)`` model probabilities (``valid`` and ``test`` are used).
    task : ClassificationTask
        Labels and the report writer.
    output_folder : str or Path
        Where the files go.
    weights : str
        ``uniform`` or ``distance`` neighbour votes.
    max_k : int
        Candidates ``k`` = 1..max_k.
    alphas : sequence of float, optional
        Candidate ``alpha`` (default 0, 0.05, ..., 1).
    keep : dict, optional
        Filled with ``valid`` and ``test``: ``ids``, ``targets``, the
        interpolated ``probs`` and each row's ``distance`` to its ``k``-th
        neighbour in the datastore the split was scored with.

    Returns
    -------
    dict
        The summary.
    """
    train, valid, test = (embeddings[s] for s in SPLITS)
    n_classes = len(task.labels)
    tuner = KNNInterpolator(n_classes, weights=weights)
    tuner.add(train["embeddings"], train["targets"])
    tune_kwargs = {"alphas": alphas} if alphas is not None else {}
    tuned = tuner.tune(
        valid["embeddings"], valid["targets"].tolist(), model_probs["valid"], ks=range(1, int(max_k) + 1), **tune_kwargs
    )
    store = KNNInterpolator(n_classes, k=tuned["k"], alpha=tuned["alpha"], weights=weights)
    store.add(torch.cat([train["embeddings"], valid["embeddings"]]), torch.cat([train["targets"], valid["targets"]]))
    test_model = torch.as_tensor(model_probs["test"]).float()
    test_knn = store.interpolate(test_model, test["embeddings"])
    output_folder = Path(output_folder)
    # valid as it was scored while tuning (train-only datastore), so the knn/ folder can be fused like any run
    valid_knn = tuner.interpolate(torch.as_tensor(model_probs["valid"]).float(), valid["embeddings"])
    task.write_report(
        output_folder / "knn",
        valid["ids"],
        valid["targets"].tolist(),
        valid_knn.numpy(),
        split="valid",
        extra={"k": tuned["k"], "alpha": tuned["alpha"]},
    )
    targets = test["targets"].tolist()
    without = task.stage_metrics(test["targets"].numpy(), test_model.numpy())
    with_knn = task.write_report(
        output_folder / "knn",
        test["ids"],
        targets,
        test_knn.numpy(),
        split="test",
        extra={"k": tuned["k"], "alpha": tuned["alpha"], "title": "test+kNN"},
    )
    names = with_knn["summary_metrics"]
    metric = task.selection_metric
    summary = {
        "k": tuned["k"],
        "alpha": tuned["alpha"],
        "weights": weights,
        "tuned_on": "valid",
        "datastore": {"tuning": "train", "test": "train+valid", "size": len(store)},
        "valid": {f"{metric}_model": round(tuned["model_score"], 6), f"{metric}_knn": round(tuned["score"], 6)},
        "test": {"without_knn": {m: without[m] for m in names}, "with_knn": {m: with_knn[m] for m in names}},
        "grid": {"ks": tuned["ks"], "alphas": tuned["alphas"], f"valid_{metric}": tuned["grid"]},
    }
    for split, source, data, probs in (("valid", tuner, valid, valid_knn), ("test", store, test, test_knn)):
        if keep is not None:
            keep[split] = {
                "ids": list(data["ids"]),
                "targets": data["targets"].numpy().astype(int).reshape(-1),
                "probs": probs.numpy().astype("float64"),
                "distance": source.neighbours(data["embeddings"], tuned["k"])[0][:, -1].numpy(),
            }
    atomic_write_text(output_folder / "knn_summary.json", json.dumps(summary, indent=2) + "\n")
    torch.save(store.state_dict(), output_folder / "knn_datastore.pt")
    print(f"kNN (k={tuned['k']}, alpha={tuned['alpha']}, tuned on validation):")
    print("| test | " + " | ".join(f"{m} %" for m in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for name, values in (("without kNN", without), ("with kNN", with_knn)):
        print(f"| {name} | " + " | ".join(f"{100 * values[m]:.2f}" for m in names) + " |")
    return summary
