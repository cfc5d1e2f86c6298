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
    "als": "fusionrec.models.als:ALS",
    "lightgcn": "fusionrec.models.lightgcn:LightGCN",
    "content": "fusionrec.models.content:ContentRecommender",
    "ease_side": "fusionrec.models.ease_side:EASESide",
    "two_tower": "fusionrec.models.two_tower:TwoTower",
    "vbpr": "fusionrec.models.vbpr:VBPR",
    "freedom": "fusionrec.models.freedom:Freedom",
}


# name -> its config class, in the light configs module (validating settings imports no model)
CONFIGS: dict[str, str] = {
    "mostpop": "fusionrec.models.configs:MostPopConfig",
    "itemknn": "fusionrec.models.configs:ItemKNNConfig",
    "ease": "fusionrec.models.configs:EASEConfig",
    "bpr": "fusionrec.models.configs:BPRMFConfig",
    "als": "fusionrec.models.configs:ALSConfig",
    "lightgcn": "fusionrec.models.configs:LightGCNConfig",
    "content": "fusionrec.models.configs:ContentConfig",
    "ease_side": "fusionrec.models.configs:EASESideConfig",
    "two_tower": "fusionrec.models.configs:TwoTowerConfig",
    "vbpr": "fusionrec.models.configs:VBPRConfig",
    "freedom": "fusionrec.models.configs:FreedomConfig",
}


def _resolve(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def model_names() -> list[str]:
    return list(MODELS)


def get_model_class(name: str) -> type[Recommender]:
    """The class registered under ``name`` (case-insensitive)."""
    key = name.strip().lower()
    if key not in MODELS:
        raise ModelError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    cls: type[Recommender] = _resolve(MODELS[key])
    return cls


def config_class(name: str) -> type[ModelConfig]:
    """The hyper-parameter class of model ``name``, without importing the model itself."""
    key = name.strip().lower()
    if key in CONFIGS:
        cls: type[ModelConfig] = _resolve(CONFIGS[key])
        return cls
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
