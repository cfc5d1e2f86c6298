"""Compute settings for extraction: device, torch threads and decoding workers.

On small machines oversubscription is the main way to lose speed (on 2 shared cores, 2 torch
threads ran up to 30x slower than 1 while another process was busy), so threads are an explicit
setting and extraction never runs more compute threads plus decoding workers than there are cores.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)


def available_cores() -> int:
    """Cores this process may run on (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ComputePlan:
    """Resolved settings: ``threads`` torch threads in this process, ``workers`` decoding processes."""

    device: str
    threads: int
    workers: int


def plan_compute(
    device: str = "cpu", threads: int | None = None, workers: int | None = None, *, uses_workers: bool = False
) -> ComputePlan:
    """Resolve thread and worker counts so that ``threads + workers <= cores``.

    Defaults: one decoding worker when the modality decodes files (images, audio) and there are
    at least 2 cores, and the remaining cores as torch threads. Explicit values larger than the
    machine allows are lowered, with a warning.
    """
    cores = available_cores()
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            from fusionrec.errors import ModelError

            raise ModelError("device 'cuda' was asked for but torch sees no CUDA device")
    n_workers = (1 if cores >= 2 else 0) if workers is None else max(0, workers)
    if not uses_workers:
        n_workers = 0
    if n_workers >= cores:
        log.warning("lowering decoding workers from %d to %d (%d cores)", n_workers, cores - 1, cores)
        n_workers = cores - 1
    budget = max(1, cores - n_workers)
    n_threads = budget if threads is None else max(1, threads)
    if n_threads > budget:
        log.warning(
            "lowering torch threads from %d to %d (%d cores, %d decoding workers)",
            n_threads,
            budget,
            cores,
            n_workers,
        )
        n_threads = budget
    return ComputePlan(device=device, threads=n_threads, workers=n_workers)


@contextlib.contextmanager
def torch_threads(n_threads: int) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(n_threads)`` and serial tokenizers, then restore."""
    import torch

    previous = torch.get_num_threads()
    previous_tok = os.environ.get("TOKENIZERS_PARALLELISM")
    torch.set_num_threads(n_threads)
    if n_threads <= 1:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        torch.set_num_threads(previous)
        if previous_tok is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous_tok
