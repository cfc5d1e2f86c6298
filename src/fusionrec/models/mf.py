"""BPR-MF: matrix factorisation trained with the Bayesian personalised ranking loss (Rendle et al. 2009)."""

from __future__ import annotations

from typing import ClassVar

import torch

from fusionrec.models.configs import BPRMFConfig
from fusionrec.models.torch_base import FactorModel
from fusionrec.training.losses import bpr_loss, l2_penalty


class _Factors(torch.nn.Module):
    def __init__(self, n_users: int, n_items: int, factors: int, init_std: float, item_bias: bool) -> None:
        super().__init__()
        self.user = torch.nn.Embedding(n_users, factors)
        self.item = torch.nn.Embedding(n_items, factors)
        torch.nn.init.normal_(self.user.weight, std=init_std)
        torch.nn.init.normal_(self.item.weight, std=init_std)
        self.bias = torch.nn.Embedding(n_items, 1) if item_bias else None
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias.weight)


class BPRMF(FactorModel):
    """Matrix factorisation ``score(u, i) = <p_u, q_i> + b_i`` learned with BPR on uniformly sampled
    negatives, Adam, L2 ``reg`` on the batch's embeddings (and biases), early stopping on ``valid_metric``.

    Parameters
    ----------
    factors: embedding size.
    reg: weight of ``sum ||p_u||^2 + ||q_i||^2 + ||q_j||^2 (+ b_i^2 + b_j^2) / (2 * batch)``.
    item_bias: learn a per-item bias ``b_i`` (popularity; it matters on sparse data). It is exported
        as one more factor column, so ``user_vectors() @ item_vectors().T`` still gives the scores.
    epochs, batch_size, learning_rate, patience, min_steps, valid_metric, eval_every, seed: see
        :class:`~fusionrec.models.configs.FactorModelConfig` and the Trainer; ``batch_size=None``
        sizes the batch to the data.
    init_std: standard deviation of the normal initialisation.
    device: torch device to train on (``"cpu"``; ``"cuda"`` only when asked).
    verbose: show a progress bar.
    """

    name = "bpr"
    config_class = BPRMFConfig
    batches_per_epoch: ClassVar[int] = 8
    max_auto_batch_size: ClassVar[int] = 8192

    def __init__(
        self,
        *,
        factors: int = 64,
        reg: float = 1e-2,
        item_bias: bool = True,
        epochs: int = 1000,
        batch_size: int | None = None,
        learning_rate: float = 5e-3,
        patience: int = 10,
        min_steps: int = 3000,
        valid_metric: str = "recall@20",
        eval_every: int = 1,
        init_std: float = 0.01,
        seed: int = 0,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        super().__init__()
        self.factors, self.reg, self.item_bias, self.init_std = factors, reg, item_bias, init_std
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.patience, self.min_steps, self.valid_metric, self.eval_every = patience, min_steps, valid_metric, eval_every
        self.seed, self.device, self.verbose = seed, device, verbose

    def _build_module(self) -> torch.nn.Module:
        return _Factors(self.n_users, self.n_items, self.factors, self.init_std, self.item_bias)

    def batch_loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        users, positives, negatives = batch
        module = self._factors()
        u = module.user(users)
        i = module.item(positives)
        j = module.item(negatives)
        positive, negative = (u * i).sum(dim=1), (u * j).sum(dim=1)
        penalised = [u, i, j]
        if module.bias is not None:
            b_i, b_j = module.bias(positives), module.bias(negatives)
            positive, negative = positive + b_i.squeeze(1), negative + b_j.squeeze(1)
            penalised += [b_i, b_j]
        loss = bpr_loss(positive, negative)
        return loss + self.reg * l2_penalty(*penalised) if self.reg else loss

    def _factors(self) -> _Factors:
        module = self.trainable_module()
        assert isinstance(module, _Factors)
        return module

    def prepare_scoring(self) -> None:
        module = self._factors()
        bias = module.bias.weight if module.bias is not None else None
        self._export_factors(module.user.weight, module.item.weight, bias)
