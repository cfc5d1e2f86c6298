"""CLI verbs of the data stage: `stats` and `split` (`ingest`/`validate` live in cli/ingest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args

import typer
from rich.table import Table

from fusionrec.cli.app import app, console, friendly_errors
from fusionrec.config import SplitConfig, SplitStrategy, load_yaml_config
from fusionrec.data.schema import Dataset
from fusionrec.data.splits import PARTS, Split, split_dataset, split_from_files
from fusionrec.data.stats import dataset_stats, stats_table


@app.command()
@friendly_errors
def stats(
    dataset_dir: Annotated[Path, typer.Argument(help="A dataset directory written by `fusionrec ingest`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the stats as JSON instead of a table.")] = False,
) -> None:
    """Print the stats summary of a dataset: sizes, density, activity quantiles, ratings, time, coverage."""
    summary = dataset_stats(Dataset.load(dataset_dir))
    if as_json:
        console.print_json(summary.model_dump_json())
    else:
        console.print(stats_table(summary))


def _parse_ratios(text: str) -> tuple[float, float, float]:
    parts = [float(p) for p in text.replace("/", ",").split(",")]
    if len(parts) != 3:
        raise typer.BadParameter("give three numbers, e.g. 0.8,0.1,0.1")
    return parts[0], parts[1], parts[2]


def split_table(split: Split) -> Table:
    table = Table(title=f"Split: {split.info.get('strategy')}")
    for column in ("part", "interactions", "users", "users not in train", "items not in train"):
        table.add_column(column, justify="right")
    summary = split.summary()
    table.add_row("train", f"{summary['train_interactions']:,}", f"{summary['train_users']:,}", "-", "-")
    for name in PARTS[1:]:
        table.add_row(
            name,
            f"{summary[f'{name}_interactions']:,}",
            f"{summary[f'{name}_users']:,}",
            f"{summary[f'{name}_users_not_in_train']:,}",
            f"{summary[f'{name}_items_not_in_train']:,}",
        )
    return table


@app.command()
@friendly_errors
def split(
    dataset_dir: Annotated[Path, typer.Argument(help="A dataset directory written by `fusionrec ingest`.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the split to.")],
    strategy: Annotated[
        str, typer.Option(help="random | temporal | leave_last | cold_item | cold_user")
    ] = "random",
    ratios: Annotated[str, typer.Option(help="train,valid,test shares (per user, of time, or of items/users).")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same split.")] = 0,
    min_rating: Annotated[
        float | None, typer.Option(help="Implicit threshold: keep interactions with rating >= this.")
    ] = None,
    k_core: Annotated[int, typer.Option(help="Keep only users and items with >= k interactions (iterated).")] = 0,
    leave_last_n: Annotated[int, typer.Option(help="leave_last: interactions per user for test (and for valid).")] = 1,
    config: Annotated[Path | None, typer.Option(help="YAML with the SplitConfig fields (overrides the options).")] = None,
    from_files: Annotated[
        tuple[Path, Path, Path] | None,
        typer.Option("--from-files", help="Adopt an existing split: TRAIN VALID TEST files of user,item[,rating[,time]] rows."),
    ] = None,
) -> None:
    """Split a dataset's interactions into train/valid/test (seeded, reproducible) and save it."""
    dataset = Dataset.load(dataset_dir)
    if from_files is not None:
        result = split_from_files(dataset, *from_files, dataset_dir=dataset_dir)
    else:
        if config is not None:
            cfg = load_yaml_config(config, SplitConfig)
        else:
            valid_strategies: tuple[str, ...] = get_args(SplitStrategy)
            if strategy not in valid_strategies:
                raise typer.BadParameter(f"strategy must be one of {', '.join(valid_strategies)}")
            cfg = SplitConfig(
                strategy=strategy,  # type: ignore[arg-type]
                ratios=_parse_ratios(ratios),
                seed=seed,
                min_rating=min_rating,
                k_core=k_core,
                leave_last_n=leave_last_n,
            )
        result = split_dataset(dataset, cfg, dataset_dir=dataset_dir)
    result.save(out)
    console.print(split_table(result))
    console.print(f"split saved to [bold]{out}[/]")
