"""Attention-map distances (speechbrain_ext.analysis.attention, attention_capture, bhattacharyya) against references written from the definitions."""

import argparse
import importlib
import json
import math

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch

from speechbrain_ext.analysis import attention
from speechbrain_ext.analysis.attention_capture import attention_maps, eager_attention
from speechbrain_ext.analysis.bhattacharyya import attention_distance, bhattacharyya_rows
from speechbrain_ext.nn.encoders import SSLEncoder
from speechbrain_ext.testing.tiny_models import write_tiny_ssl

TINY_LAYERS, TINY_HEADS = 3, 4  # speechbrain_ext.testing.tiny_models


def naive_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Eq. (1) from its definition: per layer and head, the mean over rows of -ln sum_j sqrt(p_j q_j)."""
    layers, heads, n, _ = a.shape
    out = np.zeros((layers, heads))
    for layer in range(layers):
        for head in range(heads):
            total = 0.0
            for i in range(n):
                coefficient = sum(
                    math.sqrt(float(a[layer, head, i, j]) * float(b[layer, head, i, j])) for j in range(n)
                )
                total += -math.log(coefficient)
            out[layer, head] = total / n
    return out


def test_bhattacharyya_rows_matches_definition():
    gen = torch.Generator().manual_seed(0)
    a = torch.softmax(torch.randn(2, 3, 7, 7, generator=gen, dtype=torch.float64) * 2, dim=-1)
    b = torch.softmax(torch.randn(2, 3, 7, 7, generator=gen, dtype=torch.float64) * 2, dim=-1)
    d = bhattacharyya_rows(a, b)
    assert d.shape == (2, 3)
    np.testing.assert_allclose(d.numpy(), naive_distance(a.numpy(), b.numpy()), rtol=1e-10, atol=1e-12)
    assert float(bhattacharyya_rows(a, a).abs().max()) < 1e-6
    assert float(bhattacharyya_rows(a.float(), a.float()).abs().max()) < 1e-6  # float32 rounding does not go negative
    np.testing.assert_allclose(bhattacharyya_rows(b, a).numpy(), d.numpy(), rtol=0, atol=1e-12)
    assert bool((d > 0).all())
    # disjoint rows: the coefficient is floored at eps instead of giving infinity
    p, q = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert float(bhattacharyya_rows(p, q, eps=1e-12)) == pytest.approx(-math.log(1e-12))
    with pytest.raises(ValueError, match="shape"):
        bhattacharyya_rows(a, b[:, :2])


def manual_attention(module: torch.nn.Module, hidden: torch.Tensor, heads: int) -> torch.Tensor:
    """Per-head softmax(q k^T / sqrt(d)) of a wav2vec2/HuBERT attention module for one utterance: (heads, N, N)."""
    n, dim = hidden.shape[1], hidden.shape[2] // heads
    q = module.q_proj(hidden).view(n, heads, dim).transpose(0, 1)
    k = module.k_proj(hidden).view(n, heads, dim).transpose(0, 1)
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dim), dim=-1)


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm"])
def test_attention_maps(tiny_models, tmp_path, kind):
    encoder = SSLEncoder(tiny_models[kind], str(tmp_path), freeze=True, drop_upper_layers=False).eval()
    model = encoder.ssl_model.model
    implementation = model.config._attn_implementation
    wav = torch.randn(24000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = encoder.hidden_states(wav[None])[0][-1]

    captured = {}
    hooks = [
        layer.attention.register_forward_pre_hook(
            lambda mod, args, kwargs, i=i: captured.__setitem__(
                i, kwargs.get("hidden_states", args[0] if args else None)
            ),
            with_kwargs=True,
        )
        for i, layer in enumerate(model.encoder.layers)
    ]
    try:
        maps = attention_maps(encoder, wav)
    finally:
        for hook in hooks:
            hook.remove()
    n = int(encoder.frame_lengths(torch.tensor([24000]))[0])
    assert maps.shape == (TINY_LAYERS, TINY_HEADS, n, n)
    torch.testing.assert_close(maps.sum(-1), torch.ones(TINY_LAYERS, TINY_HEADS, n), atol=1e-5, rtol=0)
    assert float((maps[:, 0] - maps[:, 1]).abs().max()) > 1e-5, "heads must be separate maps, not their average"

    with torch.no_grad():
        if kind == "wavlm":
            # HF's WavLM returns the head average: the recomputed heads must average to it.
            averaged = model(
                encoder._prepare_input(wav[None], torch.tensor([24000])), output_attentions=True
            ).attentions
            for layer in range(TINY_LAYERS):
                torch.testing.assert_close(maps[layer].mean(0), averaged[layer][0, 0].float(), atol=1e-5, rtol=0)
        else:
            # independent reference: each layer's maps from its attention input, q and k projections
            for layer in range(TINY_LAYERS):
                torch.testing.assert_close(
                    maps[layer],
                    manual_attention(model.encoder.layers[layer].attention, captured[layer], TINY_HEADS),
                    atol=1e-5,
                    rtol=0,
                )

        # eager attention computes the same states, and the implementation is restored afterwards
        with eager_attention(encoder):
            assert model.config._attn_implementation == "eager"
            during = encoder.hidden_states(wav[None])[0][-1]
        after = encoder.hidden_states(wav[None])[0][-1]
    assert model.config._attn_implementation == implementation
    torch.testing.assert_close(during, before, atol=1e-5, rtol=0)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)

    cropped = attention_maps(encoder, wav, max_frames=30)
    assert cropped.shape == (TINY_LAYERS, TINY_HEADS, 30, 30)
    assert (
        attention_maps(encoder, wav[:8000], max_frames=30).shape[-1]
        == int(encoder.frame_lengths(torch.tensor([8000]))[0])
        < 30
    )  # short: not padded


def write_manifest(folder, seconds=(1.0, 1.5, 2.0)):
    """A few 16 kHz wav files (sines plus noise) and a JSON manifest of them."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, entries = np.random.default_rng(0), {}
    for i, duration in enumerate(seconds):
        t = np.arange(int(duration * 16000)) / 16000
        signal = 0.3 * np.sin(2 * np.pi * (150 + 60 * i) * t) + rng.normal(0, 0.05, t.size)
        path = folder / f"utt{i}.wav"
        soundfile.write(path, signal.astype(np.float32), 16000)
        entries[f"utt{i}"] = {"wav": str(path), "duration": duration}
    manifest = folder / "test.json"
    manifest.write_text(json.dumps(entries))
    return manifest, entries


def test_attention_distance(tiny_models, tmp_path):
    _, entries = write_manifest(tmp_path / "data")
    model_a = tiny_models["wav2vec2"]
    model_b = write_tiny_ssl(tmp_path / "seed1", "wav2vec2", seed=1)
    same = attention_distance(model_a, model_a, entries, progress=False)
    assert same.shape == (TINY_LAYERS, TINY_HEADS)
    assert float(np.abs(same).max()) < 1e-6

    ab = attention_distance(model_a, model_b, entries, max_seconds=1.2, progress=False)
    ba = attention_distance(model_b, model_a, entries, max_seconds=1.2, progress=False)
    np.testing.assert_allclose(ab, ba, rtol=0, atol=1e-9)
    assert bool((ab > 0).all())

    # reference: each utterance cropped to 1.2 s, eq. (1) from the naive loop, then the plain mean over utterances
    cache = str(tmp_path / "cache")
    enc_a, enc_b = (SSLEncoder(m, cache, freeze=True, drop_upper_layers=False).eval() for m in (model_a, model_b))
    per_file = []
    for entry in entries.values():
        wav = torch.from_numpy(soundfile.read(entry["wav"], dtype="float32")[0])[:19200]
        per_file.append(naive_distance(attention_maps(enc_a, wav).numpy(), attention_maps(enc_b, wav).numpy()))
    np.testing.assert_allclose(ab, np.mean(per_file, axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        attention_distance(enc_a, enc_b, entries, max_files=1, max_seconds=1.2, progress=False),
        per_file[0],
        rtol=1e-5,
        atol=1e-7,
    )

    cut = SSLEncoder(model_a, cache, layer=2, freeze=True).eval()
    with pytest.raises(ValueError, match=r"model A .* 3 layers x 4 heads but model B .* 2 layers x 4 heads"):
        attention_distance(enc_a, cut, entries, progress=False)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        attention_distance(enc_a, enc_a, {"x": {"wav": str(tmp_path / "missing.wav")}}, progress=False)


def check_outputs(out, manifest_entries, model_a, model_b, max_files):
    table = pd.read_csv(out / "attention_distance.csv")
    assert list(table.columns) == ["layer", "head", "distance"]
    assert len(table) == TINY_LAYERS * TINY_HEADS
    assert sorted(set(table["layer"])) == [1, 2, 3] and sorted(set(table["head"])) == [1, 2, 3, 4]
    report = json.loads((out / "attention_distance.json").read_text())
    assert report["models"] == {"a": model_a, "b": model_b}
    assert report["n_files"] == max_files
    matrix = np.array(report["distance"])
    assert matrix.shape == (TINY_LAYERS, TINY_HEADS)
    np.testing.assert_allclose(
        table.pivot(index="layer", columns="head", values="distance").to_numpy(), matrix, rtol=1e-5
    )
    np.testing.assert_allclose(report["layer_mean"], matrix.mean(axis=1), atol=1e-6)
    first = dict(list(manifest_entries.items())[:max_files])
    np.testing.assert_allclose(
        matrix, attention_distance(model_a, model_b, first, max_seconds=1.0, progress=False), rtol=1e-5, atol=1e-8
    )
    assert (out / "attention_distance.png").read_bytes()[:4] == b"\x89PNG"
    return matrix


def test_run_through_own_parser(tiny_models, tmp_path):
    """run() and add_arguments() through a fresh parser (independent of the other verbs of __main__)."""
    manifest, entries = write_manifest(tmp_path / "data")
    parser = argparse.ArgumentParser()
    attention.add_arguments(parser)
    a, b = tiny_models["wav2vec2"], write_tiny_ssl(tmp_path / "seed1", "wav2vec2", seed=1)
    args = parser.parse_args(
        [
            a,
            b,
            "--manifest",
            str(manifest),
            "--out",
            str(tmp_path / "out"),
            "--max_files",
            "2",
            "--max_seconds",
            "1.0",
            "--noprogressbar",
        ]
    )
    attention.run(args)
    matrix = check_outputs(tmp_path / "out", entries, a, b, max_files=2)
    assert bool((matrix > 0).all())

    with pytest.raises(SystemExit):
        parser.parse_args([a, b])  # --out is required
    with pytest.raises(FileNotFoundError, match="nope.json"):
        attention.run(
            parser.parse_args([a, b, "--manifest", str(tmp_path / "nope.json"), "--out", str(tmp_path / "x")])
        )
    with pytest.raises(ValueError, match="--manifest"):
        attention.run(parser.parse_args([a, b, "--out", str(tmp_path / "x")]))  # an HF folder has no manifest
    with pytest.raises(FileNotFoundError, match="no_such_model"):
        attention.run(
            parser.parse_args(
                [a, str(tmp_path / "no_such_model"), "--manifest", str(manifest), "--out", str(tmp_path / "x")]
            )
        )
    two_layers = write_tiny_ssl(tmp_path / "two_layers", "wav2vec2")
    config = json.loads((tmp_path / "two_layers" / "config.json").read_text())
    (tmp_path / "two_layers" / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 2}))
    with pytest.raises(ValueError, match=r"run_a .* 3 layers x 4 heads but run_b .*two_layers.* 2 layers"):
        attention.run(parser.parse_args([a, two_layers, "--manifest", str(manifest), "--out", str(tmp_path / "y")]))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists(), (
        "inputs are checked before anything is written"
    )


def test_manifest_defaults_to_run_a(tmp_path):
    """A run's test manifest (with {data_root}) is used when --manifest is not given."""
    _, entries = write_manifest(tmp_path / "corpus")
    manifest = tmp_path / "run" / "test.json"
    manifest.parent.mkdir()
    manifest.write_text(
        json.dumps(
            {k: {**v, "wav": v["wav"].replace(str(tmp_path / "corpus"), "{data_root}")} for k, v in entries.items()}
        )
    )
    (tmp_path / "run" / "hyperparams.yaml").write_text(
        f"data_folder: {tmp_path / 'corpus'}\ntest_annotation: {manifest}\n"
    )
    parser = argparse.ArgumentParser()
    attention.add_arguments(parser)
    read, path = attention._entries(parser.parse_args([str(tmp_path / "run"), "other", "--out", "x"]))
    assert path == str(manifest) and read["utt1"]["wav"] == entries["utt1"]["wav"]


def _main_or_skip():
    from speechbrain_ext.analysis.__main__ import VERBS

    missing = [name for name in VERBS.values() if importlib.util.find_spec(f"speechbrain_ext.analysis.{name}") is None]
    if missing:
        pytest.skip(f"verb modules not written yet: {missing}")
    from speechbrain_ext.analysis.__main__ import main

    return main


def test_cli_end_to_end(tiny_models, tmp_path, capsys):
    main = _main_or_skip()
    manifest, entries = write_manifest(tmp_path / "data")
    a, b = tiny_models["wav2vec2"], write_tiny_ssl(tmp_path / "seed1", "wav2vec2", seed=1)
    out = tmp_path / "out"
    main(
        [
            "attention",
            a,
            b,
            "--manifest",
            str(manifest),
            "--out",
            str(out),
            "--max_files",
            "3",
            "--max_seconds",
            "1.0",
            "--noprogressbar",
        ]
    )
    check_outputs(out, entries, a, b, max_files=3)
    with pytest.raises(SystemExit) as exit_info:
        main(["attention", "--help"])
    assert exit_info.value.code == 0
    assert "Bhattacharyya" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="attention: .*nope.json"):
        main(["attention", a, b, "--manifest", str(tmp_path / "nope.json"), "--out", str(out)])
