"""Decode and resample each training file once: a cache of the model-rate signals, keyed to the source file.

Decoding a 48 kHz file and resampling it to 16 kHz costs a loader worker
more than the rest of the item; done every epoch it is the same work again.
:class:`AudioCache` keeps the mono float32 signal at the target rate in a
``.npy`` file whose name holds a hash of the source's path, its size, its
modification time (ns) and the rate: a changed source gets a new key and
is decoded again (the stale entry is removed). Files already at the
target rate are read directly, uncached (nothing would be saved).

``.npy`` holds float32 exactly, so a cached signal equals the freshly
resampled one bit for bit. Entries are written to a temporary file and
renamed, so two loader workers or DDP ranks that miss at once both write a
whole file and either rename wins. A folder that cannot be written (a
read-only prepared corpus) only means no cache: the signal is returned.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

import numpy as np
import torch

from speechbrain_ext.data.audio import TARGET_SAMPLE_RATE, audio_frames, load_audio

CACHE_FOLDER_NAME = "audio_cache"  # beside the prepared manifests unless the hparams' audio_cache names a folder


class AudioCache:
    """Mono signals at ``sample_rate``, decoded and resampled once per source file version.

    Arguments
    ---------
    folder : str or PathLike
        Where the entries live (created on first write).
    sample_rate : int
        The rate the signals are kept at.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> path = os.path.join(root, "a.wav")
    >>> soundfile.write(path, numpy.random.default_rng(0).normal(size=48000) * 0.1, 48000)
    >>> cache = AudioCache(os.path.join(root, "cache"))
    >>> first, again = cache.load(path), cache.load(path)
    >>> first.shape, bool(torch.equal(first, again)), bool(torch.equal(first, load_audio(path)))
    (torch.Size([16000]), True, True)
    >>> len(os.listdir(os.path.join(root, "cache")))
    1
    """

    def __init__(self, folder: str | os.PathLike, sample_rate: int = TARGET_SAMPLE_RATE):
        self.folder = str(folder)
        self.sample_rate = int(sample_rate)
        self._native: set[str] = set()  # sources already at sample_rate: read directly, never looked up
        self._entries: dict[str, set[str]] | None = None  # source key -> entry names, listed once on the first miss

    def _prefix(self, path: str) -> str:
        digest = hashlib.sha1(os.path.abspath(path).encode("utf-8")).hexdigest()[:20]
        return os.path.join(self.folder, f"{digest}_{self.sample_rate}_")

    def entry(self, path: str | os.PathLike) -> str:
        """The entry file of the source's current version (size and mtime in the name)."""
        stat = os.stat(path)
        return f"{self._prefix(str(path))}{stat.st_size}_{stat.st_mtime_ns}.npy"

    def load(self, path: str | os.PathLike) -> torch.Tensor:
        """The signal of ``path`` as :func:`~speechbrain_ext.data.audio.load_audio` returns it, from the cache when it is there."""
        path = str(path)
        if path not in self._native:
            try:  # a hit costs one stat and the entry's read
                return torch.from_numpy(np.load(self.entry(path)))
            except (OSError, ValueError):  # absent, cut short by a crash of an older writer, or no source
                pass
        if audio_frames(path)[1] == self.sample_rate:  # also the missing/empty-file errors, naming the file
            self._native.add(path)
            return load_audio(path, self.sample_rate)
        signal = load_audio(path, self.sample_rate)
        self._store(self.entry(path), signal)
        return signal

    def _known_entries(self, key: str) -> set[str]:
        """The entry names of one source (``<hash>_<rate>``); the folder is listed once, not on every miss."""
        if self._entries is None:
            self._entries = {}
            names = os.listdir(self.folder) if os.path.isdir(self.folder) else []
            for name in names:
                if name.endswith(".npy"):
                    self._entries.setdefault(name.rsplit("_", 2)[0], set()).add(name)
        return self._entries.setdefault(key, set())

    def _store(self, entry: str, signal: torch.Tensor) -> None:
        name = os.path.basename(entry)
        known = self._known_entries(name.rsplit("_", 2)[0])
        try:
            os.makedirs(self.folder, exist_ok=True)
            for stale in known - {name}:
                _remove(os.path.join(self.folder, stale))
            known.intersection_update({name})
            handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        except OSError:
            return  # an unwritable folder: no cache, same signal
        try:
            with os.fdopen(handle, "wb") as out:
                np.save(out, signal.numpy())
            os.replace(temporary, entry)
            known.add(name)
        except OSError:
            _remove(temporary)  # a full disk: no cache, same signal


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass  # another process removed it first
