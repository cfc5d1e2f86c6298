"""ItemContent: buffers hold unit rows, masks drive the fuser, state round-trips, dropout only in training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.errors import ModelError
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance
from fusionrec.fusion.item_content import ItemContent


def _features(n: int = 30, seed: int = 0) -> FeatureSet:
    rng = np.random.default_rng(seed)
    mods = {}
    for name, dim in (("text", 8), ("image", 5)):
        matrix = rng.normal(size=(n, dim)).astype(np.float32) * (10.0 if name == "image" else 1.0)
        present = rng.random(n) > 0.3
        matrix[~present] = 0.0
        mods[name] = ModalityFeatures(matrix, present, Provenance(encoder=name, fingerprint=name, created_at="x"))
    return FeatureSet(ids=[f"i{i}" for i in range(n)], modalities=mods)


def test_rows_are_unit_and_masks_kept() -> None:
    features = _features()
    content = ItemContent.from_features(features, None, {"kind": "attention", "dim": 6})
    image = content.feature_tensors()["image"].numpy()
    present = features.modalities["image"].present
    np.testing.assert_allclose(np.linalg.norm(image[present], axis=1), 1.0, rtol=1e-5)
    assert not image[~present].any()
    assert torch.equal(content.mask_tensors()["image"], torch.from_numpy(present))
    out = content(torch.arange(5))
    assert out.shape == (5, 6) and torch.isfinite(out).all()
    assert content.encode_all().shape == (30, 6)
    weights = content.modality_weights(torch.arange(30)).detach().numpy()
    assert (weights[~present, 1] == 0).all()


def test_state_round_trip_rebuilds_from_dims() -> None:
    content = ItemContent.from_features(_features(), ["image", "text"], {"kind": "gated", "dim": 4})
    state = {"c." + k: v.numpy() for k, v in content.state_dict().items()}
    dims = ItemContent.dims_from_state(state, "c.")
    assert dims == {"image": 5, "text": 8}
    rebuilt = ItemContent(dims, 30, {"kind": "gated", "dim": 4})
    rebuilt.load_state_dict({k[2:]: torch.from_numpy(v) for k, v in state.items()})
    content.eval(), rebuilt.eval()
    torch.testing.assert_close(rebuilt(), content())


def test_modality_dropout_only_while_training() -> None:
    content = ItemContent.from_features(_features(), None, {"kind": "mean", "dim": 4}, modality_dropout=0.5)
    content.eval()
    torch.testing.assert_close(content(), content())
    content.train()
    torch.manual_seed(0)
    assert not torch.allclose(content(), content())


def test_unknown_modality_and_bad_fuser_are_clear_errors() -> None:
    with pytest.raises(ModelError, match="audio"):
        ItemContent.from_features(_features(), ["audio"], {"kind": "mean"})
    with pytest.raises(ModelError, match="modality_dropout"):
        ItemContent({"text": 3}, 4, {"kind": "mean"}, modality_dropout=1.0)


def test_prepare_transforms_new_items_like_the_training_catalogue() -> None:
    features = _features()
    content = ItemContent.from_features(features, None, {"kind": "mean", "dim": 4})
    prepared, masks = content.prepare_feature_set(features)
    for name in content.names:
        torch.testing.assert_close(prepared[name], content.feature_tensors()[name])
        assert torch.equal(masks[name], content.mask_tensors()[name])
    # the centre is the training one: a single new item is not centred on itself
    one, _ = content.prepare({"text": (features.modalities["text"].matrix[:1], np.array([True]))})
    torch.testing.assert_close(one["text"], content.feature_tensors()["text"][:1])
    _, absent = content.prepare({"text": (features.modalities["text"].matrix[:1], np.array([True]))})
    assert not absent["image"].any()
    with pytest.raises(ModelError, match="audio"):
        content.prepare({"audio": (np.zeros((1, 3)), np.array([True]))})
