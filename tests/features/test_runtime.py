"""Threads and workers never exceed the cores; explicit settings are honoured or lowered."""

from __future__ import annotations

import pytest
import torch

from fusionrec.errors import ModelError
from fusionrec.features import runtime
from fusionrec.features.runtime import plan_compute, torch_threads


@pytest.mark.parametrize("cores", [1, 2, 8])
@pytest.mark.parametrize("threads", [None, 1, 4, 64])
@pytest.mark.parametrize("workers", [None, 0, 1, 16])
def test_never_more_threads_plus_workers_than_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, threads: int | None, workers: int | None
) -> None:
    monkeypatch.setattr(runtime, "available_cores", lambda: cores)
    for uses_workers in (False, True):
        plan = plan_compute("cpu", threads, workers, uses_workers=uses_workers)
        assert plan.threads >= 1 and plan.workers >= 0
        assert plan.threads + plan.workers <= max(cores, 1 + plan.workers) and plan.threads <= cores
        if not uses_workers:
            assert plan.workers == 0


def test_defaults_on_two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    assert plan_compute("cpu", uses_workers=True) == runtime.ComputePlan("cpu", threads=1, workers=1)
    assert plan_compute("cpu", uses_workers=False) == runtime.ComputePlan("cpu", threads=2, workers=0)
    assert plan_compute("cpu", threads=1, uses_workers=False).threads == 1


def test_torch_threads_is_set_and_restored() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_cuda_is_never_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match="cuda"):
        plan_compute("cuda")
