from __future__ import annotations

import pytest

from fusionrec.errors import ModelError
from fusionrec.models.registry import build_model, get_model_class, model_names


def test_every_registered_model_builds_with_defaults() -> None:
    for name in model_names():
        model = build_model(name)
        assert model.name == name
        assert get_model_class(name.upper()) is type(model)


def test_unknown_model_and_bad_config_are_clear_errors() -> None:
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        get_model_class("nope")
    with pytest.raises(ModelError, match="invalid hyper-parameters for ease"):
        build_model("ease", {"l2": -1})
    with pytest.raises(ModelError, match="invalid hyper-parameters for bpr"):
        build_model("bpr", {"no_such_field": 1})


def test_nested_discriminated_configs_reach_the_constructor_typed() -> None:
    """A sub-config (e.g. a fuser inside a model config) is built as its typed class, chosen by its
    ``kind``, round-trips through JSON, and keeps a default_factory default."""
    from typing import Annotated, Any, Literal

    import numpy as np
    import scipy.sparse as sp
    from pydantic import BaseModel, ConfigDict, Field

    from fusionrec.models.base import ModelConfig, Recommender

    class MeanPart(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kind: Literal["mean"] = "mean"

    class AttentionPart(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kind: Literal["attention"] = "attention"
        heads: int = Field(2, ge=1)

    Part = Annotated[MeanPart | AttentionPart, Field(discriminator="kind")]

    class NestedConfig(ModelConfig):
        part: Part = Field(default_factory=MeanPart)
        dims: list[int] = Field(default_factory=lambda: [8, 4])

    class Nested(Recommender):
        name = "nested"
        config_class = NestedConfig

        def __init__(self, *, part: MeanPart | AttentionPart | None = None, dims: list[int] | None = None) -> None:
            self.part = part if part is not None else MeanPart()
            self.dims = dims if dims is not None else [8, 4]

        def _fit(self, train: sp.csr_matrix, features: Any, valid: Any) -> None: ...

        def score(self, users: np.ndarray, user_items: sp.csr_matrix | None = None) -> np.ndarray:
            return np.zeros((len(users), self.n_items), dtype=np.float32)

        def _get_state(self) -> dict[str, np.ndarray]:
            return {}

        def _set_state(self, state: dict[str, np.ndarray]) -> None: ...

    model = Nested.from_config({"part": {"kind": "attention", "heads": 4}})
    assert isinstance(model.part, AttentionPart) and model.part.heads == 4
    assert Nested.from_config().part == MeanPart() and Nested.from_config().dims == [8, 4]
    dumped = model.get_config().model_dump(mode="json")
    assert Nested.from_config(dumped).get_config() == model.get_config()
    with pytest.raises(ValueError):
        Nested.from_config({"part": {"kind": "attention", "heads": 0}})
    with pytest.raises(ValueError):
        Nested.from_config({"part": {"kind": "bilinear"}})


def test_every_config_class_is_the_models_own() -> None:
    from fusionrec.models.registry import config_class

    for name in model_names():
        assert config_class(name) is get_model_class(name).config_class
