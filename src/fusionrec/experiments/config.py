"""The experiment file (``fusionrec run EXPERIMENT.yaml``): one validated YAML for every stage.

Errors name the file, the line (from PyYAML's node marks) and the key path, in one line, e.g.
``ml1m.yaml:12: models[1].params.l2: Input should be greater than 0``. Relative paths in ``data``
and ``features.cache_dir`` are resolved against the YAML file's folder. No torch is imported.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from fusionrec.config import SplitConfig, StrictModel
from fusionrec.data.loaders import LoaderOptions
from fusionrec.errors import DataError
from fusionrec.features.config import FeaturesConfig

Modality = Literal["text", "image", "audio", "attributes"]
DataFormat = Literal["tabular", "movielens", "amazon", "mmrec", "sample"]


class SampleOptions(StrictModel):
    """Size of the built-in generated sample (``data.format: sample``)."""

    n_users: int = Field(default=400, ge=2)
    n_items: int = Field(default=240, ge=2)
    seed: int = 0
    images: bool = True
    audio: bool = False


class DataSection(StrictModel):
    """Where the interactions and the catalogue come from."""

    format: DataFormat
    source: Path | None = Field(default=None, description="file or folder (not for format: sample)")
    options: LoaderOptions = LoaderOptions()
    sample: SampleOptions = SampleOptions()

    @model_validator(mode="after")
    def _needs_source(self) -> DataSection:
        if self.format != "sample" and self.source is None:
            raise ValueError(f"format {self.format!r} needs a source path")
        if self.format == "tabular" and self.options.tabular is None:
            raise ValueError("format 'tabular' needs options.tabular (the column mapping)")
        return self


def _default_modalities() -> list[Modality]:
    return ["text", "attributes"]


class FeaturesSection(FeaturesConfig):
    """Which modalities to extract, with the encoder settings of :class:`FeaturesConfig`."""

    modalities: list[Modality] = Field(default_factory=lambda: _default_modalities(), min_length=1)
    cache_dir: Path | None = Field(default=None, description="content-addressed cache (default RUN_DIR/feature-cache)")


class ModelSpec(StrictModel):
    """One model to train: its name in this experiment, its registry name and its hyper-parameters."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    model: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _known(cls, value: str) -> str:
        from fusionrec.models.registry import CONFIGS

        key = value.strip().lower()
        if key not in CONFIGS:
            close = difflib.get_close_matches(key, list(CONFIGS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown model {value!r}{hint}; available: {', '.join(CONFIGS)}")
        return key


class EvaluationSection(StrictModel):
    """Full-ranking evaluation of every model."""

    ks: list[int] = Field(default_factory=lambda: [10, 20], min_length=1)
    ci: Literal["t", "bootstrap"] = "t"
    level: float = Field(default=0.95, gt=0, lt=1)
    on: Literal["test", "valid"] = "test"
    keys: list[str] | None = Field(default=None, description="metrics shown in the summary table")

    @field_validator("ks")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(k < 1 for k in value):
            raise ValueError("every k must be >= 1")
        return sorted(set(value))


class AblationSection(StrictModel):
    """The modality ablation of one of the experiment's models (a feature model)."""

    model: str = Field(description="a name from the models list")
    modalities: list[str] | None = Field(default=None, description="modalities to ablate (default: all)")
    metric: str = "ndcg@20"


class TrackingSection(StrictModel):
    """Experiment tracking; nothing is required: off or unavailable, the run still works."""

    mlflow: bool = False
    tracking_uri: str | None = Field(default=None, description="default: file store RUN_DIR/mlruns")
    experiment: str | None = Field(default=None, description="MLflow experiment name (default: the name)")
    tensorboard: bool = False


class ExperimentConfig(StrictModel):
    """The whole experiment file."""

    name: str = Field(min_length=1)
    data: DataSection
    split: SplitConfig = SplitConfig()
    features: FeaturesSection | None = None
    models: list[ModelSpec] = Field(min_length=1)
    evaluation: EvaluationSection = EvaluationSection()
    ablation: AblationSection | None = None
    tracking: TrackingSection = TrackingSection()

    @field_validator("features", mode="before")
    @classmethod
    def _none_word(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() in ("none", "off") else value

    @model_validator(mode="after")
    def _cross_checks(self) -> ExperimentConfig:
        names = [m.name for m in self.models]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"model name {duplicate!r} is used twice")
        if self.ablation is not None:
            if self.ablation.model not in names:
                raise ValueError(f"ablation.model {self.ablation.model!r} is not one of the models ({', '.join(names)})")
            if self.features is None:
                raise ValueError("ablation needs features (features: none was given)")
        return self

    def model_spec(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)


# ---------------------------------------------------------------------- loading with line numbers
class ExperimentError(DataError):
    """A bad experiment file: ``FILE:LINE: key.path: reason`` in one line."""

    def __init__(self, file: str, line: int | None, path: str, reason: str) -> None:
        self.line = line
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {path + ': ' if path else ''}{reason}")


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment file; every error is one :class:`ExperimentError` line."""
    file = Path(path)
    if not file.is_file():
        raise DataError("experiment file not found", file=str(file))
    text = file.read_text(encoding="utf-8")
    return parse_experiment(text, str(file), base_dir=file.resolve().parent)


class _Loader(yaml.SafeLoader):
    """SafeLoader where only true/false are booleans (YAML 1.1 reads keys like ``on:`` as True)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_experiment(text: str, filename: str = "<experiment>", base_dir: Path | None = None) -> ExperimentConfig:
    """Validate YAML ``text``; relative paths resolved against ``base_dir`` (default: the working folder)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ExperimentError(filename, line, "", f"invalid YAML: {reason}") from None
    except yaml.YAMLError as exc:
        raise ExperimentError(filename, None, "", f"invalid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ExperimentError(filename, 1, "", "the experiment file must be a mapping (name, data, models, ...)")
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise _first_error(exc, node, filename, ExperimentConfig, ()) from None
    for index, spec in enumerate(config.models):
        _check_params(spec, index, node, filename)
    return _resolve_paths(config, base_dir or Path.cwd())


def _check_params(spec: ModelSpec, index: int, node: yaml.Node | None, filename: str) -> None:
    from fusionrec.models.registry import config_class

    cls = config_class(spec.model)
    try:
        validated = cls.model_validate(spec.params)
    except ValidationError as exc:
        raise _first_error(exc, node, filename, cls, ("models", index, "params")) from None
    # keep what was written (defaults stay implicit), typed as the model reads it
    spec.params = {k: v for k, v in validated.model_dump(mode="json").items() if k in spec.params}


def _resolve_paths(config: ExperimentConfig, base: Path) -> ExperimentConfig:
    def absolute(p: Path | None) -> Path | None:
        if p is None:
            return None
        p = p.expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    data = config.data
    data.source = absolute(data.source)
    if data.options.meta is not None:
        data.options.meta = absolute(data.options.meta)
    if config.features is not None:
        config.features.cache_dir = absolute(config.features.cache_dir)
    return config


def _first_error(
    exc: ValidationError, node: yaml.Node | None, filename: str, root: type[BaseModel], prefix: tuple[Any, ...]
) -> ExperimentError:
    errors = exc.errors()
    first = errors[0]
    loc = tuple(first["loc"])
    full = prefix + loc
    if first["type"] == "extra_forbidden":
        allowed = _fields_at(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1) if allowed else []
        reason = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
        line = _line_of(node, full, key=True)
    else:
        reason = first["msg"].removeprefix("Value error, ")
        line = _line_of(node, full, key=False)
    more = len(errors) - 1
    if more:
        reason += f" (and {more} more error{'s' if more > 1 else ''})"
    return ExperimentError(filename, line, format_loc(full), reason)


def format_loc(loc: tuple[Any, ...]) -> str:
    """``("models", 1, "params", "l2")`` -> ``models[1].params.l2``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...], key: bool) -> int | None:
    """1-based line of the deepest YAML node along ``loc`` (the key itself when ``key``)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
            if match is None:
                return line
            key_node, node = match
            if last and key:
                return key_node.start_mark.line + 1
            line = (key_node if isinstance(node, yaml.ScalarNode) else node).start_mark.line + 1
            if isinstance(node, yaml.ScalarNode):
                line = node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _fields_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the pydantic model reached from ``root`` along ``loc`` (for suggestions)."""
    current: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        model = _model_in(current)
        if model is None or str(part) not in model.model_fields:
            return []
        current = model.model_fields[str(part)].annotation
    model = _model_in(current)
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType, list, tuple) or origin is not None:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def dump_experiment(config: ExperimentConfig) -> str:
    """The config as YAML (what ``RUN_DIR/experiment.yaml`` holds when no file was given)."""
    return yaml.safe_dump(config.model_dump(mode="json", exclude_none=False), sort_keys=False)
