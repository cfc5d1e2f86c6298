"""Typed configs for the fusers (pydantic only: importing this module never loads torch).

One class per fuser, told apart by ``kind``; :data:`FuserConfig` is the discriminated union a
model config holds (``fuser: FuserConfig = MeanFuserConfig()``), so a YAML mapping or a merged
``--set fuser.kind=attention`` dict validates straight into the right class. A mapping without
``kind`` is read as ``mean``. Unknown keys are rejected (``extra="forbid"``); when switching kind on
a dict that still carries the old kind's keys, :func:`retarget_fuser` drops the ones the new kind
does not have. The fusers themselves are built by ``fusionrec.fusion.fusers.build_fuser``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PositiveInt, TypeAdapter, model_validator

Dim = Annotated[int, Field(ge=1)]
Dropout = Annotated[float, Field(ge=0.0, lt=1.0)]


class _FuserConfigBase(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MeanFuserConfig(_FuserConfigBase):
    """Per-modality linear projection to ``dim``, then the mean over the PRESENT modalities.

    ``project=False`` keeps the features as they are (every input dim must be equal); ``dim`` is
    then the common input dim (``None`` takes it). With ``project=True``, ``dim=None`` means 128.
    """

    kind: Literal["mean"] = "mean"
    dim: Dim | None = None
    project: bool = True


class ConcatFuserConfig(_FuserConfigBase):
    """Per-modality projection to ``dim_per_modality``, concatenated; a missing modality's slot
    holds a learned "missing" embedding, and ``indicator`` appends one presence bit per modality."""

    kind: Literal["concat"] = "concat"
    dim_per_modality: Dim = 64
    indicator: bool = True


class WeightedFuserConfig(_FuserConfigBase):
    """One learned scalar weight per modality, softmax over the present modalities of each item."""

    kind: Literal["weighted"] = "weighted"
    dim: Dim | None = None
    project: bool = True


class GatedFuserConfig(_FuserConfigBase):
    """Per-item sigmoid gates from the projected features, masked and normalised."""

    kind: Literal["gated"] = "gated"
    dim: Dim = 128


class AttentionFuserConfig(_FuserConfigBase):
    """A learned query attending over the modality tokens (masked softmax)."""

    kind: Literal["attention"] = "attention"
    dim: Dim = 128


class SelfAttentionFuserConfig(_FuserConfigBase):
    """Multi-head self-attention across modality tokens (missing ones padded out), masked mean pool."""

    kind: Literal["self_attention"] = "self_attention"
    dim: Dim = 64
    heads: PositiveInt = 4
    dropout: Dropout = 0.0

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> SelfAttentionFuserConfig:
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        return self


class BilinearFuserConfig(_FuserConfigBase):
    """Linear terms plus rank-``rank`` pairwise products over the present modality pairs."""

    kind: Literal["bilinear"] = "bilinear"
    dim: Dim = 128
    rank: PositiveInt = 16


class MLPFuserConfig(_FuserConfigBase):
    """Concat fusion (missing embeddings + presence bits) then an MLP with dropout."""

    kind: Literal["mlp"] = "mlp"
    dim: Dim = 128
    dim_per_modality: Dim = 64
    hidden: tuple[PositiveInt, ...] = (256,)
    dropout: Dropout = 0.1


class PCAFuserConfig(_FuserConfigBase):
    """A frozen per-modality PCA to ``dim`` components (``fit_pca`` on present rows), masked mean."""

    kind: Literal["pca"] = "pca"
    dim: Dim = 64
    whiten: bool = False


class LinearFuserConfig(_FuserConfigBase):
    """One learned linear map of the concatenated inputs; a missing block is a learned offset."""

    kind: Literal["linear"] = "linear"
    dim: Dim = 128


AnyFuserConfig = (
    MeanFuserConfig
    | ConcatFuserConfig
    | WeightedFuserConfig
    | GatedFuserConfig
    | AttentionFuserConfig
    | SelfAttentionFuserConfig
    | BilinearFuserConfig
    | MLPFuserConfig
    | PCAFuserConfig
    | LinearFuserConfig
)

FUSER_CONFIGS: dict[str, type[_FuserConfigBase]] = {
    cls.model_fields["kind"].default: cls
    for cls in (
        MeanFuserConfig,
        ConcatFuserConfig,
        WeightedFuserConfig,
        GatedFuserConfig,
        AttentionFuserConfig,
        SelfAttentionFuserConfig,
        BilinearFuserConfig,
        MLPFuserConfig,
        PCAFuserConfig,
        LinearFuserConfig,
    )
}
FUSER_KINDS: tuple[str, ...] = tuple(FUSER_CONFIGS)


def _default_kind(value: Any) -> Any:
    """A mapping without ``kind`` is a mean fuser's config (the default fuser)."""
    if isinstance(value, Mapping) and "kind" not in value:
        return {**value, "kind": "mean"}
    return value


FuserConfig = Annotated[AnyFuserConfig, Field(discriminator="kind"), BeforeValidator(_default_kind)]

_ADAPTER: TypeAdapter[AnyFuserConfig] = TypeAdapter(FuserConfig)


def parse_fuser_config(value: Mapping[str, Any] | BaseModel) -> AnyFuserConfig:
    """Validate a mapping (or an existing config) into the right fuser config class."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    return _ADAPTER.validate_python(value)


def retarget_fuser(values: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """``values`` with ``kind`` set and only the keys that kind's config has (others dropped).

    For switching kind on a dumped config: ``retarget_fuser(MeanFuserConfig().model_dump(),
    "attention")`` keeps ``dim`` and drops ``project``. An unknown kind is a ValueError.
    """
    if kind not in FUSER_CONFIGS:
        raise ValueError(f"unknown fuser kind {kind!r}; expected one of {', '.join(FUSER_KINDS)}")
    fields = FUSER_CONFIGS[kind].model_fields
    kept = {k: v for k, v in values.items() if k in fields and k != "kind" and v is not None}
    return {**kept, "kind": kind}


class ItemGraphConfig(BaseModel):
    """How to build the item-item graph (a model config can hold one)."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=10, ge=1, description="neighbours kept per item and modality")
    weighting: Literal["binary", "cosine"] = "binary"
    modality_weights: dict[str, float] | None = Field(
        default=None, description="a_m per modality (normalised to sum 1); None = equal weights"
    )
    block_mb: int = Field(default=64, ge=1, description="dense similarity block size while building")
