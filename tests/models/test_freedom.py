"""FREEDOM: contract, ID-only is LightGCN, the frozen item graph reaches cold items, degree-sensitive
pruning (count, distribution, once per epoch), the item graph built once, full-graph scores, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.data.splits import Split
from fusionrec.errors import ModelError
from fusionrec.fusion.config import ItemGraphConfig, MeanFuserConfig
from fusionrec.fusion.graph import build_item_graph
from fusionrec.models import freedom as freedom_module
from fusionrec.models.configs import FreedomConfig
from fusionrec.models.freedom import Freedom, default_graph_weights, degree_sensitive_sample
from fusionrec.models.lightgcn import LightGCN
from fusionrec.models.registry import config_class, load_model
from fusionrec.training.graph import normalized_adjacency

from .contract import RecommenderContract
from .test_content import cluster_features
from .test_vbpr import cold_setting, recall_on

SMALL = {"factors": 16, "epochs": 30, "batch_size": 512, "learning_rate": 0.02, "patience": 3, "seed": 1, "min_steps": 0}


def small_freedom(**overrides: object) -> Freedom:
    settings: dict[str, object] = {**SMALL, "fuser": MeanFuserConfig(dim=16)} | overrides
    return Freedom.from_config(settings)


class TestFreedom(RecommenderContract):
    partial_fit_atol = 1e-2  # a warm-started BPR fold-in (contract docstring)

    def make_model(self) -> Freedom:
        return small_freedom(edge_dropout=0.5)

    def make_features(self, split: Split) -> Any:
        return cluster_features(split)


def test_without_features_and_pruning_it_is_lightgcn(planted: Split) -> None:
    ours = small_freedom(edge_dropout=0.0, n_ui_layers=2).fit(planted.train, valid=planted.valid)
    plain = LightGCN(n_layers=2, **SMALL).fit(planted.train, valid=planted.valid)  # type: ignore[arg-type]
    users = np.arange(planted.n_users)
    np.testing.assert_array_equal(ours.score(users), plain.score(users))
    pruned = small_freedom(edge_dropout=0.8, epochs=2).fit(planted.train)  # ID-only with pruning trains
    assert np.isfinite(pruned.score(users)).all()


def test_item_graph_reaches_cold_items_that_lightgcn_cannot(planted: Split) -> None:
    features = cluster_features(planted)
    cold, train, valid, truth = cold_setting(planted)
    ours = small_freedom(edge_dropout=0.5).fit(train, features=features, valid=valid)
    plain = LightGCN(n_layers=2, **SMALL).fit(train, valid=valid)  # type: ignore[arg-type]
    chance = recall_on(truth, lambda users: plain.score(users)[:, cold])
    reached = recall_on(truth, lambda users: ours.score(users)[:, cold])
    assert reached > chance + 0.3, (reached, chance)


def test_pruning_keeps_the_right_number_of_training_edges(planted: Split) -> None:
    train = planted.csr("train")
    rng = np.random.default_rng(0)
    for keep in (0.2, 0.5, 0.9):
        pruned = degree_sensitive_sample(train, keep, rng)
        assert pruned.nnz == int(train.nnz * keep)
        assert (pruned.data == 1).all()
        assert (pruned.multiply(train) != pruned).nnz == 0, "kept an edge that is not a training edge"
    assert degree_sensitive_sample(train, 1.0, rng).nnz == train.nnz


def test_pruning_draws_like_multinomial_without_replacement_favouring_low_degrees() -> None:
    """Inclusion frequencies over many draws match the reference's ``torch.multinomial(1/sqrt(d_u d_i),
    n, replacement=False)`` (a uniform draw would keep every edge half the time), and edges between
    low-degree nodes are kept far more often than edges between hubs."""
    rng = np.random.default_rng(3)
    n_users, n_items = 30, 20
    activity = np.linspace(0.05, 0.9, n_users)[:, None] * np.linspace(0.1, 1.0, n_items)[None, :]
    train = sp.csr_matrix((rng.random((n_users, n_items)) < activity).astype(np.float32))
    coo = sp.coo_matrix(train)
    weight = 1.0 / np.sqrt(np.diff(train.indptr)[coo.row] * np.bincount(train.indices, minlength=n_items)[coo.col])
    edge_id = np.full(train.shape, -1)
    edge_id[coo.row, coo.col] = np.arange(coo.nnz)
    draws, n_keep = 3000, coo.nnz // 2
    ours = np.zeros(coo.nnz)
    for _ in range(draws):
        kept = degree_sensitive_sample(train, 0.5, rng).tocoo()
        ours[edge_id[kept.row, kept.col]] += 1
    ours /= draws
    generator = torch.Generator().manual_seed(0)
    picks = torch.multinomial(torch.from_numpy(weight).expand(draws, -1), n_keep, replacement=False, generator=generator)
    reference = np.bincount(picks.numpy().ravel(), minlength=coo.nnz) / draws
    assert (edge_id >= 0).sum() == coo.nnz and n_keep == int(coo.nnz * 0.5)
    assert np.abs(ours - reference).max() < 0.06, np.abs(ours - reference).max()
    order = np.argsort(weight)
    lightest, heaviest = ours[order[: coo.nnz // 10]].mean(), ours[order[-(coo.nnz // 10) :]].mean()
    assert heaviest > lightest + 0.3, (heaviest, lightest)


def test_item_graph_built_once_and_user_graph_pruned_every_epoch(planted: Split, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"graph": 0, "prune": 0}

    def counted_graph(*args: Any, **kwargs: Any) -> Any:
        calls["graph"] += 1
        return build_item_graph(*args, **kwargs)

    def counted_prune(*args: Any, **kwargs: Any) -> sp.csr_matrix:
        calls["prune"] += 1
        return degree_sensitive_sample(*args, **kwargs)

    monkeypatch.setattr(freedom_module, "build_item_graph", counted_graph)
    monkeypatch.setattr(freedom_module, "degree_sensitive_sample", counted_prune)
    model = small_freedom(epochs=4, patience=10).fit(planted.train, features=cluster_features(planted), valid=planted.valid)
    assert model.history_ is not None and model.history_.n_epochs == 4
    assert calls == {"graph": 1, "prune": 4}


def test_scores_use_the_full_graph_plus_the_item_graph(planted: Split, tmp_path: Path) -> None:
    """``score = <e_u, e_i + S E_items>`` with LightGCN's layer mean over the UNPRUNED graph and the
    item graph of the default 0.9 text / 0.1 image weights; the same after save / load."""
    features = cluster_features(planted)
    model = small_freedom(epochs=3, n_ui_layers=2, n_mm_layers=1).fit(planted.train, features=features)
    assert model.module is not None
    ego = model.module.state_dict()["embedding.weight"].numpy().astype(np.float64)
    graph = normalized_adjacency(planted.csr("train"))
    layers = [ego, graph @ ego, graph @ (graph @ ego)]
    final = sum(layers) / 3
    assert default_graph_weights(["text", "image"]) == {"text": 0.9, "image": 0.1}
    items = build_item_graph(features, ["text", "image"], ItemGraphConfig(modality_weights={"text": 0.9, "image": 0.1}))
    users, item_emb = final[: planted.n_users], final[planted.n_users :] + items.matrix @ ego[planted.n_users :]
    np.testing.assert_allclose(model.score(np.arange(planted.n_users)), users @ item_emb.T, rtol=1e-4, atol=1e-5)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(np.arange(5)), model.score(np.arange(5)))


def test_fused_content_mode_trains_and_reloads(planted: Split, tmp_path: Path) -> None:
    model = small_freedom(epochs=2, content_mode="fused", content_weight=0.1)
    model.fit(planted.train, features=cluster_features(planted))
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, Freedom) and loaded.content_mode == "fused"
    np.testing.assert_array_equal(loaded.score(np.arange(5)), model.score(np.arange(5)))


def test_errors_name_the_problem(planted: Split) -> None:
    features = cluster_features(planted)
    assert config_class("freedom") is FreedomConfig
    with pytest.raises(ModelError, match=r"freedom: no \['audio'\] features"):
        small_freedom(modalities=["audio"]).fit(planted.train, features=features)
    with pytest.raises(ModelError, match="no item features"):
        small_freedom(modalities=["text"]).fit(planted.train)
    with pytest.raises(ModelError, match="not among the graph's modalities"):
        small_freedom(modalities=["text"], graph={"modality_weights": {"image": 1.0}}).fit(planted.train, features=features)
    with pytest.raises(ModelError, match=r"output dim \(32\) must equal factors \(16\)"):
        small_freedom(fuser=MeanFuserConfig(dim=32)).fit(planted.train, features=features)
    with pytest.raises(ValueError, match="content_mode"):
        FreedomConfig.model_validate({"content_mode": "sum"})


def test_content_term_is_a_masked_bpr_per_modality_and_trains_the_projections(planted: Split) -> None:
    features = cluster_features(planted)
    frozen = small_freedom(epochs=2, content_weight=0.0).fit(planted.train, features=features)
    trained = small_freedom(epochs=2, content_weight=0.5).fit(planted.train, features=features)
    init = small_freedom()
    init.n_users, init.n_items, init._fit_features = planted.n_users, planted.n_items, features
    torch.manual_seed(init.seed)
    start = init._build_module().state_dict()
    name = "content.image.fuser.proj.image.weight"
    torch.testing.assert_close(frozen.module.state_dict()[name], start[name])  # type: ignore[union-attr]
    assert not torch.allclose(trained.module.state_dict()[name], start[name])  # type: ignore[union-attr]
    # the term by hand: per modality, mean softplus(<u, z_j> - <u, z_i>) over pairs where both items have it
    contents = trained._contents()
    assert sorted(contents) == ["image", "text"]
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, planted.n_items, 64), rng.integers(0, planted.n_items, 64)
    u = torch.randn(64, 16)
    expected = 0.0
    for modality, content in contents.items():
        z = content.encode_all().numpy()
        present = features.modalities[modality].present
        valid = present[pos] & present[neg]
        gap = ((u.numpy() * z[neg]).sum(1) - (u.numpy() * z[pos]).sum(1))[valid]
        expected += float(np.logaddexp(0.0, gap).mean())
    with torch.no_grad():
        got = Freedom._content_loss(contents, u, torch.from_numpy(pos), torch.from_numpy(neg))
    assert abs(float(got) - expected) < 1e-4
