"""Process groups that fail with a message instead of hanging, and one live run per output folder.

- :func:`init_process_group`: under torchrun, the process group with a
  timeout of ``ddp_timeout`` minutes (SpeechBrain's ``ddp_init_group`` fixes
  two hours). Any collective that one rank never joins then ends the run with
  an error after that time instead of hanging it.
- :func:`trace_collectives`: every rank remembers its last two collectives
  and where they were called from; when one fails (a timeout), the rank logs
  both. Comparing the ranks' lines shows which collective was left unmatched.
  ``SIGUSR1`` dumps every thread's Python stack (``faulthandler``), for a
  watchdog (``tests/stress_ddp.py``).
- :func:`run_on_main_unbounded`: work of the main process alone that may
  take longer than the timeout (data preparation, Whisper transcription,
  post-training stages): the other ranks wait on the rendezvous store without
  a deadline, and learn whether the main process failed.
- :func:`shutdown`: a barrier, then the group destroyed, so that no rank's
  communication threads outlive the interpreter (an abort at exit otherwise:
  "terminate called without an active exception").
"""

from __future__ import annotations

import datetime
import faulthandler
import functools
import gc
import logging
import os
import signal
import sys

import torch
from speechbrain.utils.distributed import MainProcessContext, ddp_barrier, if_main_process

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MINUTES = 30  # a collective waits this long for the slowest rank before the run fails
# the collectives the recipes and SpeechBrain call; each is traced
TRACED = (
    "barrier",
    "broadcast",
    "broadcast_object_list",
    "all_gather",
    "all_gather_object",
    "all_reduce",
    "gather_object",
    "reduce",
)
_recent: list[str] = []  # this rank's last two collectives, newest last


def init_process_group(run_opts: dict, timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES) -> bool:
    """Join the torchrun process group with a timeout (no-op outside torchrun).

    Arguments
    ---------
    run_opts : dict
        SpeechBrain's run options (``distributed_backend``).
    timeout_minutes : float
        How long a collective waits for every rank.

    Returns
    -------
    bool
        Whether a process group was started.

    Example
    -------
    >>> init_process_group({"distributed_backend": "gloo"})  # not under torchrun
    False
    """
    rank, local_rank = os.environ.get("RANK"), os.environ.get("LOCAL_RANK")
    if rank is None or local_rank is None or torch.distributed.is_initialized():
        return False
    timeout_minutes = float(timeout_minutes)
    if timeout_minutes <= 0:
        raise ValueError(f"ddp_timeout must be a positive number of minutes, got {timeout_minutes}")
    backend = run_opts["distributed_backend"]
    if backend == "nccl":
        torch.cuda.set_device(int(local_rank))
    torch.distributed.init_process_group(
        backend=backend, rank=int(rank), timeout=datetime.timedelta(minutes=timeout_minutes)
    )
    trace_collectives()
    faulthandler.enable(
        all_threads=True
    )  # a fatal signal (an abort in a communication thread) prints the Python stacks
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    return True


def _call_site() -> str:
    """The first frame outside torch and SpeechBrain's DDP helpers: where the collective was asked for."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if f"{os.sep}torch{os.sep}" not in name and not name.endswith(("speechbrain/utils/distributed.py", __file__)):
            return f"{name}:{frame.f_lineno} ({frame.f_code.co_name})"
        frame = frame.f_back
    return "?"


def trace_collectives() -> None:
    """Wrap ``torch.distributed``'s collectives (see :data:`TRACED`) so that a failing one is logged with the one before.

    Module-level functions are replaced because SpeechBrain's helpers call
    them through the module; wrapping twice is a no-op.

    Example
    -------
    >>> trace_collectives(); trace_collectives()
    >>> torch.distributed.barrier.__name__, torch.distributed.barrier._traced_collective
    ('barrier', True)
    """
    for name in TRACED:
        original = getattr(torch.distributed, name)
        if getattr(original, "_traced_collective", False):
            continue

        @functools.wraps(original)
        def traced(*args, _name=name, _original=original, **kwargs):
            _recent[:] = [*_recent[-1:], f"{_name} from {_call_site()}"]
            try:
                return _original(*args, **kwargs)
            except Exception as err:
                before = _recent[0] if len(_recent) > 1 else "none"
                logger.error(
                    "rank %s: collective %s failed (%s: %s); the collective before it was %s",
                    torch.distributed.get_rank() if torch.distributed.is_initialized() else "?",
                    _recent[-1],
                    type(err).__name__,
                    str(err).strip().splitlines()[0] if str(err).strip() else "",
                    before,
                )
                raise

        traced._traced_collective = True
        setattr(torch.distributed, name, traced)


def run_on_main_unbounded(func, args=(), kwargs=None, name: str | None = None):
    """``func`` on the main process; the other ranks wait for it without the collective timeout.

    The main process writes ``ok`` or the error into the rendezvous store;
    the others poll for it, then raise if the main process failed. Outside
    DDP this is ``func(*args, **kwargs)``.

    Returns
    -------
    What ``func`` returned on the main process; None on the others.

    Example
    -------
    >>> run_on_main_unbounded(sum, ([1, 2],))
    3
    """
    kwargs = kwargs or {}
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return func(*args, **kwargs)
    store = torch.distributed.distributed_c10d._get_default_store()
    key = f"speechbrain_ext/main_only/{name or getattr(func, '__qualname__', 'work')}"
    result = None
    if if_main_process():
        try:
            with (
                MainProcessContext()
            ):  # collectives inside (SpeechBrain's main-only helpers) become no-ops, as in run_on_main
                result = func(*args, **kwargs)
        except BaseException as err:
            store.set(key, f"error: {type(err).__name__}: {err}")
            raise
        store.set(key, "ok")
    else:
        store.wait([key], datetime.timedelta(days=30))
        state = store.get(key).decode()
        if state != "ok":
            raise RuntimeError(f"the main process failed in {key.rsplit('/', 1)[-1]}: {state[len('error: ') :]}")
    ddp_barrier()  # every rank leaves together (cheap now that the main process is done)
    if torch.distributed.get_rank() == 0:
        store.delete_key(key)
    return result


def shutdown() -> None:
    """Wait for every rank, then destroy the process group (no-op outside DDP).

    Callers drop their DDP wrappers first (:meth:`~speechbrain_ext.training.ddp_brain.DistributedBrain.drop_distributed_wrappers`), so
    that the group's last reference goes here and its threads end while the interpreter is alive.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        gc.collect()  # DDP reducers left in reference cycles hold the group: free them first
        ddp_barrier()
        torch.distributed.destroy_process_group()
