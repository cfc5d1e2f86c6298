"""Connecting to Ray: ``"local"`` starts a local cluster, anything else joins an existing one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from fusionrec.errors import ModelError

INSTALL_HINT = 'Ray is not installed: pip install -e ".[ray]" (or pip install "ray[data,tune]>=2.9")'


def require_ray() -> ModuleType:
    """The ``ray`` module, or a ModelError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ModelError(INSTALL_HINT) from None
    return ray


def n_workers() -> int:
    """Worker processes to use: the cluster's CPUs (at least 1)."""
    ray = require_ray()
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


@contextmanager
def connect(address: str, *, num_cpus: int | None = None, **init_kwargs: Any) -> Iterator[ModuleType]:
    """Make a Ray connection for the ``with`` block and yield the ``ray`` module.

    ``address="local"`` starts a local cluster on this machine (``num_cpus``, default all cores;
    no dashboard; worker logs are not forwarded); any other value (``auto``, ``ray://host:10001``,
    ``host:6379``) joins an existing cluster. A connection made here is shut down at the end; one
    that already existed (``ray.is_initialized()``) is reused and left running.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if address == "local":
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            ignore_reinit_error=True,
            log_to_driver=False,
            **init_kwargs,
        )
    else:
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, **init_kwargs)
        except ConnectionError as exc:
            raise ModelError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()
