"""BPR-MF: matrix factorisation trained with the Bayesian personalised ranking loss (Rendle et al. 2009)."""

from __future__ import annotations

import torch

from fusionrec.models.torch_base import FactorModel, FactorModelConfig
from fusionrec.training.losses import bpr_loss, l2_penalty


class BPRMFConfig(FactorModelConfig):
    """BPR-MF's hyper-parameters: those of every factor model, with its own defaults."""


class _Factors(torch.nn.Module):
    def __init__(self, n_users: int, n_items: int, factors: int, init_std: float) -> None:
        super().__init__()
        self.user = torch.nn.Embedding(n_users, factors)
        self.item = torch.nn.Embedding(n_items, factors)
        torch.nn.init.normal_(self.user.weight, std=init_std)
        torch.nn.init.normal_(self.item.weight, std=init_std)


class BPRMF(FactorModel):
    """Matrix factorisation ``score(u, i) = <p_u, q_i>`` learned with BPR on uniformly sampled
    negatives, Adam, L2 ``reg`` on the batch's embeddings, early stopping on ``valid_metric``.

    Parameters
    ----------
    factors: embedding size.
    reg: weight of ``sum ||p_u||^2 + ||q_i||^2 + ||q_j||^2 / (2 * batch)``.
    epochs, batch_size, learning_rate, patience, valid_metric, eval_every, seed: see Trainer.
    init_std: standard deviation of the normal initialisation.
    verbose: show a progress bar.
    """

    name = "bpr"
    config_class = BPRMFConfig

    def __init__(
        self,
        *,
        factors: int = 64,
        reg: float = 1e-4,
        epochs: int = 100,
        batch_size: int = 4096,
        learning_rate: float = 5e-3,
        patience: int = 5,
        valid_metric: str = "recall@20",
        eval_every: int = 1,
        init_std: float = 0.1,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        super().__init__()
        self.factors, self.reg, self.init_std = factors, reg, init_std
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.patience, self.valid_metric, self.eval_every = patience, valid_metric, eval_every
        self.seed, self.verbose = seed, verbose

    def _build_module(self) -> torch.nn.Module:
        return _Factors(self.n_users, self.n_items, self.factors, self.init_std)

    def batch_loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        users, positives, negatives = batch
        module = self._factors()
        u = module.user(users)
        i = module.item(positives)
        j = module.item(negatives)
        loss = bpr_loss((u * i).sum(dim=1), (u * j).sum(dim=1))
        return loss + self.reg * l2_penalty(u, i, j) if self.reg else loss

    def _factors(self) -> _Factors:
        module = self.trainable_module()
        assert isinstance(module, _Factors)
        return module

    def prepare_scoring(self) -> None:
        module = self._factors()
        self._export_factors(module.user.weight, module.item.weight)
