"""The experiment file: one-line errors naming the file, the line and the key path; examples validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusionrec.experiments.config import ExperimentError, format_loc, load_experiment, parse_experiment

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ROOT / "src" / "fusionrec" / "experiments" / "examples"

GOOD = """\
name: x
data:
  format: sample
split:
  strategy: random
  seed: 0
  ratios: [0.8, 0.1, 0.1]
models:
  - name: a
    model: mostpop
  - name: b
    model: ease
    params:
      l2: 10.0
"""


def _error(text: str, tmp_path: Path) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    message = str(info.value)
    assert "\n" not in message
    return message.removeprefix(str(path))


def test_good_file_validates_with_params_typed(tmp_path: Path) -> None:
    config = parse_experiment(GOOD)
    assert [m.name for m in config.models] == ["a", "b"]
    assert config.models[1].params == {"l2": 10.0}
    assert config.features is None and config.tracking.mlflow is False


def test_unknown_key_names_path_line_and_suggestion(tmp_path: Path) -> None:
    message = _error(GOOD.replace("  ratios:", "  ratio:"), tmp_path)
    assert message == ":7: split.ratio: unknown key (did you mean 'ratios'?)"


def test_bad_model_param_names_path_and_line(tmp_path: Path) -> None:
    message = _error(GOOD.replace("l2: 10.0", "l2: -1"), tmp_path)
    assert message.startswith(":14: models[1].params.l2: Input should be greater than 0")


def test_unknown_model_param_key(tmp_path: Path) -> None:
    message = _error(GOOD.replace("l2: 10.0", "lambda: 3"), tmp_path)
    assert message.startswith(":14: models[1].params.lambda: unknown key")


def test_bad_value_in_a_section(tmp_path: Path) -> None:
    message = _error(GOOD + "evaluation:\n  on: tset\n", tmp_path)
    assert message.startswith(":16: evaluation.on: Input should be 'test' or 'valid'")


def test_unknown_model_name(tmp_path: Path) -> None:
    message = _error(GOOD.replace("model: ease", "model: eas"), tmp_path)
    assert message.startswith(":12: models[1].model: unknown model 'eas' (did you mean 'ease'?)")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    message = _error("name: x\ndata:\n  format: sample\nmodels: [\n  {name: a, model: mostpop\n", tmp_path)
    assert message.startswith(":6: invalid YAML")
    message = _error("name: x\ndata:\n  format: sample\n   bad: indent\n", tmp_path)
    assert message.startswith(":4: invalid YAML")


def test_features_none_and_cross_checks(tmp_path: Path) -> None:
    assert parse_experiment(GOOD + "features: none\n").features is None
    assert parse_experiment(GOOD + "features: {modalities: [attributes]}\n").features is not None
    message = _error(GOOD + "ablation: {model: zzz}\n", tmp_path)
    assert message.startswith(":1: ablation.model 'zzz' is not one of the models") or "ablation.model" in message
    message = _error(GOOD.replace("name: b", "name: a"), tmp_path)
    assert "used twice" in message


def test_format_loc() -> None:
    assert format_loc(("models", 1, "params", "l2")) == "models[1].params.l2"


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "examples").glob("*.yaml")) + sorted(PACKAGED.glob("*.yaml")),
    ids=lambda p: p.name,
)
def test_every_example_validates(path: Path) -> None:
    config = load_experiment(path)
    assert config.models
    if config.data.source is not None and path.parent == ROOT / "examples" and "shared" not in str(config.data.source):
        assert config.data.source.exists()


def test_ml1m_example_has_the_asked_models() -> None:
    config = load_experiment(ROOT / "examples" / "ml1m.yaml")
    assert [m.model for m in config.models] == ["ease", "bpr", "two_tower", "ease_side"]
    assert config.features is not None and set(config.features.modalities) == {"text", "image", "attributes"}
