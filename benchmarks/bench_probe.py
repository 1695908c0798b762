"""The ``probe`` verb on a RAVDESS-sized corpus: ComParE 2016 functionals of 1,440 files of 3-4 s, the default grid.

In one run, each step timed:

1. corpus: ``data_prep.synthetic``'s espeak-ng RAVDESS (24 actors x 60
   speech files, 48 kHz); espeak-ng says a statement in about 2-2.5 s, so
   each file is padded at both ends with low-level noise (-60 dBFS) to a
   length drawn in [3, 4] s (seeded per file), the length of RAVDESS's files;
   then ``prepare_ravdess`` (actors 1-20 train, 21-22 valid, 23-24 test);
2. features: the 6373 functionals of all 1,440 files into the probe's cache
   (a second run finds them cached);
3. probe: ``run_probe`` with ``--baselines compare_functionals`` and its
   defaults (grid, 5 CV folds grouped by actor, training splits, parallel
   fits on the cores this process may use); prints its UAR. Target: features
   + probe <= 600 s (on 2 CPU cores);
4. baseline: on the probe's first CV split at the grid's largest C, the
   solver before this benchmark (``StandardScaler`` + ``LinearSVC(max_iter=20000)``),
   in a child process stopped after ``--old_cap`` seconds, against the probe's
   pipeline on the same rows, both on one core: the ratio of their times
   (a lower bound when the old fit was stopped).

The load average is printed before and after: other processes on the
machine make every time longer.

Usage: ``python benchmarks/bench_probe.py [--work /tmp/bench_probe --old_cap 180 --jobs N]``;
:func:`run` returns the numbers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile

TARGET_S = 600.0
LENGTH_S = (3.0, 4.0)  # drawn per file
NOISE_DBFS = -60.0


def pad_file(path: Path, seed: str, lengths: tuple[float, float] = LENGTH_S) -> float:
    """Pad ``path`` in place with noise at both ends to a length drawn in ``lengths`` (a file already that long is left); returns its duration."""
    rng = random.Random(seed)
    target = rng.uniform(*lengths)
    audio, rate = soundfile.read(str(path), dtype="float32")
    missing = int(round(target * rate)) - len(audio)
    if missing <= 0:
        return len(audio) / rate
    head = int(missing * rng.uniform(0.3, 0.7))
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, 10 ** (NOISE_DBFS / 20), missing).astype(np.float32)
    padded = np.concatenate([noise[:head], audio, noise[head:]])
    tmp = path.with_suffix(".tmp.wav")
    soundfile.write(str(tmp), padded, rate, subtype="PCM_16")
    os.replace(tmp, path)
    return len(padded) / rate


def make_corpus(root: Path, speakers: int = 24, seed: int = 0) -> dict:
    """The synthetic RAVDESS at real length; returns its file count and duration statistics."""
    from data_prep.synthetic import generate_corpus

    generate_corpus("RAVDESS", root, speakers=speakers, seed=seed, progress=True)
    files = sorted(root.glob("Actor_*/03-01-*.wav"))
    durations = np.array([pad_file(f, f"{seed}-{f.relative_to(root)}") for f in files])
    return {
        "files": len(files),
        "min_s": float(durations.min()),
        "mean_s": float(durations.mean()),
        "max_s": float(durations.max()),
    }


def _old_fit(x, y, c, queue) -> None:
    """The probe's solver before this benchmark, timed in a child process."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    queue.put("fitting")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        make_pipeline(StandardScaler(), LinearSVC(max_iter=20000, random_state=0)).set_params(linearsvc__C=c).fit(x, y)
    queue.put((time.perf_counter() - start, not any(issubclass(w.category, ConvergenceWarning) for w in caught)))


def old_vs_new(x: np.ndarray, y: np.ndarray, c: float, cap_s: float) -> dict:
    """Seconds of one fit of the old and of the new solver on the same rows and C (one core each); the old one stopped after ``cap_s``."""
    from threadpoolctl import threadpool_limits

    from speechbrain_ext.analysis.svm_probe import svm_pipeline

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no thread pools inherited from this one
    queue = context.Queue()
    child = context.Process(target=_old_fit, args=(x, y, c, queue))
    child.start()
    if queue.get(timeout=300) != "fitting":
        raise RuntimeError("the old solver's process did not start")
    start = time.perf_counter()  # the cap counts the fit, not the child's imports
    child.join(cap_s)
    capped = child.is_alive()
    if capped:
        child.terminate()
        child.join()
        old_s, converged = time.perf_counter() - start, False
    elif child.exitcode != 0:
        raise RuntimeError(f"the old solver's fit failed (exit code {child.exitcode})")
    else:
        old_s, converged = queue.get(timeout=60)
    with threadpool_limits(1):  # liblinear uses one core; so does the new fit here
        start = time.perf_counter()
        svm_pipeline().set_params(svc__C=c).fit(x, y)
        new_s = time.perf_counter() - start
    return {
        "C": c,
        "old_s": old_s,
        "old_capped": capped,
        "old_converged": converged,
        "new_s": new_s,
        "ratio": old_s / new_s,
    }


def run(
    work: str | Path = "/tmp/bench_probe",
    speakers: int = 24,
    jobs: int | None = None,
    old_cap_s: float = 180.0,
    seed: int = 0,
    verbose: bool = True,
) -> dict:
    """Corpus, features, probe and the old-solver comparison; returns the seconds and the UAR."""
    from data_prep.ravdess import prepare_ravdess
    from speechbrain_ext.analysis.compare2016 import FeatureCache
    from speechbrain_ext.analysis.probe import load_folds, run_probe
    from speechbrain_ext.analysis.svm_probe import C_GRID, available_cores, cv_splits

    work = Path(work)
    corpus, prep, cache, out = work / "RAVDESS", work / "prep", work / "cache", work / "probe"
    result = {"load_before": os.getloadavg(), "cores": available_cores(), "jobs": jobs or available_cores()}

    start = time.perf_counter()
    result["corpus"] = make_corpus(corpus, speakers, seed)
    prepare_ravdess(corpus, prep, allow_subset=speakers < 24)
    result["corpus_s"] = time.perf_counter() - start

    functionals = FeatureCache(
        cache / "opensmile", "functionals"
    )  # where run_probe keeps the baselines: <cache>/opensmile
    paths = [str(p) for p in sorted(corpus.glob("Actor_*/03-01-*.wav"))]
    result["features_cached_before"] = len(paths) - len(functionals.missing(paths))
    start = time.perf_counter()
    functionals.ensure(paths, progress=verbose)
    result["features_s"] = time.perf_counter() - start

    start = time.perf_counter()
    frame = run_probe(
        prep,
        [],
        out,
        baselines=["compare_functionals"],
        data_folder=str(corpus),
        cache=cache,
        progress=verbose,
        n_jobs=jobs,
    )
    result["probe_s"] = time.perf_counter() - start
    row = frame.iloc[0]
    result.update(
        UAR=float(row["UAR"]),
        WA=float(row["WA"]),
        C=float(row["C"]),
        cv_UAR=float(row["cv_UAR"]),
        n_train=int(row["n_train"]),
        n_test=int(row["n_test"]),
    )
    result["total_s"] = result["features_s"] + result["probe_s"]
    result["met"] = result["total_s"] <= TARGET_S

    (fold,) = load_folds(prep, str(corpus))
    labels = sorted({e["emo"] for e in fold.entries.values()})
    x = functionals.get([e["wav"] for e in fold.train.values()])
    y = np.array([labels.index(e["emo"]) for e in fold.train.values()])
    groups = np.array([e["speaker"] for e in fold.train.values()])
    first, _ = cv_splits(y, groups, 5, seed)[0]  # the probe's first CV training rows
    result["old_vs_new"] = old_vs_new(x[first], y[first], max(C_GRID), old_cap_s)
    result["load_after"] = os.getloadavg()
    if verbose:
        report(result)
    return result


def report(result: dict) -> None:
    """Print the corpus, the seconds of each step, the UAR and the old/new ratio."""
    c = result["corpus"]
    print(
        f"probe on a RAVDESS-sized corpus: {c['files']} files of {c['min_s']:.2f}-{c['max_s']:.2f} s (mean {c['mean_s']:.2f} s)"
    )
    print(
        f"    load average before: {' '.join(f'{v:.2f}' for v in result['load_before'])}; {result['cores']} cores, {result['jobs']} fits at once"
    )
    print(f"    corpus (synthesis, padding, preparation): {result['corpus_s']:8.1f} s")
    print(
        f"    features (ComParE functionals, {result['features_cached_before']} of {c['files']} cached before): {result['features_s']:8.1f} s"
    )
    print(
        f"    probe (default grid, {result['n_train']} training / {result['n_test']} test files): {result['probe_s']:8.1f} s"
    )
    print(f"    UAR {result['UAR']:.4f}, WA {result['WA']:.4f}, C {result['C']:g} (CV UAR {result['cv_UAR']:.4f})")
    o = result["old_vs_new"]
    old = f"{'>= ' if o['old_capped'] else ''}{o['old_s']:.1f} s{' (stopped)' if o['old_capped'] else '' if o['old_converged'] else ' (not converged)'}"
    print(
        f"    one fit at C={o['C']:g}, one core: old LinearSVC {old}, new {o['new_s']:.2f} s: {'>= ' if o['old_capped'] else ''}{o['ratio']:.1f}x"
    )
    print(f"    load average after: {' '.join(f'{v:.2f}' for v in result['load_after'])}")
    print(
        f"    target features + probe <= {TARGET_S:.0f} s: {'met' if result['met'] else 'MISSED'} ({result['total_s']:.1f} s)"
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/bench_probe", help="corpus, manifests, feature cache and probe outputs")
    parser.add_argument("--speakers", type=int, default=24)
    parser.add_argument(
        "--jobs", type=int, default=None, help="probe fits at once (default: the cores this process may use)"
    )
    parser.add_argument(
        "--old_cap", type=float, default=180.0, help="seconds the old solver's fit may take before it is stopped"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return run(args.work, args.speakers, args.jobs, args.old_cap, args.seed)


if __name__ == "__main__":
    main()
