"""Fusers as interchangeable parts: one interface, masks honoured (never a silent zero), configs."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import pytest
import torch
from pydantic import BaseModel, ValidationError

from fusionrec.fusion.config import (
    FUSER_CONFIGS,
    FUSER_KINDS,
    AttentionFuserConfig,
    FuserConfig,
    MeanFuserConfig,
    MLPFuserConfig,
    SelfAttentionFuserConfig,
    parse_fuser_config,
    retarget_fuser,
)
from fusionrec.fusion.fusers import (
    FUSER_CLASSES,
    BilinearFuser,
    ConcatFuser,
    Fuser,
    MeanFuser,
    PCAFuser,
    WeightedFuser,
    build_fuser,
)

torch.set_num_threads(1)

DIMS = {"text": 7, "image": 5, "audio": 3}
NAMES = tuple(DIMS)
# small hyper-parameters per kind (dim 8 throughout; self-attention 2 heads)
SMALL: dict[str, dict[str, object]] = {
    "mean": {"dim": 8},
    "concat": {"dim_per_modality": 4},
    "weighted": {"dim": 8},
    "gated": {"dim": 8},
    "attention": {"dim": 8},
    "self_attention": {"dim": 8, "heads": 2},
    "bilinear": {"dim": 8, "rank": 3},
    "mlp": {"dim": 8, "dim_per_modality": 4, "hidden": [16], "dropout": 0.1},
    "pca": {"dim": 4},
    "linear": {"dim": 8},
}
KINDS = list(FUSER_KINDS)

# rows: all present, text only, text+audio, none, image+audio, image only, all present
MASK_ROWS = [
    (1, 1, 1),
    (1, 0, 0),
    (1, 0, 1),
    (0, 0, 0),
    (0, 1, 1),
    (0, 1, 0),
    (1, 1, 1),
]


def batch(
    seed: int = 0, rows: list[tuple[int, int, int]] = MASK_ROWS
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    feats = {name: torch.randn(len(rows), d, generator=gen) for name, d in DIMS.items()}
    masks = {name: torch.tensor([bool(r[i]) for r in rows]) for i, name in enumerate(NAMES)}
    return feats, masks


def make(kind: str, seed: int = 0) -> Fuser:
    torch.manual_seed(seed)
    fuser = build_fuser({"kind": kind, **SMALL[kind]}, DIMS)
    if isinstance(fuser, PCAFuser):
        gen = torch.Generator().manual_seed(123)
        fit = {name: torch.randn(30, d, generator=gen) for name, d in DIMS.items()}
        fuser.fit_pca(fit, {})
    return fuser


def scramble_missing(
    feats: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The same features with every MISSING row overwritten (huge values, NaN, inf)."""
    out = {}
    for i, (name, x) in enumerate(feats.items()):
        junk = torch.full_like(x, 1e6) * (i + 1)
        junk[:, 0] = float("nan")
        junk[:, -1] = float("inf")
        out[name] = torch.where(masks[name][:, None], x, junk)
    return out


# ------------------------------------------------------------------ the interface, every kind
@pytest.mark.parametrize("kind", KINDS)
def test_output_shape_and_finite(kind: str) -> None:
    fuser = make(kind)
    assert isinstance(fuser, FUSER_CLASSES[kind]) and isinstance(fuser, Fuser)
    assert fuser.modality_names == NAMES
    feats, masks = batch()
    for mode in (fuser.train, fuser.eval):
        mode()
        out = fuser(feats, masks)
        assert out.shape == (len(MASK_ROWS), fuser.out_dim)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("kind", KINDS)
def test_values_of_masked_out_modality_change_nothing(kind: str) -> None:
    fuser = make(kind).eval()
    feats, masks = batch()
    with torch.no_grad():
        ref = fuser(feats, masks)
        out = fuser(scramble_missing(feats, masks), masks)
        w_ref = fuser.modality_weights(feats, masks)
        w_out = fuser.modality_weights(scramble_missing(feats, masks), masks)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch.testing.assert_close(w_out, w_ref, rtol=0, atol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_fully_missing_item_gets_a_defined_finite_vector(kind: str) -> None:
    fuser = make(kind).eval()
    feats, masks = batch(rows=[(0, 0, 0), (1, 1, 1), (0, 0, 0)])
    other, _ = batch(seed=5, rows=[(0, 0, 0), (1, 1, 1), (0, 0, 0)])
    with torch.no_grad():
        out = fuser(feats, masks)
        again = fuser(other, masks)
    assert torch.isfinite(out).all()
    # the same learned "no content" vector, whatever the (unread) values were (to float rounding:
    # BLAS may sum a row differently when the other rows of the batch differ)
    torch.testing.assert_close(out[0], out[2], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[0], again[0], rtol=0, atol=1e-6)
    assert out[0].abs().sum() > 0  # not a silent zero


@pytest.mark.parametrize("kind", KINDS)
def test_removing_a_modality_from_one_item_leaves_other_items_alone(kind: str) -> None:
    fuser = make(kind).eval()
    feats, masks = batch()
    changed = {name: m.clone() for name, m in masks.items()}
    changed["text"][0] = False  # item 0 loses its text
    with torch.no_grad():
        ref = fuser(feats, masks)
        out = fuser(feats, changed)
        single = fuser({n: x[4:5] for n, x in feats.items()}, {n: m[4:5] for n, m in masks.items()})
    torch.testing.assert_close(out[1:], ref[1:], rtol=0, atol=1e-6)
    assert not torch.allclose(out[0], ref[0])  # ... and does change that item
    torch.testing.assert_close(single[0], ref[4], rtol=1e-5, atol=1e-6)  # alone == in a batch


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_every_learned_parameter(kind: str) -> None:
    fuser = make(kind).train()
    feats, masks = batch()
    target = torch.randn(len(MASK_ROWS), fuser.out_dim, generator=torch.Generator().manual_seed(9))
    # a random linear read-out, not out.sum(): a LayerNorm'd output sums to a constant
    (fuser(feats, masks) * target).sum().backward()
    params = dict(fuser.named_parameters())
    assert params, "every fuser has something to learn (at least the no-content vector)"
    for name, p in params.items():
        assert p.grad is not None, f"{kind}: no gradient for {name}"
        assert p.grad.abs().sum() > 0, f"{kind}: zero gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"{kind}: non-finite gradient for {name}"
    projection_weights = [n for n in params if n.endswith("weight") and ("proj" in n or "weights." in n)]
    if kind != "pca":
        assert projection_weights, f"{kind}: expected learned projection weights, got {list(params)}"


@pytest.mark.parametrize("kind", KINDS)
def test_modality_weights_sum_to_one_over_present_and_zero_on_missing(kind: str) -> None:
    fuser = make(kind).eval()
    feats, masks = batch()
    with torch.no_grad():
        w = fuser.modality_weights(feats, masks)
    mask = torch.stack([masks[n] for n in fuser.modality_names], dim=1)
    assert w.shape == (len(MASK_ROWS), len(NAMES))
    assert (w >= 0).all() and torch.isfinite(w).all()
    assert (w[~mask] == 0).all()
    has_any = mask.any(dim=1)
    torch.testing.assert_close(w[has_any].sum(dim=1), torch.ones(int(has_any.sum())))
    assert (w[~has_any] == 0).all()
    # an item with one modality puts all its weight there
    assert w[1].tolist() == [1.0, 0.0, 0.0]


# ------------------------------------------------------------------ what individual fusers compute
def test_mean_without_projection_is_the_mean_of_present_features() -> None:
    dims = {"a": 4, "b": 4}
    fuser = MeanFuser(dims, project=False)
    assert fuser.out_dim == 4 and not list(fuser.proj.parameters())
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    masks = {"a": torch.tensor([True, True, False]), "b": torch.tensor([True, False, False])}
    out = fuser({"a": a, "b": b}, masks)
    torch.testing.assert_close(out[0], (a[0] + b[0]) / 2)
    torch.testing.assert_close(out[1], a[1])  # not (a + 0) / 2
    torch.testing.assert_close(out[2], fuser.empty.detach())
    with pytest.raises(ValueError, match="equal input dims"):
        MeanFuser({"a": 4, "b": 5}, project=False)


def test_concat_puts_the_learned_missing_embedding_and_a_presence_bit() -> None:
    fuser = ConcatFuser(DIMS, dim_per_modality=4)
    feats, masks = batch()
    out = fuser(feats, masks)
    assert fuser.out_dim == 3 * 4 + 3
    # item 1 has text only: image and audio slots are the learned missing vectors
    torch.testing.assert_close(out[1, 4:8], fuser.missing[1].detach())
    torch.testing.assert_close(out[1, 8:12], fuser.missing[2].detach())
    assert out[1, 12:].tolist() == [1.0, 0.0, 0.0]
    assert ConcatFuser(DIMS, dim_per_modality=4, indicator=False).out_dim == 3 * 4


def test_weighted_softmax_is_over_present_modalities_only() -> None:
    fuser = WeightedFuser(DIMS, dim=8)
    with torch.no_grad():
        fuser.logits.copy_(torch.tensor([math.log(3.0), 0.0, 0.0]))
    feats, masks = batch()
    w = fuser.modality_weights(feats, masks)
    torch.testing.assert_close(w[0], torch.tensor([0.6, 0.2, 0.2]))
    torch.testing.assert_close(w[2], torch.tensor([0.75, 0.0, 0.25]))  # text + audio, renormalised


def test_bilinear_sums_products_over_present_pairs_only() -> None:
    fuser = BilinearFuser(DIMS, dim=8, rank=3).eval()
    feats, masks = batch()
    out = fuser(feats, masks)
    xs, mask = fuser.inputs(feats, masks)
    with torch.no_grad():
        for i in range(len(MASK_ROWS)):
            present = [m for m in range(3) if mask[i, m]]
            if not present:
                continue
            u = {m: fuser.factors[NAMES[m]](xs[m][i]) for m in present}
            linear = torch.stack([fuser.linear[NAMES[m]](xs[m][i]) for m in present]).mean(dim=0)
            pairs = [u[a] * u[b] for a, b in itertools.combinations(present, 2)]
            expected = linear + (fuser.pair_proj(torch.stack(pairs).mean(dim=0)) if pairs else 0)
            torch.testing.assert_close(out[i].detach(), expected, rtol=1e-5, atol=1e-6)


def test_pca_is_fit_on_present_rows_and_frozen() -> None:
    fuser = PCAFuser({"a": 6, "b": 3}, dim=4)
    feats = {"a": torch.randn(5, 6), "b": torch.randn(5, 3)}
    masks = {"a": torch.ones(5, dtype=torch.bool), "b": torch.ones(5, dtype=torch.bool)}
    with pytest.raises(RuntimeError, match="fit_pca"):
        fuser(feats, masks)
    gen = torch.Generator().manual_seed(0)
    fit = {
        "a": torch.randn(40, 6, generator=gen) * torch.arange(1, 7),
        "b": torch.randn(40, 3, generator=gen),
    }
    fit_masks = {"a": torch.arange(40) % 4 != 0, "b": torch.ones(40, dtype=torch.bool)}
    fuser.fit_pca(fit, fit_masks)
    comps_a = fuser.pca_components_0
    torch.testing.assert_close(comps_a.T @ comps_a, torch.eye(4), atol=1e-5, rtol=0)
    assert comps_a[5].abs().argmax() == 0  # the widest input axis is the first component
    assert fuser.pca_components_1[:, 3].abs().sum() == 0  # 3-d input: only 3 components
    # missing rows of the fitting data are never read
    again = PCAFuser({"a": 6, "b": 3}, dim=4).fit_pca(scramble_missing(fit, fit_masks), fit_masks)
    torch.testing.assert_close(again.pca_components_0, comps_a)
    assert [n for n, _ in fuser.named_parameters()] == ["empty"]
    restored = PCAFuser({"a": 6, "b": 3}, dim=4)
    restored.load_state_dict(fuser.state_dict())
    torch.testing.assert_close(restored(feats, masks), fuser(feats, masks))


def test_self_attention_never_attends_to_a_missing_token() -> None:
    fuser = make("self_attention").eval()
    feats, masks = batch()
    with torch.no_grad():
        _, attn, _ = fuser._attend(feats, masks, need_weights=True)
    assert attn is not None
    mask = torch.stack([masks[n] for n in NAMES], dim=1)
    keys_missing = (~mask & mask.any(dim=1, keepdim=True))[:, None, :].expand_as(attn)
    assert (attn[keys_missing] == 0).all()


def test_inputs_are_checked() -> None:
    fuser = make("mean")
    feats, masks = batch()
    with pytest.raises(ValueError, match="unknown modalities"):
        fuser({**feats, "video": torch.randn(7, 2)}, masks)
    with pytest.raises(ValueError, match="lack modalities"):
        fuser({k: v for k, v in feats.items() if k != "audio"}, masks)
    with pytest.raises(ValueError, match="must be"):
        fuser({**feats, "text": torch.randn(7, 6)}, masks)
    with pytest.raises(ValueError, match="bool"):
        fuser(feats, {**masks, "text": masks["text"].float()})
    # a modality left out of masks is present everywhere
    full = {n: torch.ones(7, dtype=torch.bool) for n in NAMES}
    torch.testing.assert_close(fuser(feats, {}), fuser(feats, full))


# ------------------------------------------------------------------ configs
@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trip_through_the_union(kind: str) -> None:
    cfg = parse_fuser_config({"kind": kind, **SMALL[kind]})
    assert type(cfg) is FUSER_CONFIGS[kind]
    assert parse_fuser_config(cfg.model_dump(mode="json")) == cfg
    assert parse_fuser_config(cfg) == cfg
    assert type(parse_fuser_config({"kind": kind})) is FUSER_CONFIGS[kind]  # defaults are valid
    with pytest.raises(ValidationError, match=r"extra|not permitted"):
        parse_fuser_config({"kind": kind, "no_such_knob": 1})
    fuser = build_fuser(cfg, DIMS)
    assert type(fuser) is FUSER_CLASSES[kind]


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "mean", "dim": 0},
        {"kind": "gated", "dim": -3},
        {"kind": "bilinear", "rank": 0},
        {"kind": "mlp", "dropout": 1.0},
        {"kind": "mlp", "dropout": -0.1},
        {"kind": "mlp", "hidden": [0]},
        {"kind": "self_attention", "dim": 10, "heads": 4},
        {"kind": "self_attention", "dropout": 1.5},
        {"kind": "concat", "dim_per_modality": 0},
        {"kind": "pca", "dim": "many"},
        {"kind": "transformer"},
    ],
)
def test_bad_config_values_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        parse_fuser_config(bad)


def test_model_config_holds_a_fuser_and_switches_kind_after_merging() -> None:
    class Model(BaseModel):
        fuser: FuserConfig = MeanFuserConfig()

    assert Model().fuser == MeanFuserConfig()
    values: dict[str, object] = {"fuser": {"dim": 32}}  # no kind: the default (mean)
    assert Model.model_validate(values).fuser == MeanFuserConfig(dim=32)
    values["fuser"] = {**values["fuser"], "kind": "attention"}  # type: ignore[dict-item]  # --set fuser.kind=attention
    assert Model.model_validate(values).fuser == AttentionFuserConfig(dim=32)
    values["fuser"] = {"kind": "self_attention", "heads": 2, "dim": 8}
    assert Model.model_validate(values).fuser == SelfAttentionFuserConfig(dim=8, heads=2)
    with pytest.raises(ValidationError):
        Model.model_validate({"fuser": {"kind": "attention", "project": False}})
    # switching kind on a fully dumped config: keys the new kind lacks are dropped
    moved = retarget_fuser(MLPFuserConfig(dim=16).model_dump(), "attention")
    assert Model.model_validate({"fuser": moved}).fuser == AttentionFuserConfig(dim=16)
    with pytest.raises(ValueError, match="unknown fuser kind"):
        retarget_fuser({}, "nope")


def test_config_module_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import fusionrec.fusion.config as c\n"
        "c.parse_fuser_config({'kind': 'attention'})\n"
        "loaded = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
