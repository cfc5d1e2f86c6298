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
