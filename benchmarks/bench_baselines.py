"""Baselines on ML-1M: accuracy with confidence intervals, time and memory, next to peer libraries.

    OMP_NUM_THREADS=1 flock /tmp/fusionrec-cpu.lock python benchmarks/bench_baselines.py [--quick]

Protocol: ratings >= 3 are positives, per-user random 80/10/10 split (seed 0), full ranking over
all items with training items (and valid items for test) excluded, hyper-parameters (EASE lambda,
ItemKNN k) and early stopping chosen on valid Recall@20, test reported once at that point.
Everything runs on one thread (torch, BLAS and the peers) so times compare like with like.

Peers run on the same split in the same process, each scored by *our* evaluator for accuracy
(same exclusions, same metric code) and timed with *their own* evaluation routine too:
cornac (MostPop, EASE, BPR; LightGCN needs DGL), implicit (BPR), RecBole (EASE, LightGCN).
A peer that is not installed, or fails, is reported with the reason.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from rich.console import Console
from rich.table import Table

from fusionrec.config import SplitConfig
from fusionrec.data.schema import Dataset, IdMap, Interactions
from fusionrec.data.splits import Split, split_dataset
from fusionrec.eval.evaluator import EvalResult, Evaluator
from fusionrec.experiments.runner import grid_search
from fusionrec.models.registry import build_model

torch.set_num_threads(1)
console = Console(width=200)
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-1m"
KS = (10, 20)


# --------------------------------------------------------------------------- measurement
class PeakRSS:
    """Peak resident memory above the starting point while the block runs (sampled every 5 ms)."""

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())

    @property
    def delta_mb(self) -> float:
        return self.peak - self.start


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Row:
    library: str
    model: str
    result: EvalResult | None = None
    train_s: float = float("nan")
    epochs: str = "-"
    per_epoch_s: float = float("nan")
    eval_s: float = float("nan")  # our evaluator, test, all users
    own_eval_s: float = float("nan")  # the library's own evaluation routine
    own_recall20: float = float("nan")
    memory_mb: float = float("nan")
    note: str = ""
    params: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- data
def load_split() -> tuple[Split, str]:
    """ML-1M through fusionrec's MovieLens loader when present, else a direct CSV read."""
    try:
        from fusionrec.data.loaders import LoaderOptions, load_source

        dataset, _ = load_source("movielens", DATA, LoaderOptions(check_media=False))
        how = "fusionrec.data.loaders (movielens)"
    except Exception as exc:  # loader absent or failing: fall back, say so
        frame = pd.read_csv(DATA / "ratings_no_timestamp.csv")
        users = IdMap.from_values(frame["user_id"].to_numpy())
        items = IdMap.from_values(frame["movie_id"].to_numpy())
        interactions = Interactions(
            users.lookup(frame["user_id"].to_numpy()), items.lookup(frame["movie_id"].to_numpy()),
            frame["rating"].to_numpy(), n_users=len(users), n_items=len(items),
        )
        dataset = Dataset("ml-1m", pd.DataFrame({"item_id": items.ids}), interactions, users, items)
        how = f"own CSV reader ({type(exc).__name__}: {str(exc)[:60]})"
    split = split_dataset(dataset, SplitConfig(strategy="random", ratios=(0.8, 0.1, 0.1), seed=0, min_rating=3))
    return split, how


class PeerScores:
    """Adapts a peer's score function (its own user/item indices) to our index space."""

    def __init__(self, score: Callable[[np.ndarray], np.ndarray], user_of: np.ndarray, item_of: np.ndarray) -> None:
        self._score, self.user_of, self.item_of = score, user_of, item_of
        self.known = item_of >= 0

    def score(self, users: np.ndarray) -> np.ndarray:
        peer = np.asarray(self._score(self.user_of[users]), dtype=np.float32)
        out = np.full((len(users), len(self.item_of)), -1e9, dtype=np.float32)  # items the peer never saw
        out[:, self.known] = peer[:, self.item_of[self.known]]
        return out


# --------------------------------------------------------------------------- ours
def run_ours(split: Split, name: str, evaluator: Evaluator, grid: dict[str, list[Any]] | None, config: dict[str, Any]) -> Row:
    row = Row("fusionrec", name)
    with PeakRSS() as memory:
        if grid:
            tuned = grid_search(name, split, grid, metric="recall@20", k=KS, base_config=config)
            model, row.train_s = tuned.best_run.model, tuned.best_run.train_time_s
            row.params = config | tuned.best.params
            row.note = "grid " + ", ".join(f"{t.params}: {t.valid_value:.4f}" for t in tuned.trials)
        else:
            model = build_model(name, config)
            start = time.perf_counter()
            model.fit(split.train, valid=split.valid)
            row.train_s, row.params = time.perf_counter() - start, config
    row.memory_mb = memory.delta_mb
    history = getattr(model, "history_", None)
    if history is not None:
        row.epochs = f"{history.n_epochs} (best {history.best_epoch})"
        row.per_epoch_s = history.time_per_epoch_s
        row.note = f"incl. {history.eval_time_s:.1f}s validation; " + row.note
    row.result = evaluator.evaluate(model, split, on="test")
    row.eval_s = row.result.time_s
    row.own_eval_s, row.own_recall20 = row.eval_s, row.result.mean()["recall@20"]
    return row


# --------------------------------------------------------------------------- cornac
def run_cornac(split: Split, evaluator: Evaluator, lam: float, epochs: int) -> list[Row]:
    try:
        import cornac
        from cornac.data import Dataset as CornacDataset
        from cornac.eval_methods import ranking_eval
        from cornac.metrics import NDCG, Recall
    except Exception as exc:
        return [Row("cornac", "-", note=f"not importable: {exc}")]
    train_set = CornacDataset.from_uir(_uir(split.train), seed=0)
    build = {"global_uid_map": train_set.uid_map, "global_iid_map": train_set.iid_map, "fmt": "UIR"}
    valid_set = CornacDataset.build(_uir(split.valid), exclude_unknowns=True, seed=0, **build)
    test_set = CornacDataset.build(_uir(split.test), exclude_unknowns=True, seed=0, **build)
    user_of = np.array([train_set.uid_map.get(str(u), -1) for u in range(split.n_users)])
    item_of = np.array([train_set.iid_map.get(str(i), -1) for i in range(split.n_items)])
    specs: list[tuple[str, Callable[[], Any], Callable[[Any], Callable[[np.ndarray], np.ndarray]]]] = [
        ("mostpop", lambda: cornac.models.MostPop(), lambda m: lambda u: np.tile(m.item_pop, (len(u), 1))),
        ("ease", lambda: cornac.models.EASE(lamb=lam, posB=False, verbose=False, seed=0), lambda m: lambda u: np.asarray(m.U[u] @ m.B)),
        (
            "bpr",
            lambda: cornac.models.BPR(k=64, max_iter=epochs, learning_rate=0.01, lambda_reg=0.01, num_threads=1, seed=0),
            lambda m: lambda u: m.u_factors[u] @ m.i_factors.T + m.i_biases[None, :],
        ),
    ]
    rows = []
    for name, make, scorer in specs:
        row = Row("cornac", name, epochs=str(epochs) if name == "bpr" else "-")
        try:
            model = make()
            with PeakRSS() as memory:
                start = time.perf_counter()
                model.fit(train_set)
                row.train_s = time.perf_counter() - start
            row.memory_mb = memory.delta_mb
            if name == "bpr":
                row.per_epoch_s = row.train_s / epochs
            row.result = evaluator.evaluate(PeerScores(scorer(model), user_of, item_of), split, on="test")
            row.eval_s = row.result.time_s
            start = time.perf_counter()
            averages, _ = ranking_eval(model, [Recall(k=20), NDCG(k=20)], train_set, test_set, val_set=valid_set)
            row.own_eval_s, row.own_recall20 = time.perf_counter() - start, float(averages[0])
        except Exception as exc:
            row.note = f"failed: {type(exc).__name__}: {exc}"
        rows.append(row)
    try:
        import dgl  # noqa: F401  (cornac's LightGCN is built on DGL)

        rows.append(Row("cornac", "lightgcn", note="DGL imports, but not run here"))
    except Exception as exc:
        rows.append(Row("cornac", "lightgcn", note=f"not runnable: cornac's LightGCN needs DGL, which fails to import ({type(exc).__name__}: {str(exc)[:80]})"))
    return rows


def _uir(part: Interactions) -> list[tuple[str, str, float]]:
    return list(zip(part.user.astype(str).tolist(), part.item.astype(str).tolist(), [1.0] * len(part), strict=True))


# --------------------------------------------------------------------------- implicit
def run_implicit(split: Split, evaluator: Evaluator, epochs: int) -> list[Row]:
    try:
        from implicit.cpu.bpr import BayesianPersonalizedRanking
        from implicit.evaluation import ranking_metrics_at_k
    except Exception as exc:
        return [Row("implicit", "bpr", note=f"not importable: {exc}")]
    train = split.csr("train")
    row = Row("implicit", "bpr", epochs=str(epochs))
    model = BayesianPersonalizedRanking(
        factors=63, learning_rate=0.01, regularization=0.01, iterations=epochs, num_threads=1, random_state=0
    )  # 63 + a bias column = 64 numbers per vector
    with PeakRSS() as memory:
        start = time.perf_counter()
        model.fit(train, show_progress=False)
        row.train_s = time.perf_counter() - start
    row.memory_mb, row.per_epoch_s = memory.delta_mb, row.train_s / epochs
    identity_users, identity_items = np.arange(split.n_users), np.arange(split.n_items)
    scorer = PeerScores(lambda u: model.user_factors[u] @ model.item_factors.T, identity_users, identity_items)
    row.result = evaluator.evaluate(scorer, split, on="test")
    row.eval_s = row.result.time_s
    start = time.perf_counter()
    own = ranking_metrics_at_k(model, train, split.csr("test"), K=20, show_progress=False, num_threads=1)
    row.own_eval_s = time.perf_counter() - start
    row.note = f"own eval excludes train only (not valid); its ndcg@20 {own['ndcg']:.4f}"
    return [row]


# --------------------------------------------------------------------------- RecBole
def run_recbole(split: Split, evaluator: Evaluator, lam: float, lightgcn: dict[str, Any], workdir: Path) -> list[Row]:
    for alias, value in {"bool8": np.bool_, "float_": np.float64, "int_": np.int64, "unicode_": np.str_, "complex_": np.complex128}.items():
        if not hasattr(np, alias):  # RecBole 1.2 and its Ray import still use NumPy 1 aliases
            setattr(np, alias, value)
    if not hasattr(sp.dok_matrix, "_update"):  # RecBole's LightGCN uses a SciPy-private method removed in 1.15
        sp.dok_matrix._update = lambda self, data: self._dict.update(data)  # type: ignore[attr-defined]
    try:
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.model.general_recommender import EASE as RBEASE
        from recbole.model.general_recommender import LightGCN as RBLightGCN
        from recbole.utils import get_trainer
    except Exception as exc:
        return [Row("recbole", "-", note=f"not importable: {type(exc).__name__}: {str(exc)[:100]}")]
    data_dir = workdir / "recbole"
    (data_dir / "ml1m").mkdir(parents=True, exist_ok=True)
    for part in ("train", "valid", "test"):
        inter = split.part(part)
        pd.DataFrame({"user_id:token": inter.user, "item_id:token": inter.item}).to_csv(
            data_dir / "ml1m" / f"ml1m.{part}.inter", sep="\t", index=False
        )
    rows = []
    for name, model_cls, extra in (
        ("ease", RBEASE, {"reg_weight": lam, "epochs": 1}),
        ("lightgcn", RBLightGCN, {
            "embedding_size": 64, "n_layers": 3, "reg_weight": 1e-4, "epochs": lightgcn["epochs"],
            "train_batch_size": lightgcn["batch_size"], "learning_rate": lightgcn["learning_rate"],
            "eval_step": lightgcn["epochs"], "stopping_step": 1000, "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        }),
    ):
        row = Row("recbole", name, epochs=str(extra["epochs"]) if name == "lightgcn" else "-")
        try:
            config = Config(model=model_cls.__name__, dataset="ml1m", config_dict={
                "data_path": str(data_dir), "benchmark_filename": ["train", "valid", "test"],
                "load_col": {"inter": ["user_id", "item_id"]}, "device": "cpu", "use_gpu": False, "seed": 0,
                "metrics": ["Recall", "NDCG"], "topk": [20], "valid_metric": "Recall@20", "show_progress": False,
                "checkpoint_dir": str(workdir / "recbole_ckpt"), "eval_batch_size": 4096 * 16, "worker": 0,
                "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"},
            } | extra)
            dataset = create_dataset(config)
            train_data, valid_data, test_data = data_preparation(config, dataset)
            model = model_cls(config, train_data.dataset)
            trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
            with PeakRSS() as memory:
                start = time.perf_counter()
                trainer.fit(train_data, valid_data, saved=False, show_progress=False, verbose=False)
                row.train_s = time.perf_counter() - start
            row.memory_mb = memory.delta_mb
            if name == "lightgcn":
                row.per_epoch_s = row.train_s / extra["epochs"]
                row.note = "train time incl. one validation at the end"
            start = time.perf_counter()
            own = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
            row.own_eval_s, row.own_recall20 = time.perf_counter() - start, float(own["recall@20"])
            row.result = evaluator.evaluate(_recbole_scores(model, dataset, split), split, on="test")
            row.eval_s = row.result.time_s
        except Exception as exc:
            row.note = f"failed: {type(exc).__name__}: {str(exc)[:120]}"
            traceback.print_exc(file=sys.stderr)
        rows.append(row)
    return rows


def _recbole_scores(model: Any, dataset: Any, split: Split) -> PeerScores:
    def mapping(field_name: str, n: int) -> np.ndarray:
        out = np.full(n, -1, dtype=np.int64)
        tokens = dataset.field2id_token[field_name]
        out[np.asarray(tokens[1:], dtype=np.int64)] = np.arange(1, len(tokens))
        return out

    model.eval()
    if hasattr(model, "item_similarity"):  # EASE: history @ B
        history, weights = model.interaction_matrix.tocsr(), model.item_similarity

        def score(users: np.ndarray) -> np.ndarray:
            return np.asarray(history[users] @ weights)
    else:
        with torch.no_grad():
            user_e, item_e = model.forward()
        user_np, item_np = user_e.numpy(), item_e.numpy()

        def score(users: np.ndarray) -> np.ndarray:
            return user_np[users] @ item_np.T  # type: ignore[no-any-return]
    return PeerScores(score, mapping("user_id", split.n_users), mapping("item_id", split.n_items))


# --------------------------------------------------------------------------- report
def report(rows: list[Row], console: Console) -> None:
    table = Table(title="ML-1M (ratings >= 3), random 80/10/10 per user, full ranking, test; ± = 95 % t-interval half-width; 1 thread")
    for column in ("library", "model", "recall@10", "recall@20", "ndcg@10", "ndcg@20", "train s", "epochs",
                   "s/epoch", "eval s (ours)", "eval s (own)", "own R@20", "peak MB"):
        table.add_column(column, justify="right" if column not in ("library", "model") else "left")
    for row in rows:
        cells = []
        if row.result is not None:
            means, ci = row.result.mean(), row.result.confidence_intervals()
            for key in ("recall@10", "recall@20", "ndcg@10", "ndcg@20"):
                cells.append(f"{means[key]:.4f}±{(ci[key][1] - ci[key][0]) / 2:.4f}")
        else:
            cells += ["-"] * 4
        cells += [_f(row.train_s, 2), row.epochs, _f(row.per_epoch_s, 2), _f(row.eval_s, 3), _f(row.own_eval_s, 3),
                  _f(row.own_recall20, 4), _f(row.memory_mb, 0)]
        table.add_row(row.library, row.model, *cells)
    console.print(table)
    ours = {r.model: r for r in rows if r.library == "fusionrec" and r.result is not None}
    ratios = Table(title="ratios against fusionrec's same model (accuracy: ours / peer; time: peer / ours)")
    for column in ("peer", "model", "recall@20 ratio", "ndcg@20 ratio", "train time ratio", "own eval time ratio"):
        ratios.add_column(column, justify="right")
    for row in rows:
        mine = ours.get(row.model)
        if row.library == "fusionrec" or row.result is None or mine is None or mine.result is None:
            continue
        a, b = mine.result.mean(), row.result.mean()
        ratios.add_row(row.library, row.model, _ratio(a["recall@20"], b["recall@20"]), _ratio(a["ndcg@20"], b["ndcg@20"]),
                       _ratio(row.train_s, mine.train_s), _ratio(row.own_eval_s, mine.eval_s))
    console.print(ratios)
    for row in rows:
        if row.note or row.params:
            console.print(f"[bold]{row.library}/{row.model}[/] {row.params if row.params else ''} {row.note}")
    evaluated = next((r.result for r in rows if r.result is not None), None)
    if evaluated is not None:
        console.print(f"users evaluated on test: {evaluated.n_evaluated} ({evaluated.n_skipped} without test items skipped); items: {evaluated.n_items}")


def _f(value: float, digits: int) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs only (smoke run)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fusionrec-bench"))
    args = parser.parse_args()
    epochs_bpr = 5 if args.quick else 40
    lightgcn = {"epochs": 2 if args.quick else 10, "batch_size": 16384, "learning_rate": 0.05}

    start = time.perf_counter()
    split, how = load_split()
    console.print(f"ML-1M via {how}: {split.n_users} users, {split.n_items} items, "
                  f"train/valid/test {len(split.train)}/{len(split.valid)}/{len(split.test)} ({time.perf_counter() - start:.1f}s)")
    evaluator = Evaluator(ks=KS)
    rows: list[Row] = []
    rows.append(run_ours(split, "mostpop", evaluator, None, {}))
    rows.append(run_ours(split, "itemknn", evaluator, {"k": [50, 100, 200]}, {"shrink": 10.0}))
    rows.append(run_ours(split, "ease", evaluator, {"l2": [200.0, 500.0, 1000.0]}, {}))
    lam = float(rows[-1].params["l2"])
    rows.append(run_ours(split, "bpr", evaluator, None, {"factors": 64, "epochs": epochs_bpr, "batch_size": 8192,
                                                          "learning_rate": 5e-3, "reg": 5e-3, "patience": 3}))
    rows.append(run_ours(split, "lightgcn", evaluator, None, {"factors": 64, "n_layers": 3, "reg": 1e-4,
                                                               "patience": 100} | lightgcn))
    for row in rows:
        console.print(f"fusionrec/{row.model}: test recall@20 {row.own_recall20:.4f}, train {row.train_s:.1f}s, eval {row.eval_s:.3f}s")
    if not args.no_peers:
        rows += run_cornac(split, evaluator, lam, epochs_bpr)
        rows += run_implicit(split, evaluator, epochs_bpr)
        rows += run_recbole(split, evaluator, lam, lightgcn, args.workdir)
    report(rows, console)
    console.print(f"total wall time {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
