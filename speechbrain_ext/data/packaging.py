"""Hugging Face folders packed into one file of an exported model: tokenizers and the Whisper transcriber.

An exported model folder must load offline and from nothing outside itself
(:mod:`speechbrain_ext.serving.export`). Weights of fine-tuned modules go into
``model.ckpt`` and their configurations inline into ``hyperparams.yaml``; what
is neither (a text encoder's tokenizer files, the whole Whisper model that
transcribes for a text or fused model) is packed here as a tar archive that
SpeechBrain's ``Pretrainer`` fetches like any other file, and unpacked beside
it at load time by the owning module's transfer hook.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path


def local_folder(source: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The local folder holding the files of ``source``: the folder itself, or its snapshot in the download cache (offline)."""
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source, cache_dir=str(cache_dir) if cache_dir else None, local_files_only=True))
    except Exception as err:  # noqa: BLE001 - any hub error means the files are not here
        raise FileNotFoundError(
            f"{source}: its files are not in the download cache {cache_dir} ({err}); the run that used it must have downloaded it"
        ) from None


def pack_folder(folder: str | os.PathLike, archive: str | os.PathLike) -> Path:
    """Write the files of ``folder`` into a tar archive, written atomically; links are followed.

    Example
    -------
    >>> src = Path(tempfile.mkdtemp()); (src / "config.json").write_text("{}")
    2
    >>> out = pack_folder(src, Path(tempfile.mkdtemp()) / "pack.ckpt")
    >>> sorted(p.name for p in unpack(out).iterdir())
    ['config.json']
    """
    folder, archive = Path(folder), Path(archive)
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if not files:
        raise FileNotFoundError(f"{folder}: nothing to pack")
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w", dereference=True) as tar:
        for path in files:
            tar.add(path, arcname=path.name)
    os.replace(tmp, archive)
    return archive


def unpack(archive: str | os.PathLike) -> Path:
    """Unpack an archive written by :func:`pack_folder` into the folder beside it (``<name>.d``); done once, atomically."""
    archive = Path(archive)
    target = archive.with_name(archive.name + ".d")
    if not target.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        try:
            tmp.rename(target)
        except OSError:  # another process unpacked it first
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def save_tokenizer(source: str, cache_dir: str | os.PathLike | None, archive: str | os.PathLike) -> Path:
    """Pack the tokenizer files of a text encoder (what ``AutoTokenizer`` needs, without weights)."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        AutoTokenizer.from_pretrained(source, cache_dir=str(cache_dir) if cache_dir else None).save_pretrained(tmp)
        return pack_folder(tmp, archive)
