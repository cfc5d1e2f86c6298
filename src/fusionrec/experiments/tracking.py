"""Experiment tracking of a finished run: MLflow (``mlflow-skinny``) and TensorBoard event files.

Read from the run directory (``models/<name>/metrics.json`` and ``history.json``), so a fully
cached run logs the same thing. Nothing is required: tracking off, MLflow or TensorBoard missing,
or any tracking failure leaves the run as it is, with a warning and a status line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any

from fusionrec.experiments.config import ExperimentConfig

log = logging.getLogger(__name__)


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": "1", "c": "[1, 2]"}`` (MLflow params are strings)."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for key, inner in value.items():
            out |= flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        for i, inner in enumerate(value):
            out |= flatten(inner, f"{prefix}[{i}]")
    else:
        out[prefix] = json.dumps(value, default=str) if not isinstance(value, str) else value
    return out


def metric_name(key: str) -> str:
    """An MLflow-legal metric name: ``recall@20`` -> ``recall_at_20``."""
    return re.sub(r"[^\w.\- /]", "_", key.replace("@", "_at_"))


def _finite(values: dict[str, Any]) -> dict[str, float]:
    return {metric_name(k): float(v) for k, v in values.items()
            if isinstance(v, int | float) and math.isfinite(float(v))}


def _read(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def track_run(config: ExperimentConfig, run_dir: Path, results: list[dict[str, Any]]) -> str:
    """Log the run as asked by ``config.tracking``; returns a one-line status (never raises)."""
    parts = [_mlflow(config, run_dir) if config.tracking.mlflow else "mlflow off"]
    parts.append(_tensorboard(config, run_dir) if config.tracking.tensorboard else "tensorboard off")
    return "; ".join(parts)


def _mlflow(config: ExperimentConfig, run_dir: Path) -> str:
    try:
        import mlflow
    except ImportError:
        return "mlflow unavailable (pip install mlflow-skinny): tracking off"
    uri = config.tracking.tracking_uri or (run_dir / "mlruns").resolve().as_uri()
    if uri.startswith("file:"):  # MLflow 3 keeps the file store behind an opt-in
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment(config.tracking.experiment or config.name)
            params = flatten(config.model_dump(mode="json", exclude={"models"}))
            with mlflow.start_run(run_name=config.name) as parent:
                mlflow.log_params({k[:250]: v[:6000] for k, v in params.items()})
                mlflow.set_tag("run_dir", str(run_dir))
                for spec in config.models:
                    folder = run_dir / "models" / spec.name
                    metrics, history = _read(folder / "metrics.json"), _read(folder / "history.json")
                    with mlflow.start_run(run_name=spec.name, nested=True):
                        mlflow.log_params({"model": spec.model} | flatten(spec.params, "params"))
                        name = metric_name(f"valid_{history.get('metric', '')}")
                        for epoch, value in enumerate(history.get("values", []), start=1):
                            if value is not None and math.isfinite(float(value)):
                                mlflow.log_metric(name, float(value), step=epoch)
                        final = _finite(metrics.get("mean", {}))
                        final |= {k: v for k, v in _finite({"train_s": metrics.get("train_s")}).items()}
                        if final:
                            mlflow.log_metrics(final)
        return f"mlflow: run {parent.info.run_id} at {uri}"
    except Exception as exc:  # tracking never fails the run
        log.warning("mlflow tracking failed: %s", exc)
        return f"mlflow failed ({type(exc).__name__}: {exc}): tracking off"


def _tensorboard(config: ExperimentConfig, run_dir: Path) -> str:
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return "tensorboard unavailable (the tensorboard package is not installed)"
    try:
        for spec in config.models:
            folder = run_dir / "models" / spec.name
            metrics, history = _read(folder / "metrics.json"), _read(folder / "history.json")
            writer = SummaryWriter(log_dir=str(run_dir / "tensorboard" / spec.name))
            for epoch, value in enumerate(history.get("values", []), start=1):
                if value is not None:
                    writer.add_scalar(f"valid/{history.get('metric', 'metric')}", float(value), epoch)
            for key, value in _finite(metrics.get("mean", {})).items():
                writer.add_scalar(f"test/{key}", value, 0)
            writer.close()
        return f"tensorboard: {run_dir / 'tensorboard'}"
    except Exception as exc:  # tracking never fails the run
        log.warning("tensorboard logging failed: %s", exc)
        return f"tensorboard failed ({exc})"
