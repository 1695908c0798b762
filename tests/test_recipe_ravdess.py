"""A RAVDESS recipe end to end (segments + triplet, the demo's): reports, resumes; every YAML names the papers' encoder."""

import json

import pytest
from hyperpyyaml import load_hyperpyyaml
from ruamel.yaml import YAML

from tests.conftest import RECIPE_EPOCHS, RECIPE_OVERRIDES, REPO, run_recipe


def test_report_files(trained_ravdess):
    folder = trained_ravdess["folder"]
    for split in ("valid", "test"):
        for name in ("report.md", "report.json", "predictions.csv", "confusion_matrix.csv", "confusion_matrix.png"):
            assert (folder / f"{split}_{name}").is_file(), f"{split}_{name}"
    for name in ("train_log.txt", "save/label_encoder.txt"):
        assert (folder / name).is_file(), name
    log = (folder / "train_log.txt").read_text().splitlines()
    assert sum(line.startswith("epoch:") for line in log) == RECIPE_EPOCHS
    assert "valid UAR" in log[0]
    rows = (folder / "test_predictions.csv").read_text().splitlines()
    assert len(rows) == 121
    cm = json.loads((folder / "test_report.json").read_text())["confusion_matrix"]
    assert sum(map(sum, cm)) == 120
    assert (folder / "test_confusion_matrix.csv").read_text().splitlines()[0].split(",")[1:] == json.loads(
        (folder / "test_report.json").read_text()
    )["labels"]


def test_resumes_from_last_checkpoint(registry_runs, registry_corpora, tiny_models, tmp_path):
    """A second run with one more epoch trains only that epoch, starting from the saved state (the registry's one-epoch run)."""
    import shutil

    row = "recipes/RAVDESS/hparams/triplet_seg.yaml"
    folder = shutil.copytree(registry_runs[row]["folder"], tmp_path / "resumed")
    saved = next((folder / "save").glob("CKPT+*"))
    run_recipe(
        REPO / row,
        registry_corpora["RAVDESS"],
        folder,
        f"--ssl_hub={tiny_models['wav2vec2']}",
        *RECIPE_OVERRIDES,
        "--number_of_epochs=2",
    )
    log = (folder / "train_log.txt").read_text().splitlines()
    epochs = [line.split(",")[0] for line in log if line.startswith("epoch:")]
    assert epochs == ["epoch: 1", "epoch: 2"]
    assert "Loading a checkpoint from " + str(saved) in (folder / "log.txt").read_text()


@pytest.mark.parametrize(
    "corpus, hub, layer, dim",
    [
        ("RAVDESS", "facebook/wav2vec2-base", "last", 768),
        ("IEMOCAP", "facebook/wav2vec2-base", "last", 768),
        ("FESC", "jonatasgrosman/wav2vec2-large-xlsr-53-finnish", 23, 1024),
    ],
)
def test_default_hparams_name_the_hub_model(tmp_path, tiny_models, corpus, hub, layer, dim):
    """Every method's defaults name the papers' encoder; the same YAML builds it through from_pretrained."""
    for yaml_file in sorted((REPO / "recipes" / corpus / "hparams").glob("*.yaml")):
        values = YAML(typ="rt").load(yaml_file.read_text())
        if yaml_file.stem == "flea":  # a chain of stages: both pre-trainings start from HuBERT-base
            assert (values["hubert_hub"], values["encoder_dim"], values["label_layer"], values["label_clusters"]) == (
                "facebook/hubert-base-ls960",
                768,
                9,
                50,
            )
            continue
        if yaml_file.stem == "attention" and corpus != "FESC":  # flea_hubert: HuBERT-base, AdamW, batch 64, 40 epochs
            assert (values["ssl_hub"], values["batch_size"], values["number_of_epochs"]) == (
                "facebook/hubert-base-ls960",
                64,
                40,
            ), yaml_file
            assert "torch.optim.AdamW" in yaml_file.read_text()
            continue
        assert (values["ssl_hub"], values["ssl_layer"], values["encoder_dim"]) == (hub, layer, dim), yaml_file
        if yaml_file.stem in (
            "baseline",
            "seg",
            "triplet",
            "triplet_seg",
        ):  # segment_triplet trained with batches of 12
            assert values["batch_size"] == 12, yaml_file
    with open(REPO / "recipes" / corpus / "hparams" / "baseline.yaml") as handle:
        hparams = load_hyperpyyaml(
            handle,
            {
                "data_folder": str(tmp_path),
                "output_folder": str(tmp_path / "out"),
                "ssl_hub": tiny_models["wav2vec2"],
                "encoder_dim": 64,
                "ssl_layer": 1,
            },
        )
    ssl = hparams["model"].encoder
    assert type(ssl.ssl_model).__module__ == "speechbrain.integrations.huggingface.wav2vec2"
    assert ssl.n_layers == 1 and ssl.output_norm
    assert not any(p.requires_grad for p in ssl.ssl_model.model.feature_extractor.parameters())
    assert any(p.requires_grad for p in ssl.ssl_model.model.encoder.parameters())
