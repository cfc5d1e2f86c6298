"""Typed configuration for the stages (pydantic): validated at load time, unknown keys rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fusionrec.errors import DataError

SplitStrategy = Literal["random", "temporal", "leave_last", "cold_item", "cold_user"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitConfig(StrictModel):
    """How to cut a Dataset's interactions into train / valid / test.

    - ``random``: per user, a random ``ratios`` share of their interactions to each part.
    - ``temporal``: one global time cut, the oldest ``ratios[0]`` to train, then valid, then test.
    - ``leave_last``: per user, the last ``leave_last_n`` to test and the ones before to valid.
    - ``cold_item`` / ``cold_user``: a ``ratios[1]`` / ``ratios[2]`` share of items (users) has
      every interaction in valid / test and none in train.
    """

    strategy: SplitStrategy = "random"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    min_rating: float | None = Field(default=None, description="keep interactions with weight >= this")
    k_core: int = Field(default=0, ge=0, description="repeat until every user and item has >= k")
    leave_last_n: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check_ratios(self) -> SplitConfig:
        if any(r < 0 for r in self.ratios) or abs(sum(self.ratios) - 1.0) > 1e-6:
            raise ValueError(f"ratios must be >= 0 and sum to 1, got {self.ratios}")
        return self


ModelT = TypeVar("ModelT", bound=BaseModel)


def load_yaml_config(path: str | Path, model: type[ModelT]) -> ModelT:
    """Read a YAML file into a typed config, with the file named in any error."""
    file = Path(path)
    if not file.exists():
        raise DataError("config file not found", file=str(file))
    try:
        raw = yaml.safe_load(file.read_text()) or {}
        return model.model_validate(raw)
    except (yaml.YAMLError, ValueError) as exc:
        raise DataError(f"invalid config: {exc}", file=str(file)) from exc


def save_yaml_config(config: BaseModel, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
