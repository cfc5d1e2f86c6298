"""``fusionrec run``: an experiment file's stages, each cached in ``RUN_DIR/<stage>/`` and resumable.

Stages: ``data`` -> ``split`` -> ``features`` (unless ``features: none``) -> ``models/<name>`` (one
per model) -> ``ablation`` (when asked). Each finished stage writes ``stage.json``
(``key``, ``status``, ``seconds``, ``finished``) last; its key is the sha256 of the stage's config,
the keys of the stages it reads and :data:`STAGE_FORMAT`. A stage whose ``stage.json`` says done
with the same key is reused; any other is removed and recomputed, so a killed run resumes at the
first stage not done and changing one model's params reruns only that model (and the ablation if
it ablates that model). Orchestration only: the algorithms are the stages' own functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusionrec.errors import ModelError
from fusionrec.experiments.config import ExperimentConfig, ModelSpec, dump_experiment

if TYPE_CHECKING:
    from rich.console import Console

    from fusionrec.data.schema import Dataset
    from fusionrec.data.splits import Split
    from fusionrec.features.base import FeatureSet

log = logging.getLogger(__name__)

STAGE_FORMAT = 1  # bump when what a stage writes changes: every key changes, every stage reruns
STAGE_FILE = "stage.json"


@dataclass
class StageRecord:
    """What ``run.json`` says of one stage in this run."""

    key: str
    cached: bool
    seconds: float  # how long computing it took (when it was computed)


@dataclass
class RunResult:
    """What a run produced: per-stage records, per-model metrics (``metrics.json``) and the folder."""

    run_dir: Path
    stages: dict[str, StageRecord] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    tracking: str = "off"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def stage_key(payload: Any) -> str:
    """sha256 of the canonical JSON of ``payload`` plus the stage format version."""
    text = json.dumps({"format": STAGE_FORMAT, "payload": payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def read_stage(directory: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((directory / STAGE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (a temporary file renamed), so a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    tmp.replace(path)


class Stages:
    """Key check, clean re-run and ``stage.json`` of every stage of one run."""

    def __init__(self, run_dir: Path, force: bool, console: Console | None) -> None:
        self.run_dir, self.force, self.console = run_dir, force, console
        self.records: dict[str, StageRecord] = {}

    def run(self, name: str, key: str, compute: Callable[[Path], None]) -> bool:
        """Reuse stage ``name`` when done with ``key``, else (re)compute it; True when reused."""
        directory = self.run_dir / name
        meta = read_stage(directory)
        if not self.force and meta is not None and meta.get("status") == "done" and meta.get("key") == key:
            self.records[name] = StageRecord(key, True, float(meta.get("seconds", 0.0)))
            self._say(f"{name}: cached (key {key[:4]}…)")
            return True
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        self._say(f"[bold]{name}[/]: running (key {key[:4]}…)")
        start = time.perf_counter()
        compute(directory)
        seconds = time.perf_counter() - start
        write_json(directory / STAGE_FILE, {"key": key, "status": "done", "seconds": seconds, "finished": now_iso()})
        self.records[name] = StageRecord(key, False, seconds)
        self._say(f"{name}: done in {seconds:.1f}s")
        return False

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)
        else:
            log.info(text)


def source_fingerprint(path: Path | None) -> list[Any]:
    """Name, size and mtime of the source file or of a source folder's top-level entries."""
    if path is None or not path.exists():
        return []
    entries = sorted(path.iterdir()) if path.is_dir() else [path]
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in entries if p.is_file()]


def available_modalities(dataset: Dataset, wanted: list[str]) -> list[str]:
    """The asked modalities the dataset has columns for (attributes: always)."""
    columns = dataset.item_columns
    have = {"text": bool(columns.text), "image": bool(columns.image), "audio": bool(columns.audio), "attributes": True}
    return [m for m in wanted if have.get(m, False)]


class Pipeline:
    """One run of an experiment in ``run_dir``; :meth:`run` returns the :class:`RunResult`."""

    def __init__(self, config: ExperimentConfig, run_dir: Path, *, force: bool = False,
                 console: Console | None = None, source_text: str | None = None) -> None:
        self.config, self.run_dir = config, run_dir.resolve()
        self.console, self.source_text = console, source_text
        self.stages = Stages(self.run_dir, force, console)
        self._dataset: Dataset | None = None
        self.split: Split | None = None
        self.features: FeatureSet | None = None

    # ------------------------------------------------------------------ stages
    @property
    def dataset(self) -> Dataset:
        if self._dataset is None:
            from fusionrec.data.schema import Dataset

            self._dataset = Dataset.load(self.run_dir / "data")
        return self._dataset

    def data_source(self) -> str:
        data = self.config.data
        return "built-in sample" if data.format == "sample" else f"{data.format}: {data.source}"

    def _data(self, out: Path) -> None:
        from fusionrec.data.loaders import LoaderOptions, load_source
        from fusionrec.data.sample import SAMPLE_MAPPING, write_sample
        from fusionrec.data.stats import dataset_stats, stats_table

        data = self.config.data
        if data.format == "sample":
            s = data.sample
            folder = write_sample(self.run_dir / "sample-source", n_users=s.n_users, n_items=s.n_items, seed=s.seed,
                                  with_images=s.images, audio="tones" if s.audio else None)
            options = LoaderOptions(name=data.options.name or "sample", tabular=SAMPLE_MAPPING,
                                    strict=data.options.strict, check_media=data.options.check_media)
            dataset, report = load_source("tabular", folder, options)
        else:
            assert data.source is not None
            dataset, report = load_source(data.format, data.source, data.options)
        dataset.save(out)
        write_json(out / "validation.json", report.to_dict())
        stats = dataset_stats(dataset)
        write_json(out / "stats.json", stats.model_dump(mode="json"))
        self._dataset = dataset
        if self.console is not None:
            self.console.print(f"data: {self.data_source()}")
            self.console.print(report.table())
            self.console.print(stats_table(stats))

    def _split(self, out: Path) -> None:
        from fusionrec.data.splits import split_dataset

        self.split = split_dataset(self.dataset, self.config.split, dataset_dir=self.run_dir / "data")
        self.split.save(out)

    def _features(self, out: Path, modalities: list[str]) -> None:
        from fusionrec.features.config import FeaturesConfig
        from fusionrec.features.extract import extract_features

        section = self.config.features
        assert section is not None
        settings = FeaturesConfig(**section.model_dump(exclude={"modalities", "cache_dir"}))
        cache = section.cache_dir or self.run_dir / "feature-cache"
        extraction = extract_features(self.dataset, modalities, cache_dir=cache, config=settings, progress=True)
        extraction.features.save(out)
        self.features = extraction.features

    def _model(self, spec: ModelSpec, out: Path) -> None:
        from fusionrec.experiments.runner import train_and_evaluate
        from fusionrec.models.bundle import ModelBundle

        assert self.split is not None
        ev = self.config.evaluation
        run = train_and_evaluate(spec.model, self.split, k=tuple(ev.ks), config=spec.params, on=ev.on,
                                 features=self.features)
        ModelBundle.from_split(run.model, self.split, self.features).save(out / "bundle")
        result = run.result
        metrics = {
            "model": spec.model, "params": spec.params, "mean": result.mean(),
            "ci": {k: list(v) for k, v in result.confidence_intervals(level=ev.level, method=ev.ci).items()},
            "by_user_activity": result.by_user_activity(), "by_item_popularity": result.by_item_popularity(),
            "train_s": run.train_time_s, "n_epochs": run.n_epochs, "best_epoch": run.best_epoch,
            "n_users": result.n_evaluated, "beyond": result.beyond,
        }
        write_json(out / "metrics.json", metrics)
        history = getattr(run.model, "history_", None)
        curve = {} if history is None else {"metric": history.metric,
                                            "values": [e.valid_metric for e in history.epochs]}
        write_json(out / "history.json", curve)

    def _ablation(self, out: Path) -> None:
        from fusionrec.experiments.ablation import FeaturePool, run_ablation
        from fusionrec.experiments.ablation_files import write_outputs

        ab, ev = self.config.ablation, self.config.evaluation
        assert ab is not None and self.split is not None and self.features is not None
        spec = self.config.model_spec(ab.model)
        pool = FeaturePool.from_sets([("features", self.features)], self.split.item_map.ids)
        result = run_ablation(spec.model, self.split, pool, modalities=ab.modalities, config=spec.params,
                              ks=tuple(ev.ks), metric=ab.metric, ci_method=ev.ci, level=ev.level)
        write_outputs(result, out)

    # ------------------------------------------------------------------ the run
    def check_models(self) -> None:
        """Fail before any stage runs when a feature model is asked without features."""
        from fusionrec.models.registry import get_model_class

        if self.config.features is None:
            content = [m.name for m in self.config.models if get_model_class(m.model).uses_features]
            if content:
                raise ModelError(f"models {', '.join(content)} read item features, but features: none")

    def run(self) -> RunResult:
        from fusionrec.data.splits import Split
        from fusionrec.features.base import FeatureSet
        from fusionrec.models.registry import get_model_class

        cfg, root = self.config, self.run_dir
        self.check_models()
        root.mkdir(parents=True, exist_ok=True)
        (root / "experiment.yaml").write_text(self.source_text if self.source_text is not None
                                              else dump_experiment(cfg))
        started = now_iso()
        self._write_run_json(started, None)
        st = self.stages
        data_key = stage_key({"data": cfg.data.model_dump(mode="json"),
                              "source": source_fingerprint(cfg.data.source)})
        st.run("data", data_key, self._data)
        split_key = stage_key({"split": cfg.split.model_dump(mode="json"), "data": data_key})
        if st.run("split", split_key, self._split):
            self.split = Split.load(root / "split")
        features_key = None
        if cfg.features is not None:
            modalities = available_modalities(self.dataset, list(cfg.features.modalities))
            dropped = sorted(set(cfg.features.modalities) - set(modalities))
            if dropped and self.console is not None:
                self.console.print(f"features: the data has no {', '.join(dropped)} column: not extracted")
            features_key = stage_key({"features": cfg.features.model_dump(mode="json"), "modalities": modalities,
                                      "data": data_key})
            if st.run("features", features_key, lambda out: self._features(out, modalities)):
                self.features = FeatureSet.load(root / "features")
        results = []
        for spec in cfg.models:
            cls = get_model_class(spec.model)
            reads = cls.uses_features or cls.maps_cold_items
            key = stage_key({"model": spec.model, "params": spec.params,
                             "evaluation": cfg.evaluation.model_dump(mode="json"), "split": split_key,
                             "features": features_key if reads else None})
            st.run(f"models/{spec.name}", key, partial(self._model, spec))
            results.append(json.loads((root / "models" / spec.name / "metrics.json").read_text()))
        write_json(root / "results.json", results)
        if cfg.ablation is not None:
            spec = cfg.model_spec(cfg.ablation.model)
            key = stage_key({"ablation": cfg.ablation.model_dump(mode="json"), "model": spec.model,
                             "params": spec.params, "evaluation": cfg.evaluation.model_dump(mode="json"),
                             "split": split_key, "features": features_key})
            st.run("ablation", key, self._ablation)
        outcome = RunResult(run_dir=root, stages=dict(st.records), results=results)
        from fusionrec.experiments.tracking import track_run

        outcome.tracking = track_run(cfg, root, results)
        self._write_run_json(started, now_iso())
        return outcome

    def _write_run_json(self, started: str, finished: str | None) -> None:
        write_json(self.run_dir / "run.json", {
            "name": self.config.name, "started": started, "finished": finished,
            "stages": {n: {"key": r.key, "cached": r.cached, "seconds": r.seconds}
                       for n, r in self.stages.records.items()},
            "data_source": self.data_source(), "models": [m.name for m in self.config.models],
        })


def run_experiment(config: ExperimentConfig, run_dir: str | Path, *, force: bool = False,
                   console: Console | None = None, source_text: str | None = None) -> RunResult:
    """Run (or resume, or reuse) every stage of ``config`` in ``run_dir``; see the module docstring."""
    return Pipeline(config, Path(run_dir), force=force, console=console, source_text=source_text).run()


def finish_run(run_dir: str | Path, users: int = 3) -> Path:
    """End of ``fusionrec run`` / ``demo``: write the self-contained HTML report (``RUN_DIR/report.html``)."""
    from fusionrec.experiments.report_html import write_report

    return write_report(Path(run_dir), users=users)
