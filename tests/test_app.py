"""The demo page (speechbrain_ext.serving.app): its answers against the interface's, its Space files, and the
page itself driven in a headless Chromium (one page load, a good and a corrupt upload)."""

import ast
import contextlib
import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
import torch

from speechbrain_ext.data.audio import AudioLoadError
from speechbrain_ext.serving.app import analyse, load_interface
from speechbrain_ext.serving.export.cli import main as hub_main
from speechbrain_ext.serving.export.space import SPACE_REQUIREMENTS
from speechbrain_ext.serving.model_interface import ModelInterface
from tests.model_folders import REPO, random_model_folder

CHROMEDRIVER = "/usr/bin/chromedriver"
HAS_BROWSER = bool(shutil.which("chromium")) and os.path.exists(CHROMEDRIVER)
BROWSER_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,1400"]
# No recipe pairs segment windows with a Bayesian head: the test model takes bayes.yaml's Bayesian stage and gives
# its model seg.yaml's windows (80 frames every 40), so one page shows the bars, the timeline and the uncertainty.
SEGMENT_NODE = """    segments: !new:speechbrain_ext.nn.pooling.SegmentPooling
        segment_size: 80
        hop: 40
    decision: most_confident
"""


@pytest.fixture(scope="module")
def segment_bayes_model(tiny_models, tmp_path_factory):
    """A random-weight segment model with a Bayesian head, exported."""
    root = tmp_path_factory.mktemp("app_model")
    text = (REPO / "recipes/RAVDESS/hparams/bayes.yaml").read_text()
    node = "bayes_model: !new:speechbrain_ext.nn.models.UtteranceModel\n"
    start = text.index(node)
    end = text.index("\n\n", start) + 1
    bayes_model = text[start:end].replace("UtteranceModel", "SegmentModel") + SEGMENT_NODE
    (root / "seg_bayes.yaml").write_text(text[:start] + bayes_model + text[end:])
    folder, _ = random_model_folder(root / "seg_bayes.yaml", tiny_models, root)
    return folder


@pytest.fixture(scope="module")
def page_server(segment_bayes_model, tmp_path_factory):
    """``python -m speechbrain_ext.app`` on the test model, booting while the test computes its references;
    ``(url, process, log file)``."""
    if not HAS_BROWSER:
        yield None
        return
    root = tmp_path_factory.mktemp("page_server")
    port = free_port()
    command = [sys.executable, "-m", "speechbrain_ext.app", "--model", str(segment_bayes_model), "--port", str(port)]
    command += ["--savedir", str(root / "served"), "--samples", "20"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_TEMP_DIR": str(root / "uploads")}
    log = root / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    yield f"http://127.0.0.1:{port}/", server, log
    server.terminate()
    server.wait(timeout=30)


def write_speechlike(path, seconds=5.0, sample_rate=22050, seed=0):
    """Noise bursts under a moving tone, at a rate the model resamples from."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    bursts = (np.sin(2 * np.pi * 1.3 * t) > 0).astype(float)
    signal = 0.3 * bursts * (np.sin(2 * np.pi * (150 + 60 * t) * t) + 0.3 * rng.standard_normal(t.size))
    soundfile.write(path, signal, sample_rate)
    return path


def test_long_file_encoded_once_chunk_by_chunk(segment_bayes_model, tmp_path):
    """Past max_chunk_seconds the file is encoded once, a chunk at a time with progress; every answer is the interface's."""
    interface = load_interface(str(segment_bayes_model), str(tmp_path / "saved"))
    assert interface.is_bayesian and type(interface.model).__name__ == "SegmentModel"
    interface.hparams.max_chunk_seconds = 2.0
    wav = write_speechlike(tmp_path / "long.wav", seconds=5.0)
    reports = []
    answer = analyse(interface, str(wav), n_samples=50, report=lambda f, text: reports.append((f, text)))
    chunks = [(f, text) for f, text in reports if text.startswith("encoded chunk")]
    assert chunks == [(k / 3, f"encoded chunk {k} of 3") for k in (1, 2, 3)]  # ceil(5 / 2) chunks, encoded once
    assert not {"file_frames", "transcribe_file"} & set(vars(interface))  # the interface is itself again
    out_prob, _, _, text_lab = interface.classify_file(wav)
    assert answer.label == text_lab[0]
    assert answer.probabilities == pytest.approx(dict(zip(interface.labels, out_prob[0].exp().tolist())), abs=1e-6)
    assert answer.timeline == interface.classify_file(wav, segments=True)
    assert len(answer.timeline) > 3
    u = answer.uncertainty
    mean = np.array([u["mean"][c] for c in interface.labels])
    assert mean.sum() == pytest.approx(1.0, abs=1e-5)
    assert u["entropy"] == pytest.approx(-(mean * np.log(mean)).sum(), abs=1e-4)  # entropy of the mean prediction
    assert 0.0 <= u["mutual_information"] <= u["entropy"] + 1e-6
    assert all(0.0 <= s <= 0.5 for s in u["std"].values())  # a [0, 1] quantity's std is at most 1/2
    assert answer.transcript is None and answer.intensities is None


def test_regressor_answer(tiny_models, tmp_path):
    """A Bayesian regressor's page shows predict_file's intensities with uncertainty_file's spread."""
    folder, _ = random_model_folder("recipes/Hume-Prosody/hparams/audio_bayes.yaml", tiny_models, tmp_path)
    interface = load_interface(str(folder), str(tmp_path / "saved"))
    wav = write_speechlike(tmp_path / "clip.wav", seconds=2.0)
    answer = analyse(interface, str(wav), n_samples=30)
    assert answer.intensities == interface.predict_file(wav) and len(answer.intensities) == 9
    assert list(answer.uncertainty) == list(answer.intensities)
    assert all(0.0 <= v["mean"] <= 1.0 and v["std"] >= 0.0 for v in answer.uncertainty.values())
    assert answer.label is None and answer.timeline is None and answer.transcript is None


class TextInterface:
    """Stands in for a Bayesian text model's interface: every answer asks for the transcript."""

    labels = ["angry", "neutral"]
    is_bayesian = True
    reads_text = True

    def __init__(self):
        self.hparams, self.model, self.transcribed = SimpleNamespace(), torch.nn.Linear(1, 1), []

    def remembering(self, on_chunk=None):
        return contextlib.nullcontext()

    def transcribe_file(self, path):
        self.transcribed.append(path)
        return "so happy"

    def file_frames(self, path, model=None):
        raise AssertionError("a text model reads no frames")

    def classify_file(self, path, return_transcript=False):
        text = self.transcribe_file(path)
        return torch.log(torch.tensor([[0.25, 0.75]])), None, None, ["neutral"], text

    def uncertainty_file(self, path, n_samples):
        self.transcribe_file(path)
        mean = torch.tensor([[0.3, 0.7]])
        return {"mean_probs": mean, "std_probs": mean / 10, "entropy": [0.61], "mutual_information": [0.02]}


def test_text_model_shows_its_transcript(tmp_path):
    """A model that reads text: the transcript is shown beside the decision and the uncertainty."""
    interface = TextInterface()
    wav = write_speechlike(tmp_path / "clip.wav", seconds=1.0)
    answer = analyse(interface, str(wav), n_samples=10)
    assert interface.transcribed == [str(wav)] * 2 and answer.transcript == "so happy"
    assert answer.label == "neutral" and answer.probabilities == pytest.approx({"angry": 0.25, "neutral": 0.75})
    assert answer.timeline is None and answer.uncertainty["std"] == pytest.approx({"angry": 0.03, "neutral": 0.07})


def test_interface_transcribes_once_while_remembering(tmp_path):
    """Inside ``remembering`` Whisper runs once per file; outside, every ask runs it."""
    interface = ModelInterface.__new__(ModelInterface)  # only transcribe_file's own code runs
    batches = []
    interface.transcribe_batch = lambda wavs: batches.append(wavs.shape) or ["so happy"]
    wav = write_speechlike(tmp_path / "clip.wav", seconds=1.0)
    with interface.remembering():
        assert [interface.transcribe_file(str(wav)) for _ in range(3)] == ["so happy"] * 3
    assert len(batches) == 1
    interface.transcribe_file(str(wav))
    assert len(batches) == 2


def test_space_loader_without_package(segment_bayes_model, tmp_path, monkeypatch):
    """Where speechbrain_ext is not installed (a Space), the page loads the folder's custom_interface.py."""
    import speechbrain.inference.interfaces as sb_interfaces

    calls = []

    def foreign_class(*args, **kwargs):
        calls.append((args, kwargs))
        return real_foreign_class(*args, **kwargs)

    real_foreign_class = sb_interfaces.foreign_class
    monkeypatch.setattr(sb_interfaces, "foreign_class", foreign_class)
    monkeypatch.setitem(sys.modules, "speechbrain_ext.serving.classify", None)  # its import now fails
    interface = load_interface(str(segment_bayes_model), str(tmp_path / "saved"))
    assert [(a, k["pymodule_file"], k["classname"]) for a, k in calls] == [
        ((str(segment_bayes_model),), "custom_interface.py", "EmotionClassifier")
    ]
    wav = write_speechlike(tmp_path / "clip.wav", seconds=2.0)
    assert analyse(interface, str(wav)).label == interface.classify_file(wav)[3][0]


def test_export_space_files(segment_bayes_model, tmp_path):
    """hub export --space writes the page as app.py (no top-level speechbrain_ext import) and pinned requirements."""
    run = segment_bayes_model.parent / "run"
    out = tmp_path / "space"
    hub_main(
        ["export", "--train-hparams", str(run / "hyperparams.yaml"), "--out", str(out), "--space"]
        + ["--checkpoint", str(run / "save" / "CKPT+random")]
    )
    source = (out / "app.py").read_text()
    assert source == (REPO / "speechbrain_ext/serving/app.py").read_text()
    top = [n for n in ast.parse(source).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in top if isinstance(n, ast.ImportFrom)]
    assert names and not [n for n in names if n.startswith("speechbrain_ext")], names
    pins = dict(line.split("==") for line in (out / "requirements.txt").read_text().split())
    assert pins == SPACE_REQUIREMENTS
    installed = {name: importlib.metadata.version(name) for name in pins}
    assert {k: v.split("+")[0] for k, v in installed.items()} == pins  # the versions this test ran with
    card = (out / "README.md").read_text()
    assert card.startswith("---\nsdk: gradio\n") and "app_file: app.py" in card.split("\n---", 1)[0]
    assert (out / "model.ckpt").is_file() and (out / "custom_interface.py").is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status


@pytest.mark.skipif(
    not HAS_BROWSER, reason="needs Debian's chromium and chromium-driver (make system-deps installs them)"
)
def test_page_in_browser(segment_bayes_model, page_server, tmp_path):
    """One page load: a good WAV shows classify_file's label, the timeline and the uncertainty; a corrupt file shows
    the interface's error, and the page keeps serving."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, server, log = page_server
    # The reference answers, computed by the interface in this process.
    good = write_speechlike(tmp_path / "speech.wav", seconds=4.0)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all" * 40)
    interface = load_interface(str(segment_bayes_model), str(tmp_path / "reference"))
    expected_label = interface.classify_file(good)[3][0]
    with pytest.raises(AudioLoadError) as expected_error:
        interface.classify_file(corrupt)
    deadline = time.monotonic() + 90
    while True:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            if http_status(url) == 200:
                break
        except OSError:
            assert time.monotonic() < deadline, "the page did not come up in 90 s"
            time.sleep(0.5)
    options = webdriver.ChromeOptions()
    for arg in BROWSER_ARGS:
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        browser.get(url)
        wait = WebDriverWait(browser, 60)

        def upload(path):
            field = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#audio input[type=file]"))
            field[0].send_keys(str(path))

        def status(prefix):
            wait.until(lambda b: b.find_element(By.ID, "status").text.startswith(prefix))
            return browser.find_element(By.ID, "status").text

        upload(good)
        assert status("Label:") == f"Label: {expected_label}"
        bars = browser.find_element(By.ID, "label").text.split("\n")
        assert bars[1] == expected_label and set(interface.labels) <= set(bars)  # heading, then one bar a class
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#plot img, #plot svg"))
        uncertainty = browser.find_element(By.ID, "uncertainty").text
        assert uncertainty.startswith("Entropy") and "mutual information" in uncertainty
        assert "(20 weight samples)" in uncertainty and all(c in uncertainty for c in interface.labels)
        loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert loaded and not [u for u in loaded if not u.startswith(url)]  # offline: nothing fetched from elsewhere
        browser.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 10_000

        browser.find_element(By.CSS_SELECTOR, "#audio button[aria-label=Clear]").click()
        upload(corrupt)
        shown = status("Cannot use this file:").removeprefix("Cannot use this file: ")
        served_path = shown.split(": ", 1)[0]  # the page names the uploaded copy of the file
        assert Path(served_path).name == "corrupt.wav"
        assert shown == str(expected_error.value).replace(str(corrupt), served_path)
        assert browser.find_element(By.ID, "uncertainty").text == ""  # no stale answer beside the error
    finally:
        browser.quit()
    assert server.poll() is None and http_status(url) == 200  # still serving
