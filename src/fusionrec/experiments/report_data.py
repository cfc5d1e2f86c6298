"""What the HTML report of a run directory shows, read from the files `fusionrec run` wrote.

The run directory's layout (the run command's contract)::

    experiment.yaml, run.json, results.json
    data/ (a Dataset) + data/validation.json + data/stats.json
    split/, features/ (optional)
    models/<name>/bundle/, metrics.json, history.json
    ablation/ (optional: ablation.json / .csv / .png), rerank/rerank.csv (optional)

:func:`gather` reads it into a :class:`RunReport`; every optional part that is absent or unreadable
becomes ``None`` plus a line in ``notes`` (the renderer leaves that section out and says why). Only
``results.json`` is required. Rendering is :mod:`fusionrec.experiments.report_html`.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.errors import DataError

log = logging.getLogger(__name__)

BEST_METRIC = "ndcg@20"
HISTORY_SHOWN = 8
TOP_K = 10
THUMB_WIDTH = 120


@dataclass
class ModelMetrics:
    """One model's ``metrics.json`` (and its per-epoch valid curve, ``history.json``)."""

    name: str
    mean: dict[str, float]
    ci: dict[str, list[float]]
    by_user_activity: dict[str, dict[str, float]] = field(default_factory=dict)
    by_item_popularity: dict[str, dict[str, float]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    train_s: float | None = None
    n_epochs: int | None = None
    best_epoch: int | None = None
    n_users: int | None = None
    curve_metric: str | None = None
    curve: list[float] = field(default_factory=list)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ModelMetrics:
        def numbers(values: Any) -> dict[str, float]:
            return {str(k): _num(v) for k, v in (values or {}).items()}

        return cls(
            name=str(payload.get("model", "?")),
            mean=numbers(payload.get("mean")),
            ci={str(k): [_num(x) for x in v] for k, v in (payload.get("ci") or {}).items() if v},
            by_user_activity={str(g): numbers(v) for g, v in (payload.get("by_user_activity") or {}).items()},
            by_item_popularity={str(g): numbers(v) for g, v in (payload.get("by_item_popularity") or {}).items()},
            params=dict(payload.get("params") or {}),
            train_s=payload.get("train_s"),
            n_epochs=payload.get("n_epochs"),
            best_epoch=payload.get("best_epoch"),
            n_users=payload.get("n_users"),
        )


@dataclass
class Card:
    """One item as a poster card: history items have no score; recommended ones may be explained."""

    title: str
    poster: str | None = None  # a data: URI (JPEG thumbnail), None: a placeholder
    genres: str = ""
    rank: int | None = None
    score: float | None = None
    hit: bool = False  # a held-out test item of the user
    headline: str | None = None
    contributions: dict[str, float] | None = None
    driver: str | None = None


@dataclass
class SampleUser:
    user_id: str
    n_history: int
    history: list[Card]
    top: list[Card]
    explained: str = ""  # how the explanations were made (or why there are none)


@dataclass
class RunReport:
    run_dir: Path
    name: str
    run: dict[str, Any]
    models: list[ModelMetrics]
    stats: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    best: str | None = None
    users: list[SampleUser] = field(default_factory=list)
    users_model: str | None = None
    ablation_png: bytes | None = None
    ablation_rows: list[dict[str, str]] | None = None
    rerank_rows: list[dict[str, str]] | None = None
    notes: dict[str, str] = field(default_factory=dict)  # section -> why it is left out


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _optional_json(path: Path, section: str, notes: dict[str, str]) -> Any:
    if not path.is_file():
        notes[section] = f"{path.name} not found in the run directory"
        return None
    try:
        return _read_json(path)
    except (OSError, ValueError) as exc:
        notes[section] = f"{path.name} could not be read: {exc}"
        return None


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def thumbnail(path: Path, width: int = THUMB_WIDTH) -> str | None:
    """A JPEG thumbnail ``width`` px wide of an image file as a ``data:`` URI (``None`` if unreadable)."""
    from PIL import Image

    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
            height = max(1, round(image.height * width / max(image.width, 1)))
            small = image.resize((width, height), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            small.save(buffer, format="JPEG", quality=82, optimize=True)
    except (OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def gather(run_dir: str | Path, users: int = 3, model: str | None = None) -> RunReport:
    """Read a run directory; raise DataError when it has no ``results.json``.

    The sample users' lists come from ``model`` (default: the best by NDCG@20)."""
    root = Path(run_dir)
    results_file = root / "results.json"
    if not results_file.is_file():
        raise DataError(f"{root} is not a finished run directory (no results.json); write one with `fusionrec run`")
    try:
        results = _read_json(results_file)
    except ValueError as exc:
        raise DataError(f"results.json is not valid JSON: {exc}", file=str(results_file)) from None
    if not isinstance(results, list):
        raise DataError("results.json must hold a list of model metrics", file=str(results_file))
    models = [ModelMetrics.from_dict(r) for r in results if isinstance(r, dict)]
    for entry in models:
        curve = root / "models" / entry.name / "history.json"
        payload = _read_json(curve) if curve.is_file() else {}
        if isinstance(payload, dict) and payload.get("values"):
            entry.curve_metric = str(payload.get("metric", "valid"))
            entry.curve = [_num(v) for v in payload["values"]]
    notes: dict[str, str] = {}
    run = _optional_json(root / "run.json", "run", notes) or {}
    report = RunReport(run_dir=root, name=str(run.get("name") or root.name), run=run, models=models, notes=notes)
    report.stats = _optional_json(root / "data" / "stats.json", "data", notes)
    report.validation = _optional_json(root / "data" / "validation.json", "validation", notes)
    scored = [m for m in models if not np.isnan(m.mean.get(BEST_METRIC, float("nan")))]
    report.best = max(scored, key=lambda m: m.mean[BEST_METRIC]).name if scored else None
    _gather_extras(root, report)
    if users > 0:
        report.users_model = model or report.best
        try:
            report.users = sample_users(root, model or report.best, users)
        except Exception as exc:  # the cards are a bonus: a broken bundle must not lose the report
            log.warning("sample users left out: %s", exc)
            notes["users"] = f"could not show sample users: {exc}"
    return report


def _gather_extras(root: Path, report: RunReport) -> None:
    ablation = root / "ablation"
    if (ablation / "ablation.png").is_file():
        report.ablation_png = (ablation / "ablation.png").read_bytes()
    if (ablation / "ablation.csv").is_file():
        report.ablation_rows = _read_csv(ablation / "ablation.csv")
    if report.ablation_png is None and report.ablation_rows is None:
        report.notes["ablation"] = "no ablation in this run (ablation/ablation.png, ablation.csv)"
    rerank = next((p for p in (root / "rerank" / "rerank.csv", root / "rerank.csv") if p.is_file()), None)
    if rerank is not None:
        report.rerank_rows = _read_csv(rerank)
    else:
        report.notes["rerank"] = "no diversity re-ranking in this run (rerank/rerank.csv)"


def pick_users(test_users: np.ndarray, history_sizes: np.ndarray, n: int) -> np.ndarray:
    """``n`` user indices spread evenly over the sorted test users that have a training history."""
    candidates = np.unique(test_users)
    candidates = candidates[history_sizes[candidates] > 0]
    if len(candidates) <= n:
        return candidates
    return candidates[np.unique(np.linspace(0, len(candidates) - 1, n).round().astype(int))]


def sample_users(root: Path, best: str | None, n: int) -> list[SampleUser]:
    """A few test users: their last training items and the best model's top-10, explained when possible."""
    from fusionrec.data.schema import Dataset
    from fusionrec.data.splits import Split
    from fusionrec.features.base import FeatureSet
    from fusionrec.models.bundle import ModelBundle

    if best is None:
        raise DataError(f"no model has {BEST_METRIC}")
    bundle_dir = root / "models" / best / "bundle"
    if not (root / "split").is_dir() or not bundle_dir.is_dir():
        raise DataError(f"the run has no split/ or models/{best}/bundle/")
    split = Split.load(root / "split")
    bundle = ModelBundle.load(bundle_dir)
    bundle.check_split(split)
    dataset = Dataset.load(root / "data") if (root / "data" / "manifest.json").is_file() else None
    features = FeatureSet.load(root / "features") if (root / "features").is_dir() else None
    catalogue = _Catalogue(dataset, bundle.item_ids)
    explainer, how = _explainer(bundle, features, catalogue)

    train = split.train.to_csr(binary=True)
    test = split.test.to_csr(binary=True)
    sizes = np.diff(train.indptr)
    chosen = pick_users(split.test.user, sizes, n)
    if not len(chosen):
        return []
    top, scores = bundle.model.recommend(chosen, k=TOP_K, exclude=bundle.seen)
    out = []
    for row, user in enumerate(chosen):
        past = _last_items(split.train, int(user))
        items = [int(i) for i in top[row] if i >= 0]
        explained = explainer.explain(int(user), items, history=past, scores=scores[row][: len(items)]) if explainer and items else []
        truth = set(test[user].indices.tolist())
        cards = []
        for rank, item in enumerate(items, start=1):
            card = catalogue.card(item)
            card.rank, card.score, card.hit = rank, float(scores[row][rank - 1]), item in truth
            if explained:
                e = explained[rank - 1]
                head = e.headline
                card.headline = head.phrase if head is not None else None
                card.contributions, card.driver = e.contributions, e.driver
            cards.append(card)
        history = [catalogue.card(int(i)) for i in past[-HISTORY_SHOWN:][::-1]]
        out.append(SampleUser(str(bundle.user_ids[user]), int(sizes[user]), history, cards, how))
    return out


def _last_items(train: Any, user: int) -> np.ndarray:
    """The user's training items, oldest first (by timestamp when the split has them)."""
    mask = train.user == user
    items = np.asarray(train.item[mask], dtype=np.int64)
    if train.timestamp is not None:
        items = items[np.argsort(np.asarray(train.timestamp[mask]), kind="stable")]
    return items


def _explainer(bundle: Any, features: Any, catalogue: _Catalogue) -> tuple[Any, str]:
    if features is None:
        return None, "no features/ in the run: no explanations"
    from fusionrec.explain import Explainer

    try:
        bundle.check_features(features)
        features.check_aligned(bundle.item_ids)
        explainer = Explainer(bundle.model, features, titles=catalogue.titles, genres=catalogue.genres,
                              modalities=list(bundle.features) or None)
    except Exception as exc:
        return None, f"no explanations: {exc}"
    return explainer, ""


class _Catalogue:
    """Titles, genres and poster thumbnails of the model's items (thumbnails made once per item)."""

    def __init__(self, dataset: Any, item_ids: np.ndarray) -> None:
        from fusionrec.explain import parse_genres

        self.item_ids = np.asarray(item_ids).astype(str)
        self.dataset = dataset
        self.rows = np.full(len(self.item_ids), -1)
        self.titles: np.ndarray = self.item_ids
        self.genres: list[tuple[str, ...]] | None = None
        self.images: list[Any] | None = None
        self._thumbs: dict[int, str | None] = {}
        if dataset is None:
            return
        index = {str(i): r for r, i in enumerate(dataset.item_map.ids.astype(str))}
        self.rows = np.array([index.get(i, -1) for i in self.item_ids])
        items = dataset.items
        known = self.rows >= 0

        def column(name: str | None) -> list[Any] | None:
            if not name or name not in items.columns:
                return None
            values = items[name].tolist()
            return [values[r] if ok else None for r, ok in zip(self.rows, known, strict=True)]

        titles = column("title")
        if titles is not None:
            self.titles = np.array([str(t) if t else i for t, i in zip(titles, self.item_ids, strict=True)])
        genres = column("genres")
        if genres is not None:
            self.genres = parse_genres(["" if g is None else g for g in genres])
        self.images = column(dataset.item_columns.image)

    def poster(self, item: int) -> str | None:
        if item not in self._thumbs:
            value = self.images[item] if self.images is not None else None
            path = self.dataset.media_path(str(value)) if value and isinstance(value, str) else None
            self._thumbs[item] = thumbnail(path) if path is not None and path.is_file() else None
        return self._thumbs[item]

    def card(self, item: int) -> Card:
        genres = " · ".join(self.genres[item]) if self.genres is not None else ""
        return Card(title=str(self.titles[item]), poster=self.poster(item), genres=genres)
