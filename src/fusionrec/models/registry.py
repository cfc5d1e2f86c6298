"""Model name -> class, for the CLI and configs. Classes are imported on first use, so importing
the registry costs nothing and a model with an optional dependency breaks only itself."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from fusionrec.errors import ModelError
from fusionrec.models.base import ModelConfig, Recommender, read_model_meta

MODELS: dict[str, str] = {
    "mostpop": "fusionrec.models.popularity:MostPop",
    "itemknn": "fusionrec.models.itemknn:ItemKNN",
    "ease": "fusionrec.models.ease:EASE",
    "bpr": "fusionrec.models.mf:BPRMF",
    "lightgcn": "fusionrec.models.lightgcn:LightGCN",
}


def model_names() -> list[str]:
    return list(MODELS)


def get_model_class(name: str) -> type[Recommender]:
    """The class registered under ``name`` (case-insensitive)."""
    key = name.strip().lower()
    if key not in MODELS:
        raise ModelError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    module_name, _, class_name = MODELS[key].partition(":")
    cls: type[Recommender] = getattr(importlib.import_module(module_name), class_name)
    return cls


def config_class(name: str) -> type[ModelConfig]:
    return get_model_class(name).config_class


def build_model(name: str, config: ModelConfig | dict[str, Any] | None = None) -> Recommender:
    """A model from its name and (validated) hyper-parameters."""
    cls = get_model_class(name)
    try:
        return cls.from_config(config)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ModelError(f"invalid hyper-parameters for {name}: {exc}") from exc


def load_model(directory: str | Path) -> Recommender:
    """Load any saved model directory (its ``model.json`` names the class)."""
    meta = read_model_meta(directory)
    return get_model_class(str(meta["model"])).load(directory)
