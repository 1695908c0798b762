"""Model folders for the inference tests: exported from a recipe YAML's model node with random tiny weights."""

from pathlib import Path

import torch
from hyperpyyaml import load_hyperpyyaml, resolve_references

from speechbrain_ext.serving.export.export import export_model

REPO = Path(__file__).resolve().parents[1]
# Held-out test utterances of the synthetic RAVDESS (actors 23 and 24).
TEST_IDS = ["03-01-05-02-01-01-23", "03-01-04-01-02-02-24", "03-01-08-02-02-01-23"]


def wav_of(corpus, utt):
    """The path of a RAVDESS utterance id in a corpus folder."""
    return str(corpus / f"Actor_{utt[-2:]}" / f"{utt}.wav")


def random_model_folder(recipe, tiny_models, folder, ssl="wav2vec2", labels=("angry", "neutral", "sad"), **extra):
    """A model folder exported from a recipe YAML's model node, with random tiny weights (no training), classes ``labels``."""
    overrides = {
        "data_folder": str(folder),
        "output_folder": str(folder / "run"),
        "ssl_hub": tiny_models[ssl],
        "encoder_dim": 64,
        **extra,
    }
    if "n_classes" in (REPO / recipe).read_text():
        overrides["n_classes"] = len(labels)
    with open(REPO / recipe) as handle:
        text = resolve_references(handle, overrides).getvalue()
    run = folder / "run"
    (run / "save").mkdir(parents=True)
    (run / "hyperparams.yaml").write_text(text)
    hparams = load_hyperpyyaml(text)
    checkpoint = run / "save" / "CKPT+random"
    checkpoint.mkdir()
    torch.manual_seed(0)
    model = (
        hparams["bayes_stage"].model if "bayes_stage" in hparams else hparams["model"]
    )  # what export packs: the Bayesian stage's model
    for p in model.head.parameters():  # random heads, so the classes differ
        torch.nn.init.normal_(p, std=1.0)
    torch.save(model.state_dict(), checkpoint / "model.ckpt")
    if "n_classes" in overrides:
        task = hparams["task"]
        task.labels_from(labels)
        task.encoder.save(task.label_encoder_file)
    exported = export_model(run / "hyperparams.yaml", folder / "model", checkpoint=checkpoint)
    assert (
        tiny_models[ssl] not in (exported / "hyperparams.yaml").read_text()
    )  # built from its own configuration, not the base folder
    return exported, hparams
