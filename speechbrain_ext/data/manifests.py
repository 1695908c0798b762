"""The prepared manifests: one reader, and the one place where ``{data_root}`` is filled in.

The data preparation (:mod:`data_prep`) writes one JSON manifest per split
(``train.json``, ``valid.json``, ``test.json``): utterance id -> entry
(``wav``, ``duration``, ``speaker``, the label fields, and later the Whisper
transcript). Audio paths start with the ``{data_root}`` placeholder instead of
the corpus folder, so a prepared folder survives moving the corpus.
Everything that reads a manifest goes through :func:`read_manifest`; callers
that need more (label checks, datasets, lists of audio files) build on it.
"""

from __future__ import annotations

import json
import os

#: Placeholder written into manifests instead of the absolute corpus path.
DATA_ROOT = "{data_root}"

#: The recipes' splits, each with its manifest (the YAML's ``<split>_annotation``).
SPLITS = ("train", "valid", "test")


def read_manifest(manifest: str | os.PathLike, data_root: str | os.PathLike | None = None) -> dict:
    """The entries of a JSON manifest, in file order, with a clear error for a missing or broken file.

    Arguments
    ---------
    manifest : str or PathLike
        The manifest file.
    data_root : str or PathLike, optional
        What ``{data_root}`` stands for (the corpus folder). None: the entries
        as written, placeholders kept (to rewrite the manifest, or to read
        only ids and labels).

    Returns
    -------
    dict
        Utterance id -> entry.

    Example
    -------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "test.json"
    >>> _ = path.write_text(json.dumps({"u1": {"wav": "{data_root}/a.wav", "emo": "sad"}}))
    >>> read_manifest(path, "/corpus")
    {'u1': {'wav': '/corpus/a.wav', 'emo': 'sad'}}
    >>> read_manifest(path)["u1"]["wav"]
    '{data_root}/a.wav'
    """
    try:
        with open(manifest, encoding="utf-8") as handle:
            entries = json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{manifest}: manifest not found (run the data preparation, or set skip_prep: False)"
        ) from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{manifest}: not valid JSON ({err})") from None
    return entries if data_root is None else fill_data_root(entries, data_root)


def fill_data_root(value, data_root: str | os.PathLike):
    """``value`` (an entry, a path, or anything JSON holds) with every ``{data_root}`` in its strings replaced by ``data_root``.

    Only the placeholder is replaced: other braces (a transcript may hold
    some) are kept as they are.

    Example
    -------
    >>> fill_data_root({"wav": "{data_root}/a.wav", "text": "{sic}", "n": 1}, "/corpus")
    {'wav': '/corpus/a.wav', 'text': '{sic}', 'n': 1}
    """
    if isinstance(value, str):
        return value.replace(DATA_ROOT, str(data_root))
    if isinstance(value, dict):
        return {key: fill_data_root(item, data_root) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_data_root(item, data_root) for item in value]
    return value


def uses_data_root(value) -> bool:
    """Whether any string in ``value`` (entries, an entry, a path) holds the ``{data_root}`` placeholder.

    Example
    -------
    >>> uses_data_root({"u1": {"wav": "{data_root}/a.wav"}}), uses_data_root({"u1": {"wav": "/a.wav"}})
    (True, False)
    """
    if isinstance(value, str):
        return DATA_ROOT in value
    if isinstance(value, dict):
        return any(DATA_ROOT in str(key) or uses_data_root(item) for key, item in value.items())
    if isinstance(value, list):
        return any(uses_data_root(item) for item in value)
    return False
