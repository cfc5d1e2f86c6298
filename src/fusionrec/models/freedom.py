"""FREEDOM (Zhou & Shen, ACM MM 2023, "A Tale of Two Graphs: Freezing and Denoising Graph Structures
for Multimodal Recommendation"), after the reference implementation (MMRec ``src/models/freedom.py``).

Two graphs:

- a FROZEN item-item graph ``S = sum_m a_m D_m^-1/2 S_m D_m^-1/2`` of binary per-modality cosine
  kNN graphs (:func:`fusionrec.fusion.graph.build_item_graph`, ``k=10``), built once from the
  features before training; the item ID embeddings are propagated ``n_mm_layers`` times over it,
  ``h = S^L E_items``, and ``h`` is added to LightGCN's item output;
- the user-item graph of LightGCN (``n_ui_layers`` propagations, layer mean), DENOISED while
  training: at every epoch ``(1 - edge_dropout)`` of the training edges are kept, sampled without
  replacement with probability proportional to ``1 / sqrt(d_u d_i)`` (Gumbel top-k, the same
  distribution as the reference's ``torch.multinomial``), and renormalised; scoring uses the full
  graph.

Loss: ``BPR(e_u, e_i, e_j) + content_weight * sum_m BPR(e_u, z^m_i, z^m_j) + reg * L2`` with
``z^m`` the projected content of modality ``m`` (the reference's ``image_trs`` / ``text_trs``) and
``e_u`` the final user embedding. Scores are ``<e_u, e_i + h_i>``; the content projections are
used by the loss only (as in the reference), so the model has no cold-start scoring: an item with
no training edges is reached through ``h``, i.e. through its content neighbours' ID embeddings.

Deviations from the paper / reference:

- any number of modalities; the default graph weights ``a_m`` are the paper's 9:1 text:image,
  generalised as ``0.9`` for ``text`` and ``0.1`` for every other modality, renormalised to sum 1
  (one modality: 1; no text: equal); ``graph.modality_weights`` overrides them;
- the kNN graph has no self loops (the reference's top-k includes the item itself) and items
  without a modality get no edges in that modality's graph (the reference has no missing content);
- features are frozen, L2-normalised buffers (the reference fine-tunes the raw feature tables);
  a missing modality is masked: an item pair enters a modality's content BPR term only when both
  items have it (the term is the mean over those pairs);
- the content projection is the configured fuser over :class:`~fusionrec.fusion.item_content.ItemContent`:
  ``content_mode="per_modality"`` (default, as the paper) builds one fuser per modality (the default
  mean fuser over one modality is one ``Linear(d_m, factors)``) and sums one BPR term per modality;
  ``"fused"`` uses one fuser over all modalities and one BPR term; the fuser's output dim must equal
  ``factors``;
- embeddings start ``N(0, init_std)`` (the reference: Xavier uniform), an L2 ``reg`` on the batch's
  layer-0 embeddings is added (the reference has none), and the batch size / learning rate are
  LightGCN's automatic ones (the reference: 2048 and 1e-3), early stopping as every model here.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.errors import ModelError
from fusionrec.fusion.config import AnyFuserConfig, ItemGraphConfig, MeanFuserConfig
from fusionrec.fusion.graph import build_item_graph
from fusionrec.fusion.item_content import ItemContent
from fusionrec.models.configs import FreedomConfig
from fusionrec.models.lightgcn import LightGCN, _Embeddings
from fusionrec.models.torch_base import PARAM_PREFIX
from fusionrec.models.vbpr import check_modality_names, content_of
from fusionrec.training.graph import SparseOperator, normalized_adjacency
from fusionrec.training.losses import bpr_loss, l2_penalty

CONTENT = "content"
FUSED = "fused"


class _FreedomModule(_Embeddings):
    """LightGCN's ``embedding`` (users then items) plus ``content``: one ItemContent per modality
    (``per_modality``) or one named ``fused``; empty without features."""

    def __init__(self, n_nodes: int, factors: int, init_std: float, contents: dict[str, ItemContent]) -> None:
        super().__init__(n_nodes, factors, init_std)
        self.content = torch.nn.ModuleDict(contents)


def default_graph_weights(names: list[str]) -> dict[str, float]:
    """The paper's 9:1 text:image item-graph weights, generalised: ``text`` 0.9, any other 0.1."""
    return {name: 0.9 if name == "text" else 0.1 for name in names}


def degree_sensitive_sample(train: sp.csr_matrix, keep: float, rng: np.random.Generator) -> sp.csr_matrix:
    """A binary subgraph of ``train`` with ``max(1, int(nnz * keep))`` of its edges, drawn without
    replacement with probability proportional to ``1 / sqrt(d_u d_i)`` (degrees in ``train``).

    Gumbel top-k: the edges with the largest ``log w_e + Gumbel noise`` are the successive draws
    without replacement of ``torch.multinomial(w, n, replacement=False)``, in one vectorised pass.
    """
    coo = sp.coo_matrix(train)
    n_edges = coo.nnz
    n_keep = min(n_edges, max(1, int(n_edges * keep)))
    if n_keep >= n_edges:
        return sp.csr_matrix(train, dtype=np.float32, copy=True)
    user_degree = np.diff(train.indptr).astype(np.float64)
    item_degree = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float64)
    log_weight = -0.5 * (np.log(user_degree[coo.row]) + np.log(item_degree[coo.col]))
    keys = log_weight + rng.gumbel(size=n_edges)
    kept = np.argpartition(-keys, n_keep - 1)[:n_keep]
    pruned = sp.csr_matrix(
        (np.ones(n_keep, dtype=np.float32), (coo.row[kept], coo.col[kept])), shape=train.shape, dtype=np.float32
    )
    pruned.sort_indices()
    return pruned


class Freedom(LightGCN):
    """FREEDOM: LightGCN over a degree-sensitively pruned user-item graph plus item ID embeddings
    smoothed over a frozen multimodal item-item graph (see the module docstring).

    Parameters
    ----------
    factors, reg, epochs, batch_size, learning_rate, patience, min_steps, valid_metric,
    eval_every, init_std, seed, device, verbose: as in :class:`~fusionrec.models.lightgcn.LightGCN`;
    ``learning_rate=None`` sizes it to the batch at a fifth of LightGCN's rule,
    ``0.01 * (batch / 16384) ** 0.387``: on ML-1M (batch 16,384) valid NDCG@20 was 0.192 at
    LightGCN's 0.05, 0.213 at 0.02 and 0.218 at 0.01 (test 0.219 -> 0.258); the pruned graph
    makes each step noisier than LightGCN's.
    n_ui_layers: LightGCN propagation steps over the user-item graph.
    n_mm_layers: propagation steps of the item ID embeddings over the item-item graph.
    edge_dropout: share of the user-item edges pruned at each epoch (0: none).
    content_weight: weight of the content BPR terms.
    content_mode: ``per_modality`` (one projection and BPR term per modality) or ``fused``.
    modalities: the FeatureSet's modalities (None: all of them).
    fuser: content projection config (out dim must equal ``factors``).
    graph: the item-item graph (k, weighting, ``modality_weights``: None = text 0.9, others 0.1).
    modality_dropout: chance to mask a present (item, modality) in the content terms while training.

    With ``features=None`` it is LightGCN with ``n_layers=n_ui_layers`` and edge pruning (with
    ``edge_dropout=0`` exactly LightGCN: same initialisation, batches and scores).
    """

    name = "freedom"
    config_class = FreedomConfig  # type: ignore[assignment]  # not a LightGCNConfig (n_ui_layers)
    uses_features = True
    requires_features = False
    batches_per_epoch: ClassVar[int] = 32
    max_auto_batch_size: ClassVar[int] = 16384

    def __init__(
        self,
        *,
        factors: int = 64,
        n_ui_layers: int = 2,
        n_mm_layers: int = 1,
        reg: float = 1e-4,
        edge_dropout: float = 0.8,
        content_weight: float = 1e-4,
        content_mode: str = "per_modality",
        modalities: list[str] | None = None,
        fuser: AnyFuserConfig = MeanFuserConfig(dim=64),
        graph: ItemGraphConfig = ItemGraphConfig(),
        modality_dropout: float = 0.0,
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
        self.n_ui_layers = n_ui_layers
        super().__init__(
            factors=factors, n_layers=n_ui_layers, reg=reg, epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, patience=patience, min_steps=min_steps, valid_metric=valid_metric,
            eval_every=eval_every, init_std=init_std, seed=seed, device=device, verbose=verbose,
        )  # fmt: skip
        self.n_mm_layers, self.edge_dropout, self.content_weight = n_mm_layers, edge_dropout, content_weight
        self.content_mode, self.modalities, self.fuser, self.graph = content_mode, modalities, fuser, graph
        self.modality_dropout = modality_dropout
        self._fit_features: Any | None = None
        self._content_dims: dict[str, dict[str, int]] = {}  # set when rebuilding a saved model
        self._full_graph: SparseOperator | None = None
        self._item_graph: SparseOperator | None = None
        self._edges: sp.csr_matrix | None = None

    def effective_learning_rate(self, n_pairs: int) -> float:
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return super().effective_learning_rate(n_pairs) / 5.0

    @property  # type: ignore[override]
    def n_layers(self) -> int:
        """LightGCN's propagation depth is ``n_ui_layers``."""
        return self.n_ui_layers

    @n_layers.setter
    def n_layers(self, value: int) -> None:
        self.n_ui_layers = value

    # ---------------------------------------------------------------- module
    def _fit(self, train: sp.csr_matrix, features: Any | None, valid: sp.csr_matrix | None) -> None:
        if self.content_mode not in ("per_modality", FUSED):
            raise ModelError(f"freedom: content_mode must be 'per_modality' or 'fused', got {self.content_mode!r}")
        check_modality_names(self.name, features, self.modalities)
        self._fit_features, self._content_dims = features, {}
        try:
            super()._fit(train, features, valid)
        finally:
            self._fit_features = None

    def _content_modules(self) -> dict[str, ItemContent]:
        features = self._fit_features
        if features is not None:
            names = check_modality_names(self.name, features, self.modalities) or []
            groups = {FUSED: names} if self.content_mode == FUSED else {name: [name] for name in names}
            return {
                key: ItemContent.from_features(features, group, self.fuser, self.modality_dropout)
                for key, group in groups.items()
            }
        return {
            key: ItemContent(dims, self.n_items, self.fuser, self.modality_dropout)
            for key, dims in self._content_dims.items()
        }

    def _build_module(self) -> torch.nn.Module:
        # the ID embeddings are drawn first: without features the same init as LightGCN
        module = _FreedomModule(self.n_users + self.n_items, self.factors, self.init_std, {})
        for key, content in self._content_modules().items():
            if content.out_dim != self.factors:
                raise ModelError(
                    f"freedom: the fuser's output dim ({content.out_dim}) must equal factors ({self.factors}); "
                    "set fuser.dim (the content projection is dotted with the user embedding)"
                )
            module.content[key] = content
        return module

    def _contents(self) -> dict[str, ItemContent]:
        module = self.trainable_module()
        assert isinstance(module, _FreedomModule)
        return {key: content for key, content in module.content.items() if isinstance(content, ItemContent)}

    # ---------------------------------------------------------------- graphs
    def _prepare_training(self, train: sp.csr_matrix, features: Any | None) -> None:
        super()._prepare_training(train, features)  # the full normalised user-item graph
        self._full_graph, self._edges = self._graph, train
        self._item_graph = None
        if features is not None:
            names = check_modality_names(self.name, features, self.modalities) or []
            config = self.graph if isinstance(self.graph, ItemGraphConfig) else ItemGraphConfig.model_validate(self.graph)
            if config.modality_weights is None:
                config = config.model_copy(update={"modality_weights": default_graph_weights(names)})
            try:
                item_graph = build_item_graph(features, names, config)
            except ModelError as exc:
                raise ModelError(f"freedom: {exc}") from None
            self._item_graph = SparseOperator.from_scipy(item_graph.matrix, self.training_device)

    def _release_training(self) -> None:
        super()._release_training()
        self._full_graph, self._item_graph, self._edges = None, None, None

    def epoch_batches(self, rng: np.random.Generator) -> Any:
        """Re-prune the user-item graph (called once per epoch), then the BPR triples."""
        assert self._edges is not None
        if self.edge_dropout > 0:
            pruned = degree_sensitive_sample(self._edges, 1.0 - self.edge_dropout, rng)
            self._graph = SparseOperator.from_scipy(normalized_adjacency(pruned), self.training_device)
        else:
            self._graph = self._full_graph
        return super().epoch_batches(rng)

    def propagate(self) -> torch.Tensor:
        """LightGCN's embeddings over the current graph, items plus ``h = S^n_mm E_items``."""
        final = super().propagate()
        if self._item_graph is None:
            return final
        items = self._ego()[self.n_users :]
        for _ in range(self.n_mm_layers):
            items = self._item_graph.mm(items)
        return torch.cat([final[: self.n_users], final[self.n_users :] + items])

    # ---------------------------------------------------------------- training and scoring
    def batch_loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        users, positives, negatives = batch
        final = self.propagate()
        u = final[users]
        i, j = final[positives + self.n_users], final[negatives + self.n_users]
        loss = bpr_loss((u * i).sum(dim=1), (u * j).sum(dim=1))
        if self.content_weight:
            contents = self._contents()
            if contents:
                loss = loss + self.content_weight * self._content_loss(contents, u, positives, negatives)
        if self.reg:
            ego = self._ego()
            loss = loss + self.reg * l2_penalty(ego[users], ego[positives + self.n_users], ego[negatives + self.n_users])
        return loss

    @staticmethod
    def _content_loss(
        contents: dict[str, ItemContent], u: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        """Sum over content modules of the BPR of ``u`` against the projected content of the positive
        and the negative, averaged over the pairs where both items have content there."""
        total = torch.zeros((), device=u.device)
        n = len(positives)
        items = torch.cat([positives, negatives])
        for content in contents.values():
            z = content_of(content, items)
            has = torch.stack(list(content.mask_tensors(items).values())).any(dim=0)
            valid = (has[:n] & has[n:]).to(u.dtype)
            terms = torch.nn.functional.softplus((u * z[n:]).sum(dim=1) - (u * z[:n]).sum(dim=1))
            total = total + (terms * valid).sum() / valid.sum().clamp(min=1.0)
        return total

    def prepare_scoring(self) -> None:
        self._graph = self._full_graph  # scores (and validation) use the unpruned graph
        super().prepare_scoring()

    # ---------------------------------------------------------------- persistence
    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        prefix = f"{PARAM_PREFIX}{CONTENT}."
        keys = dict.fromkeys(k[len(prefix) :].split(".", 1)[0] for k in state if k.startswith(prefix))
        dims = {key: ItemContent.saved_dims(state, f"{prefix}{key}.") for key in keys}
        self._content_dims = {key: d for key, d in dims.items() if d is not None}
        super()._set_state(state)
