"""`fusionrec demo`: the whole pipeline end to end, on ML-1M when it is at hand, else on a built-in sample.

The demo is ``fusionrec run`` on a shipped experiment file (``experiments/examples/demo_ml1m.yaml``
or ``demo_sample.yaml``), with the options below applied to it: data -> validate -> split ->
text/poster/attribute features (cached by content) -> models trained and evaluated by full ranking.
Every stage is cached under ``--out``, so a second run reuses what did not change.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fusionrec.cli.app import app, console, friendly_errors

if TYPE_CHECKING:
    from fusionrec.experiments.config import ExperimentConfig

DEFAULT_SHARED = Path("..") / "shared" / "data"
DEFAULT_MODELS = "mostpop,itemknn,ease,bpr,lightgcn,ease_side,two_tower"


def demo_config(data_root: Path, use_sample: bool, seed: int, skip_features: bool, models: str) -> ExperimentConfig:
    """The shipped demo experiment with the demo's options applied (ML-1M unless absent or ``use_sample``)."""
    from fusionrec.experiments.config import ModelSpec, parse_experiment
    from fusionrec.models.registry import config_class, get_model_class

    ml1m = data_root / "ml-1m"
    real = not use_sample and ml1m.exists()
    name = "demo_ml1m.yaml" if real else "demo_sample.yaml"
    text = resources.files("fusionrec.experiments").joinpath("examples", name).read_text(encoding="utf-8")
    config = parse_experiment(text, name)
    if real:
        config.data.source = ml1m.resolve()
    config.split.seed = seed
    if skip_features:
        config.features = None
    shipped = {m.name: m for m in config.models}
    names = [m.strip() for m in models.split(",") if m.strip()]
    specs = [shipped.get(n) or ModelSpec(name=n, model=n) for n in names]
    if config.features is None:
        content = [s.name for s in specs if get_model_class(s.model).uses_features]
        if content:
            console.print(f"no features (--skip-features): not training the content models {', '.join(content)}")
        specs = [s for s in specs if s.name not in content]
    for spec in specs:  # the iterative models run on their defaults (sized to the data), seeded like the split
        if "seed" in config_class(spec.model).model_fields:
            spec.params = spec.params | {"seed": seed}
    config.models = specs
    return config


@app.command()
@friendly_errors
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes everything it produces.")] = Path("runs/demo"),
    data_root: Annotated[Path, typer.Option(help="Folder holding ml-1m/ (the shared real data).")] = DEFAULT_SHARED,
    sample: Annotated[bool, typer.Option("--sample", help="Use the built-in sample even if real data is present.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the split and of the models.")] = 0,
    skip_features: Annotated[bool, typer.Option("--skip-features", help="Do not run the pretrained encoders.")] = False,
    models: Annotated[str, typer.Option(help="Comma-separated models to train and evaluate (the content models need the features).")] = DEFAULT_MODELS,
) -> None:
    """Run the pipeline end to end: ingest -> validate -> split -> features -> train -> evaluate."""
    from fusionrec.cli.run import print_summary
    from fusionrec.experiments.pipeline import finish_run, run_experiment

    config = demo_config(data_root, sample, seed, skip_features, models)
    if not config.models:
        raise typer.BadParameter("no model left to train")
    result = run_experiment(config, out, console=console)
    print_summary(config, result)
    report = finish_run(result.run_dir)
    console.print(f"report: [bold]{report}[/]  (open it in a browser; `fusionrec report {result.run_dir}` rewrites it)")
