"""The torch parts of the two-tower model: the item tower, the user tower, history pooling, batches.

::

    item tower   v_i = normalize?( MLP([ItemContent(i), *extra_inputs(i)]) + m_i * e_i )
    user tower   u   = normalize?( [p_u] + [MLP_u(mean_{j in H(u)} v_j)] )

``e_i`` is the optional item ID embedding and ``m_i`` is 1 for items with training interactions
and 0 for the rest (an item nobody interacted with has no learned ID: its vector is its content
alone, exactly what :meth:`ItemTower.encode_new` gives a cold item). ``extra_inputs`` are optional
modules ``items -> (batch, out_dim)`` (e.g. a trainable text encoder) concatenated with the
ItemContent output before the MLP. The user tower holds a user ID embedding ``p_u`` and/or an
MLP over the mean of the item vectors of the user's history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from fusionrec.errors import ModelError
from fusionrec.fusion.item_content import ItemContent


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, dropout: float) -> torch.nn.Sequential:
    """``Linear -> ReLU -> Dropout`` per hidden size, then a final ``Linear`` to ``out_dim``."""
    layers: list[torch.nn.Module] = []
    width = in_dim
    for size in hidden:
        layers += [torch.nn.Linear(width, int(size)), torch.nn.ReLU()]
        if dropout > 0:
            layers.append(torch.nn.Dropout(dropout))
        width = int(size)
    layers.append(torch.nn.Linear(width, out_dim))
    return torch.nn.Sequential(*layers)


class ItemTower(torch.nn.Module):
    """``(batch,)`` item indices (None: all items) -> ``(batch, dim)`` item vectors (not normalised).

    Parameters
    ----------
    n_items, dim: catalogue size and output size.
    content: the item content module (None: no content, the tower is the ID embedding alone).
    extra_inputs: more modules ``items -> (batch, m.out_dim)`` whose outputs are concatenated with
        the content before the MLP (a module with ``encode_new(item_features)`` also reaches cold items).
    hidden, dropout: the MLP over the concatenated inputs.
    id_embedding: add a learned per-item vector (masked by ``id_mask``, see the module docstring).
    id_dropout: while training, drop each batch item's ID vector with this chance (DropoutNet,
        Volkovs et al. 2017): the content path must then score items alone, as it does for cold items.
    init_std: standard deviation of the ID embedding's normal initialisation.
    """

    id_mask: torch.Tensor

    def __init__(
        self,
        n_items: int,
        dim: int,
        content: ItemContent | None,
        extra_inputs: Mapping[str, torch.nn.Module],
        hidden: Sequence[int],
        dropout: float,
        id_embedding: bool,
        init_std: float,
        id_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.id_dropout = float(id_dropout)
        if content is None and not extra_inputs and not id_embedding:
            raise ModelError(
                "two_tower: the item tower has no input: pass item features or set item_id_embedding=True"
            )
        self.n_items, self.dim = int(n_items), int(dim)
        self.content = content
        self.extra_inputs = torch.nn.ModuleDict(dict(extra_inputs))
        in_dim = (content.out_dim if content is not None else 0) + sum(int(cast(Any, m).out_dim) for m in self.extra_inputs.values())
        self.mlp = mlp(in_dim, hidden, self.dim, dropout) if in_dim else None
        self.id_embedding: torch.nn.Embedding | None = None
        if id_embedding:
            self.id_embedding = torch.nn.Embedding(self.n_items, self.dim)
            torch.nn.init.normal_(self.id_embedding.weight, std=init_std)
        self.register_buffer("id_mask", torch.ones(self.n_items))

    def forward(self, items: torch.Tensor | None = None) -> torch.Tensor:
        out = self._from_inputs(self._inputs(items)) if self.mlp is not None else None
        if self.id_embedding is not None:
            ids = self.id_embedding.weight if items is None else self.id_embedding(items)
            mask = self.id_mask if items is None else self.id_mask[items]
            if self.training and self.id_dropout > 0 and out is not None:
                mask = mask * (torch.rand(mask.shape, device=mask.device) >= self.id_dropout)
            ids = ids * mask.unsqueeze(1)
            out = ids if out is None else out + ids
        assert out is not None
        return out

    def _inputs(self, items: torch.Tensor | None) -> list[torch.Tensor]:
        parts = [self.content(items)] if self.content is not None else []
        return parts + [module(items) for module in self.extra_inputs.values()]

    def _from_inputs(self, parts: list[torch.Tensor]) -> torch.Tensor:
        assert self.mlp is not None
        return self.mlp(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))  # type: ignore[no-any-return]

    def encode_new(self, item_features: Any) -> torch.Tensor:
        """``(len(item_features.ids), dim)`` vectors of items known only by their features (no ID part),
        prepared with the training centres (a trained modality the set lacks is missing for every item)."""
        if self.content is None and not self.extra_inputs:
            raise ModelError("two_tower was fitted without item features: it cannot score items from features")
        parts = [self.content.fuse(*self.content.prepare_feature_set(item_features))] if self.content is not None else []
        for name, module in self.extra_inputs.items():
            encode = getattr(module, "encode_new", None)
            if encode is None:
                raise ModelError(f"two_tower: the extra item input {name!r} cannot encode items from features")
            parts.append(encode(item_features))
        return self._from_inputs(parts)


class UserTower(torch.nn.Module):
    """User ID embedding and/or an MLP over the pooled history item vectors -> ``(batch, dim)``."""

    def __init__(
        self, n_users: int, dim: int, use_id: bool, use_history: bool, hidden: Sequence[int], dropout: float, init_std: float
    ) -> None:
        super().__init__()
        self.id_embedding: torch.nn.Embedding | None = None
        if use_id:
            self.id_embedding = torch.nn.Embedding(n_users, dim)
            torch.nn.init.normal_(self.id_embedding.weight, std=init_std)
        self.history_mlp = mlp(dim, hidden, dim, dropout) if use_history else None

    def forward(self, users: torch.Tensor | None, pooled: torch.Tensor | None) -> torch.Tensor:
        """``users`` (batch,) indices (needed with the ID part alone; None with a history: users unseen
        in training, who have no ID vector), ``pooled`` (batch, dim) history means."""
        out: torch.Tensor | None = None
        if self.history_mlp is not None:
            assert pooled is not None
            out = self.history_mlp(pooled)
        if self.id_embedding is not None and (users is not None or out is None):
            assert users is not None  # a user unseen in training has no ID part: the history alone
            ids = self.id_embedding(users)
            out = ids if out is None else out + ids
        assert out is not None
        return out


class TwoTowerModule(torch.nn.Module):
    """The two towers (``items``, ``users``) and ``normalize`` (cosine towers)."""

    def __init__(self, items: ItemTower, users: UserTower, normalize: bool) -> None:
        super().__init__()
        self.items, self.users, self.normalize = items, users, normalize

    def finish(self, vectors: torch.Tensor) -> torch.Tensor:
        return F.normalize(vectors, dim=-1) if self.normalize else vectors


class HistoryPool:
    """Sums of item vectors over users' training histories, on the training device (differentiable).

    Built once from the ``(n_users, n_items)`` binary CSR; :meth:`leave_one_out` gives each
    training pair's user the mean over its history WITHOUT that pair's item (the item the loss asks
    the model to predict must not be an input), :func:`mean_rows` the plain mean used when scoring.
    """

    def __init__(self, history: sp.csr_matrix, device: torch.device) -> None:
        self.indptr = torch.from_numpy(history.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(history.indices.astype(np.int64)).to(device)

    def leave_one_out(self, users: torch.Tensor, items: torch.Tensor, item_vectors: torch.Tensor) -> torch.Tensor:
        """``(batch, dim)``: ``(sum_{j in H(u)} v_j - v_i) / max(|H(u)| - 1, 1)`` for pairs ``(u, i)``
        (``i`` in ``H(u)``); ``item_vectors`` is ``(n_items, dim)``."""
        unique, inverse = torch.unique(users, return_inverse=True)
        starts, stops = self.indptr[unique], self.indptr[unique + 1]
        lengths = stops - starts
        offsets = torch.cumsum(lengths, 0) - lengths
        flat = torch.repeat_interleave(starts - offsets, lengths) + torch.arange(int(lengths.sum()), device=users.device)
        sums = F.embedding_bag(self.indices[flat], item_vectors, offsets, mode="sum")
        count = (lengths[inverse] - 1).clamp(min=1).unsqueeze(1).to(item_vectors.dtype)
        return (sums[inverse] - item_vectors[items]) / count


def mean_rows(rows: sp.csr_matrix, item_vectors: np.ndarray) -> np.ndarray:
    """``(n_rows, dim)`` float32 mean of ``item_vectors`` over each binary history row (0 when empty)."""
    counts = np.diff(rows.indptr).astype(np.float32)
    scale = sp.diags(np.where(counts > 0, 1.0 / np.maximum(counts, 1.0), 0.0).astype(np.float32))
    return np.asarray(scale @ (rows @ item_vectors), dtype=np.float32)


def log_inclusion(item_share: torch.Tensor, n_rows: int, n_uniform: int, n_items: int) -> torch.Tensor:
    """``log q_j``: the log probability that item ``j`` is among a softmax batch's candidates when
    the ``n_rows`` positives are drawn with probability ``item_share`` (the training share of each
    item) and ``n_uniform`` more items uniformly: ``q_j = 1 - (1 - p_j)^B (1 - 1/n)^S``."""
    log_absent = n_rows * torch.log1p(-item_share.clamp(max=1 - 1e-7)) + n_uniform * float(np.log1p(-1.0 / max(n_items, 2)))
    return torch.log((-torch.expm1(log_absent)).clamp(min=1e-12))
