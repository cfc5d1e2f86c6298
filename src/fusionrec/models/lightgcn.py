"""LightGCN (He et al. 2020): embeddings smoothed over the user-item graph, trained with BPR."""

from __future__ import annotations

from typing import Any, ClassVar

import scipy.sparse as sp
import torch

from fusionrec.models.configs import LightGCNConfig
from fusionrec.models.torch_base import FactorModel
from fusionrec.training.graph import SparseOperator, normalized_adjacency
from fusionrec.training.losses import bpr_loss, l2_penalty


class _Embeddings(torch.nn.Module):
    def __init__(self, n_nodes: int, factors: int, init_std: float) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(n_nodes, factors)
        torch.nn.init.normal_(self.embedding.weight, std=init_std)


class LightGCN(FactorModel):
    """``E^(l+1) = A_hat E^(l)`` with ``A_hat = D^-1/2 A D^-1/2`` of the bipartite graph, final
    embeddings ``mean_{l=0..L} E^(l)``, ``score(u, i) = <e_u, e_i>``; BPR loss with L2 ``reg`` on the
    batch's layer-0 embeddings; the propagation runs once per batch over the whole sparse graph.

    Parameters
    ----------
    factors: embedding size.  n_layers: propagation steps ``L``.
    reg, epochs, batch_size, learning_rate, patience, min_steps, valid_metric, eval_every,
    init_std, seed, device, verbose: as in :class:`~fusionrec.models.mf.BPRMF` (the automatic
    batch is larger: every batch propagates over the whole graph).
    learning_rate: ``None`` sizes Adam's rate to the batch,
    ``0.05 * (batch / 16384) ** 0.387``, the power law through the two settings measured best:
    0.05 at ML-1M's 16,384-pair batches and 0.01 at a small sparse set's 256 (0.05 there stops at
    epoch 1 below MostPop; 0.01 on ML-1M needs ~100 epochs).
    """

    name = "lightgcn"
    config_class = LightGCNConfig
    batches_per_epoch: ClassVar[int] = 32
    max_auto_batch_size: ClassVar[int] = 16384

    def __init__(
        self,
        *,
        factors: int = 64,
        n_layers: int = 3,
        reg: float = 1e-4,
        epochs: int = 100,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        patience: int = 5,
        min_steps: int = 1000,
        valid_metric: str = "recall@20",
        eval_every: int = 1,
        init_std: float = 0.1,
        seed: int = 0,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        super().__init__()
        self.factors, self.n_layers, self.reg, self.init_std = factors, n_layers, reg, init_std
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.patience, self.min_steps, self.valid_metric, self.eval_every = patience, min_steps, valid_metric, eval_every
        self.seed, self.device, self.verbose = seed, device, verbose
        self._graph: SparseOperator | None = None

    def effective_learning_rate(self, n_pairs: int) -> float:
        if self.learning_rate is not None:
            return float(self.learning_rate)
        batch = self.effective_batch_size(n_pairs)
        return float(min(0.05, max(1e-3, 0.05 * (batch / 16384) ** 0.387)))

    def _build_module(self) -> torch.nn.Module:
        return _Embeddings(self.n_users + self.n_items, self.factors, self.init_std)

    def _prepare_training(self, train: sp.csr_matrix, features: Any | None) -> None:
        self._graph = SparseOperator.from_scipy(normalized_adjacency(train), self.training_device)

    def _release_training(self) -> None:
        self._graph = None

    def _ego(self) -> torch.Tensor:
        """Layer-0 embeddings (the parameters)."""
        module = self.trainable_module()
        assert isinstance(module, _Embeddings)
        return module.embedding.weight

    def propagate(self) -> torch.Tensor:
        """``(n_users + n_items, factors)`` final embeddings: the mean of layers 0..L."""
        assert self._graph is not None
        layer = self._ego()
        total = layer
        for _ in range(self.n_layers):
            layer = self._graph.mm(layer)
            total = total + layer
        return total / (self.n_layers + 1)

    def batch_loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        users, positives, negatives = batch
        final = self.propagate()
        positives, negatives = positives + self.n_users, negatives + self.n_users
        u, i, j = final[users], final[positives], final[negatives]
        loss = bpr_loss((u * i).sum(dim=1), (u * j).sum(dim=1))
        if self.reg:
            ego = self._ego()
            loss = loss + self.reg * l2_penalty(ego[users], ego[positives], ego[negatives])
        return loss

    def prepare_scoring(self) -> None:
        final = self.propagate()
        self._export_factors(final[: self.n_users], final[self.n_users :])
