"""A self-contained HTML report of a run directory: `fusionrec report RUN_DIR`.

One file, nothing fetched: the CSS is inline, every plot a base64 PNG (matplotlib, Agg), every
poster a base64 JPEG thumbnail. Sections: the run (name, times, stages), the data (stats and the
validation report), the metrics table (95 % intervals, best per column in bold), plots (NDCG@20 and
Recall@20 per model, per-epoch valid curves, groups by user activity and item popularity, the
ablation and the diversity trade-off when the run has them) and a few sample users (their last
training items and a model's top-10 as poster cards, explained per modality when the model reads
content). What the run directory lacks is left out with a note. Data: :mod:`report_data`.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.experiments.report_data import BEST_METRIC, Card, ModelMetrics, RunReport, gather

TABLE_KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "precision@20", "hit_rate@20", "mrr@20", "map@20")
MODALITY_COLOURS = {"text": "#3b6fd8", "image": "#e07b28", "audio": "#2f9e6e", "attributes": "#8a4fd1"}
PALETTE = ("#0f766e", "#3b6fd8", "#e07b28", "#8a4fd1", "#2f9e6e", "#b42318", "#667085", "#c2410c")


def write_report(run_dir: Path, out: Path | None = None, users: int = 3, model: str | None = None) -> Path:
    """Write ``out`` (default ``run_dir/report.html``) and return its path."""
    run_dir = Path(run_dir)
    report = gather(run_dir, users=users, model=model)
    target = Path(out) if out is not None else run_dir / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(report), encoding="utf-8")
    return target


# ---------------------------------------------------------------------------------------- plots
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    _plt().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_metrics(models: Sequence[ModelMetrics], keys: Sequence[str] = ("ndcg@20", "recall@20")) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2))
    for ax, key in zip(np.atleast_1d(axes), keys, strict=True):
        means = np.array([m.mean.get(key, math.nan) for m in models])
        err = np.array([[mean - m.ci[key][0], m.ci[key][1] - mean] if key in m.ci else [0, 0]
                        for m, mean in zip(models, means, strict=True)]).T
        x = np.arange(len(models))
        ax.bar(x, np.nan_to_num(means), yerr=np.nan_to_num(err), capsize=4,
               color=[PALETTE[i % len(PALETTE)] for i in x])
        ax.set_xticks(x, [m.name for m in models], rotation=20)
        ax.set_title(f"test {key} (95 % interval)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def plot_curves(models: Sequence[ModelMetrics]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, m in enumerate(models):
        epochs = np.arange(1, len(m.curve) + 1)
        ax.plot(epochs, m.curve, marker="o", markersize=3, color=PALETTE[i % len(PALETTE)], label=m.name)
        if m.best_epoch is not None and 1 <= m.best_epoch <= len(m.curve):
            ax.scatter([m.best_epoch], [m.curve[m.best_epoch - 1]], s=60, facecolors="none",
                       edgecolors=PALETTE[i % len(PALETTE)])
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"valid {models[0].curve_metric}")
    ax.set_title("per-epoch validation (circle: best epoch)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _group_key(models: Sequence[ModelMetrics], attr: str) -> str | None:
    for key in (BEST_METRIC, "recall@20", "ndcg@10", "recall@10"):
        if any(key in row for m in models for row in getattr(m, attr).values()):
            return key
    return None


def plot_groups(models: Sequence[ModelMetrics]) -> str | None:
    panels = [(attr, title, key) for attr, title in (("by_user_activity", "by user activity"),
                                                     ("by_item_popularity", "by item popularity"))
              if (key := _group_key(models, attr)) is not None]
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.3))
    for ax, (attr, title, key) in zip(np.atleast_1d(axes), panels, strict=True):
        groups = list(dict.fromkeys(g for m in models for g in getattr(m, attr)))
        width = 0.8 / max(len(models), 1)
        x = np.arange(len(groups))
        for i, m in enumerate(models):
            values = [getattr(m, attr).get(g, {}).get(key, math.nan) for g in groups]
            ax.bar(x + (i - (len(models) - 1) / 2) * width, np.nan_to_num(values), width,
                   label=m.name, color=PALETTE[i % len(PALETTE)])
        ax.set_xticks(x, groups, fontsize=8)
        ax.set_title(f"test {key} {title}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in np.atleast_1d(axes):  # room above the bars for the legend
        ax.set_ylim(0, ax.get_ylim()[1] * 1.18)
    np.atleast_1d(axes)[0].legend(fontsize=8, ncol=len(models), loc="upper left")
    fig.tight_layout()
    return _png(fig)


def _column(rows: Sequence[dict[str, str]], *names: str) -> str | None:
    return next((n for n in names if rows and n in rows[0]), None)


def plot_rerank(rows: Sequence[dict[str, str]]) -> str | None:
    quality = _column(rows, "ndcg@20", "ndcg", "recall@20", "recall")
    spread = _column(rows, "ild_genres", "ild", "ild@20", "ild_fused", "coverage")
    strength = _column(rows, "diversity", "lambda")
    if quality is None or spread is None or "method" not in rows[0]:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for i, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
        part = [r for r in rows if r["method"] == method]
        xs, ys = [float(r[spread]) for r in part], [float(r[quality]) for r in part]
        ax.plot(xs, ys, marker="o", color=PALETTE[i % len(PALETTE)], label=method)
        for r, xv, yv in zip(part, xs, ys, strict=True):
            if strength is not None:
                ax.annotate(f"{float(r[strength]):g}", (xv, yv), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(spread)
    ax.set_ylabel(quality)
    ax.set_title("diversity trade-off (labels: λ)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------------------------------- html
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _f(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _img(uri: str, alt: str) -> str:
    return f'<figure><img src="{uri}" alt="{_e(alt)}"></figure>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _run_section(report: RunReport) -> str:
    run = report.run
    stages = run.get("stages") or {}
    rows = [[_e(s), _e(v.get("key", "")), "cached" if v.get("cached") else "ran", _f(v.get("seconds"), 2)]
            for s, v in stages.items() if isinstance(v, dict)]
    meta = f"started {_e(run.get('started', '?'))} · finished {_e(run.get('finished', '?'))}"
    if run.get("data_source"):
        meta += f" · data: {_e(run['data_source'])}"
    out = f'<section><h2>Run</h2><p class="muted">{meta}</p>'
    out += _table(["stage", "key", "status", "seconds"], rows, "small") if rows else _note(report.notes.get("run", "no stages recorded"))
    return out + "</section>"


def _data_section(report: RunReport) -> str:
    out = "<section><h2>Data</h2>"
    stats = report.stats
    if stats:
        rows = []
        for key, value in stats.items():
            if isinstance(value, dict):
                text = ", ".join(f"{_e(k)}: {_f(v, 3) if isinstance(v, float) else _e(v)}" for k, v in value.items())
            elif isinstance(value, list | tuple):
                text = " – ".join(_e(v) for v in value)
            else:
                text = _f(value, 5) if isinstance(value, float) else _e(f"{value:,}" if isinstance(value, int) else value)
            rows.append([f"<b>{_e(key)}</b>", text])
        out += _table(["statistic", "value"], rows, "small stats")
    else:
        out += _note(f"data statistics left out: {report.notes.get('data', 'none')}")
    out += "<h3>Validation</h3>"
    validation = report.validation
    if validation:
        counts = validation.get("counts") or {}
        examples = validation.get("examples") or validation.get("rows") or []
        out += (f'<p>{_e(validation.get("errors", 0))} error(s), {_e(validation.get("warnings", 0))} warning(s); '
                f'{_e(validation.get("rows_read", "?"))} rows read, {_e(validation.get("rows_kept", "?"))} kept.</p>')
        if counts:
            out += _table(["kind", "count"], [[_e(k), _e(v)] for k, v in counts.items()], "small")
        if examples:
            rows = [[_e(x.get("severity", "")), _e(x.get("kind", "")), _e(x.get("file") or ""),
                     _e(x.get("row", x.get("line", "")) or ""), _e(x.get("column") or ""),
                     _e(x.get("message", x.get("reason", "")))] for x in examples[:10]]
            out += _table(["severity", "kind", "file", "line", "column", "reason"], rows, "small")
        if not counts and not examples:
            out += '<p class="ok">no problems found</p>'
    else:
        out += _note(f"validation report left out: {report.notes.get('validation', 'none')}")
    return out + "</section>"


def _metrics_section(report: RunReport) -> str:
    models = report.models
    keys = [k for k in TABLE_KEYS if any(k in m.mean for m in models)]
    best = {k: max((m.mean.get(k, -math.inf) for m in models), default=None) for k in keys}
    rows = []
    for m in models:
        cells = [f"<b>{_e(m.name)}</b>" + (" ★" if m.name == report.best else "")]
        for k in keys:
            value = m.mean.get(k, math.nan)
            text = _f(value)
            if k in m.ci and not any(math.isnan(v) for v in m.ci[k]):
                text += f'<br><small>[{m.ci[k][0]:.3f}, {m.ci[k][1]:.3f}]</small>'
            cells.append(f"<b>{text}</b>" if value == best[k] else text)
        epochs = f"{m.n_epochs} (best {m.best_epoch})" if m.n_epochs else "–"
        cells += [_f(m.train_s, 1), _e(epochs), _f(m.n_users)]
        rows.append(cells)
    table = _table(["model", *keys, "train s", "epochs", "users"], rows, "metrics")
    return (f'<section><h2>Metrics</h2><p class="muted">test set, full ranking; mean and 95 % interval; '
            f'best per column in bold; ★ best by {BEST_METRIC}</p>{table}</section>')


def _plots_section(report: RunReport) -> str:
    models = report.models
    out = "<section><h2>Plots</h2>"
    out += _img(plot_metrics(models), "NDCG@20 and Recall@20 per model")
    curved = [m for m in models if m.curve]
    out += _img(plot_curves(curved), "per-epoch validation curves") if curved else _note(
        "no per-epoch curves: no iterative model recorded history.json")
    groups = plot_groups(models)
    out += _img(groups, "metrics by user activity and item popularity") if groups else _note("no group breakdowns in metrics.json")
    out += "<h3>Ablation</h3>"
    if report.ablation_png is not None:
        out += _img("data:image/png;base64," + base64.b64encode(report.ablation_png).decode("ascii"), "modality ablation")
    if report.ablation_rows:
        rows = report.ablation_rows
        metric = next((c[: -len("_delta")] for c in rows[0] if c.endswith("_delta") and "@" in c), None)
        header = ["variant", "status", "modalities"] + ([metric, "Δ vs all"] if metric else [])
        body = [[_e(r.get("variant", "")), _e(r.get("status", "")), _e(r.get("modalities", ""))]
                + ([_f(_float(r.get(metric))), _f(_float(r.get(f"{metric}_delta")))] if metric else []) for r in rows]
        out += _table(header, body, "small")
    if report.ablation_png is None and not report.ablation_rows:
        out += _note(report.notes.get("ablation", "no ablation"))
    out += "<h3>Diversity trade-off</h3>"
    rerank = plot_rerank(report.rerank_rows) if report.rerank_rows else None
    out += _img(rerank, "diversity trade-off") if rerank else _note(report.notes.get("rerank", "rerank.csv has unknown columns"))
    return out + "</section>"


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _card(card: Card, small: bool = False) -> str:
    hue = sum(card.title.encode()) % 360
    poster = (f'<img src="{card.poster}" alt="{_e(card.title)}">' if card.poster
              else f'<div class="placeholder" style="--hue:{hue}"><span>{_e(card.title)}</span></div>')
    rank = f'<span class="rank">#{card.rank}</span>' if card.rank else ""
    hit = '<span class="hit" title="a held-out test item of this user">✓ test</span>' if card.hit else ""
    body = f'<p class="title">{_e(card.title)}</p>'
    if not small:
        body += f'<div class="meta"><span class="score">{_f(card.score, 3)}</span><span class="genres">{_e(card.genres)}</span>{hit}</div>'
        if card.headline:
            body += f'<p class="headline">{_e(card.headline)}</p>'
        if card.contributions:
            total = sum(abs(v) for v in card.contributions.values()) or 1.0
            bars = []
            for name, value in sorted(card.contributions.items(), key=lambda kv: -kv[1]):
                share = abs(value) / total
                colour = MODALITY_COLOURS.get(name, "#667085")
                cls = " ".join(c for c in ("driver" if name == card.driver else "", "neg" if value < 0 else "") if c)
                bars.append(f'<li class="{cls}"><span class="bar-label">{_e(name)}</span><span class="bar-track">'
                            f'<span class="bar-fill" style="width:{100 * share:.0f}%;background:{colour}"></span>'
                            f'</span><span class="bar-pct">{value:+.2f}</span></li>')
            body += f'<ul class="bars">{"".join(bars)}</ul>'
    kind = "card-history" if small else "card-rec"
    return f'<div class="card {kind}"><div class="poster">{poster}{rank}</div><div class="card-body">{body}</div></div>'


def _users_section(report: RunReport) -> str:
    out = f'<section><h2>Sample users <small>top-{10} of {_e(report.users_model or "?")}</small></h2>'
    if not report.users:
        return out + _note(report.notes.get("users", "no sample users asked for")) + "</section>"
    for user in report.users:
        out += (f'<div class="user" data-testid="user"><h3>user {_e(user.user_id)} '
                f'<small>{user.n_history} training items; the last {len(user.history)}, newest first</small></h3>')
        out += '<div class="strip">' + "".join(_card(c, small=True) for c in user.history) + "</div>"
        if user.explained:
            out += _note(user.explained)
        out += '<div class="grid">' + "".join(_card(c) for c in user.top) + "</div></div>"
    return out + "</section>"


def render(report: RunReport) -> str:
    """The report as one HTML document."""
    title = f"fusionrec report: {report.name}"
    parts = [_run_section(report), _data_section(report), _metrics_section(report),
             _plots_section(report), _users_section(report)]
    when = report.run.get("finished") or report.run.get("started") or ""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
            f"<style>{CSS}</style></head><body>"
            f'<header class="topbar"><div class="brand"><span class="logo">◆</span>'
            f'<span class="brand-name">fusionrec report</span><span class="health">{_e(report.name)} · {_e(when)}</span>'
            f'</div><span class="health">{_e(report.run_dir.name)}</span></header>'
            f'<main>{"".join(parts)}</main></body></html>\n')


CSS = """
:root{--bg:#f4f5f7;--panel:#fff;--ink:#1c2330;--muted:#667085;--line:#e3e6eb;--accent:#0f766e;--bar:#1c2330;
--radius:10px;--shadow:0 1px 2px rgba(16,24,40,.06),0 1px 3px rgba(16,24,40,.1);
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",sans-serif;font-size:15px;color:var(--ink);background:var(--bg)}
*{box-sizing:border-box}body{margin:0}
.topbar{display:flex;align-items:baseline;justify-content:space-between;padding:.8rem 1.5rem;background:var(--bar);color:#f2f4f7}
.brand{display:flex;align-items:baseline;gap:.6rem}.logo{color:#5eead4;font-size:1.2rem}
.brand-name{font-weight:700;font-size:1.25rem}.health{font-size:.85rem;color:#b7c0cc}
main{padding:.4rem 1.5rem 2rem;max-width:1500px;margin:0 auto}
section{background:var(--panel);border:1px solid var(--line);border-radius:var(--radius);box-shadow:var(--shadow);padding:.9rem 1.1rem;margin-top:1rem}
h2{font-size:1.1rem;margin:0 0 .5rem}h3{font-size:.95rem;margin:1rem 0 .4rem}h2 small,h3 small{font-weight:400;color:var(--muted);font-size:.8rem;margin-left:.4rem}
.muted,.note{color:var(--muted);font-size:.85rem}.note{font-style:italic}.ok{color:#067647}
table{border-collapse:collapse;font-size:.85rem;margin:.3rem 0}th,td{border-bottom:1px solid var(--line);padding:.3rem .6rem;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}th{color:var(--muted);font-weight:600}
table.metrics td small{color:var(--muted);font-size:.72rem}table.stats td:last-child{text-align:left}
figure{margin:.5rem 0}figure img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:6px}
.user{border-top:1px solid var(--line);padding-top:.3rem;margin-top:.6rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(290px,1fr));gap:.9rem}
.strip{display:flex;gap:.7rem;overflow-x:auto;padding:.15rem .1rem .6rem}.strip .card{flex:0 0 100px}
.card{display:flex;background:var(--panel);border-radius:var(--radius);box-shadow:var(--shadow);overflow:hidden;border:1px solid var(--line)}
.card-history{flex-direction:column}.card-rec{flex-direction:row}
.poster{position:relative;background:#d0d5dd;overflow:hidden}.card-rec .poster{flex:0 0 104px;aspect-ratio:2/3;align-self:flex-start}
.card-history .poster{aspect-ratio:2/3;max-height:150px}.poster img{width:100%;height:100%;object-fit:cover;display:block}
.placeholder{width:100%;height:100%;display:flex;align-items:center;justify-content:center;padding:.5rem;color:#fff;text-align:center;font-weight:650;font-size:.8rem;
background:linear-gradient(140deg,hsl(var(--hue),45%,38%),hsl(calc(var(--hue) + 40),50%,24%))}
.rank{position:absolute;top:.4rem;left:.4rem;background:rgba(16,24,40,.78);color:#fff;font-size:.72rem;font-weight:700;padding:.12rem .42rem;border-radius:5px}
.card-body{display:flex;flex-direction:column;gap:.35rem;padding:.55rem .65rem .6rem;flex:1;min-width:0}
.card-history .card-body{padding:.35rem .45rem}.card-history .title{font-size:.74rem}
.title{margin:0;font-size:.92rem;font-weight:650;line-height:1.25}
.meta{display:flex;gap:.5rem;align-items:baseline;font-size:.74rem;color:var(--muted)}
.score{font-variant-numeric:tabular-nums;font-weight:650;color:var(--accent)}
.genres{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}.hit{color:#067647;font-weight:700;white-space:nowrap}
.headline{margin:0;font-size:.74rem;font-weight:550;color:#344054}.headline::before{content:"why: ";color:var(--muted);font-weight:400}
.bars{list-style:none;margin:0;padding:0;display:flex;flex-direction:column;gap:.18rem;font-size:.72rem}
.bars li{display:grid;grid-template-columns:4.6rem 1fr 2.6rem;align-items:center;gap:.35rem}
.bars li.driver .bar-label{font-weight:700;color:var(--ink)}.bar-label{color:var(--muted);overflow:hidden;text-overflow:ellipsis}
.bar-track{height:6px;background:#eef0f3;border-radius:3px;overflow:hidden}.bar-fill{display:block;height:100%;border-radius:3px}
.bars li.neg .bar-fill{background:repeating-linear-gradient(45deg,#f04438 0 3px,#fda29b 3px 6px)!important}
.bar-pct{text-align:right;font-variant-numeric:tabular-nums;color:var(--muted)}
"""
