"""Loaders: one module per source layout, each returning a Dataset and a ValidationReport.

``load_source(format, source, options)`` is the single entry point the CLI and Python users call;
the validation policy (see :mod:`fusionrec.data.validate`) is applied by the shared mechanics in
:mod:`fusionrec.data.loaders.common`, the same way for every format.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from fusionrec.config import load_yaml_config
from fusionrec.data.loaders.amazon import load_amazon
from fusionrec.data.loaders.common import _mask_empty_text, _mask_missing_files
from fusionrec.data.loaders.mmrec import load_mmrec, mmrec_split
from fusionrec.data.loaders.movielens import load_movielens
from fusionrec.data.loaders.tabular import TabularMapping, load_tabular
from fusionrec.data.schema import Dataset
from fusionrec.data.validate import ValidationReport
from fusionrec.errors import DataError

logger = logging.getLogger(__name__)

FORMATS = ("tabular", "movielens", "amazon", "mmrec")

__all__ = [
    "FORMATS",
    "LoaderOptions",
    "TabularMapping",
    "check_dataset",
    "load_options",
    "load_source",
    "mmrec_split",
]


class LoaderOptions(BaseModel):
    """How to load a source. In YAML, either these keys or a bare :class:`TabularMapping`."""

    model_config = ConfigDict(extra="forbid")

    strict: bool = Field(default=False, description="any error-severity issue raises DataError")
    check_media: bool = Field(default=True, description="check that image/audio files exist (missing -> masked)")
    name: str | None = Field(default=None, description="dataset name (default: from the source)")
    tabular: TabularMapping | None = Field(default=None, description="column mapping of the tabular format")
    meta: Path | None = Field(default=None, description="Amazon meta file (default: meta_<name> beside the reviews)")


def load_source(
    format: str, source: str | Path, options: LoaderOptions | None = None
) -> tuple[Dataset, ValidationReport]:
    """Load ``source`` in ``format`` (one of :data:`FORMATS`); strict mode raises on the first error."""
    options = options or LoaderOptions()
    path = Path(source).expanduser()
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if not path.exists():
        raise DataError("source not found", file=str(path))
    if options.meta is not None and format != "amazon":
        raise DataError(f"a meta file is only used by the amazon format, not {format!r}")
    if format == "tabular":
        if options.tabular is None:
            raise DataError("the tabular format needs a column mapping (--config mapping.yaml)", file=str(path))
        dataset, report = load_tabular(path, options.tabular, name=options.name, check_media=options.check_media)
    elif format == "movielens":
        dataset, report = load_movielens(path, name=options.name, check_media=options.check_media)
    elif format == "amazon":
        dataset, report = load_amazon(path, meta=options.meta, name=options.name)
    else:
        dataset, report = load_mmrec(path, name=options.name)
    logger.info("loaded %s: %d users, %d items, %d interactions; %d errors, %d warnings", dataset.name,
                dataset.n_users, dataset.n_items, len(dataset.interactions), report.n_errors, report.n_warnings)
    if options.strict:
        report.raise_if_errors()
    return dataset, report


def load_options(path: str | Path) -> LoaderOptions:
    """Options from YAML: :class:`LoaderOptions` keys, or the keys of a bare :class:`TabularMapping`."""
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text()) if file.is_file() else None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"invalid YAML: {exc}", file=str(file)) from exc
    if isinstance(raw, dict) and raw and not set(raw) <= set(LoaderOptions.model_fields):
        return LoaderOptions(tabular=load_yaml_config(file, TabularMapping))
    return load_yaml_config(file, LoaderOptions)


def check_dataset(dataset: Dataset, directory: str | Path | None = None, *, check_media: bool = True) -> ValidationReport:
    """Re-check a saved dataset: item text present, media files and extras files still there.

    Issues name ``items.parquet`` of ``directory`` and the 1-based row. The dataset is not changed."""
    root = Path(directory) if directory is not None else None
    items_file = str(root / "items.parquet") if root else f"{dataset.name}: items"
    report = ValidationReport(source=str(root) if root else dataset.name)
    report.rows_read = report.rows_kept = len(dataset.interactions)
    items = dataset.items.copy()
    rows = np.arange(1, len(items) + 1)
    _mask_empty_text(items, dataset.item_columns, rows, report, items_file)
    if check_media:
        for column in (dataset.item_columns.image, dataset.item_columns.audio):
            if column and column in items:
                _mask_missing_files(items, column, rows, report, items_file, dataset.media_root)
    for key, value in dataset.extras.items():
        if not Path(value).is_file():
            report.add("missing_file", f"extras file {key!r} does not exist", file=str(value))
    return report
