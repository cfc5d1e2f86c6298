"""MMRec's dataset folders, taken as they are, including the paper's train/valid/test split.

A folder holds ``<name>.inter`` (tab-separated, header ``userID itemID rating timestamp x_label``,
``x_label`` 0/1/2 = train/valid/test), ``image_feat.npy`` / ``text_feat.npy`` (row ``i`` = itemID
``i``) and optionally ``u_id_mapping.csv`` / ``i_id_mapping.csv`` (original ids -> dense ids).

The catalog is itemID ``0..n-1`` (``n`` = feature rows) in that order, so item index == itemID and
the feature matrices stay aligned with the item IdMap; users likewise when their ids are integers.
The feature files and the ``.inter`` file become dataset extras (copied by ``Dataset.save``), and
:func:`mmrec_split` rebuilds the ``x_label`` split from the extras' ``.inter`` file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.loaders.common import assemble_dataset, clean_interactions, read_delimited
from fusionrec.data.loaders.tabular import as_optional_text, read_side_table, require_columns
from fusionrec.data.schema import Dataset, Interactions, ItemColumns
from fusionrec.data.splits import PARTS, Split
from fusionrec.data.validate import ValidationReport
from fusionrec.errors import DataError

FEATURE_FILES = {"image_feat": "image_feat.npy", "text_feat": "text_feat.npy"}
INTER_EXTRA = "mmrec_inter"


def load_mmrec(source: Path, *, name: str | None = None) -> tuple[Dataset, ValidationReport]:
    """Load an MMRec folder; ``name`` picks ``<name>.inter`` when the folder has several."""
    folder = Path(source).expanduser().resolve()
    if not folder.is_dir():
        raise DataError("MMRec source must be a folder", file=str(folder))
    inter_path = find_inter_file(folder, name)
    report = ValidationReport(source=str(folder))
    raw, lines, _ = read_inter(inter_path, report)
    interactions = clean_interactions(raw, lines, report, file=str(inter_path))

    features = {key: folder / file for key, file in FEATURE_FILES.items() if (folder / file).is_file()}
    rows = {key: _npy_rows(path) for key, path in features.items()}
    check_feature_rows(features, rows, interactions, inter_path)
    items = _dense_table(interactions["item"], "item_id", next(iter(rows.values()), None))
    users = _dense_table(interactions["user"], "user_id", None)
    for table, mapping, label in ((items, "i_id_mapping.csv", "itemID"), (users, "u_id_mapping.csv", "userID")):
        if table is not None and (folder / mapping).is_file():
            table["source_id"] = _source_ids(folder / mapping, label, table.iloc[:, 0], report)
    if items is None:
        first = interactions.drop_duplicates("item")
        items = pd.DataFrame({"item_id": first["item"].to_numpy()})
        item_lines = first["line"].to_numpy()
        items_file = inter_path
    else:
        item_lines = np.arange(1, len(items) + 1)  # the catalog row = itemID + 1 (feature row)
        items_file = next(iter(features.values()), inter_path)

    dataset = assemble_dataset(
        name or inter_path.stem,
        items,
        interactions,
        report,
        item_columns=ItemColumns(),
        items_file=str(items_file),
        interactions_file=str(inter_path),
        users=users,
        check_media=False,
        source=str(folder),
        item_lines=item_lines,
    )
    dataset.extras = {key: str(path) for key, path in features.items()} | {INTER_EXTRA: str(inter_path)}
    return dataset, report


def mmrec_split(data: Dataset | str | Path) -> Split:
    """The paper's split (``x_label`` 0/1/2) of an MMRec dataset: a Dataset from :func:`load_mmrec`,
    a saved dataset directory of one, or a raw MMRec folder. Strategy ``"mmrec"``."""
    dataset_dir: Path | None = None
    if isinstance(data, Dataset):
        dataset = data
    else:
        path = Path(data).expanduser().resolve()
        if (path / "manifest.json").is_file():
            dataset, dataset_dir = Dataset.load(path), path
        else:
            dataset, _ = load_mmrec(path)
    if INTER_EXTRA not in dataset.extras:
        raise DataError(f"dataset {dataset.name!r} was not loaded from an MMRec folder (no {INTER_EXTRA!r} extra)")
    inter_path = Path(dataset.extras[INTER_EXTRA])
    report = ValidationReport(source=str(inter_path))
    raw, lines, labels = read_inter(inter_path, report, require_label=True)
    cleaned = clean_interactions(raw, lines, report, file=str(inter_path))
    part = labels[np.searchsorted(lines, cleaned["line"].to_numpy())]
    everything = Interactions(
        user=dataset.user_map.to_index(cleaned["user"].to_numpy(), what="user"),
        item=dataset.item_map.to_index(cleaned["item"].to_numpy(), what="item"),
        weight=cleaned["weight"].to_numpy(),
        timestamp=cleaned["timestamp"].to_numpy() if "timestamp" in cleaned else None,
        n_users=dataset.n_users,
        n_items=dataset.n_items,
    )
    parts = {name: everything.select(part == label) for label, name in enumerate(PARTS)}
    info: dict[str, object] = {
        "strategy": "mmrec",
        "files": [str(inter_path)],
        "dataset": dataset.name,
        "dataset_dir": str(dataset_dir) if dataset_dir else None,
    }
    return Split(**parts, user_map=dataset.user_map, item_map=dataset.item_map, info=info)


def find_inter_file(folder: Path, name: str | None) -> Path:
    """``<name>.inter`` if given and present, else the folder's only ``*.inter`` file."""
    if name and (folder / f"{name}.inter").is_file():
        return folder / f"{name}.inter"
    found = sorted(folder.glob("*.inter"))
    if len(found) != 1:
        raise DataError(f"expected one *.inter file in the folder, found {[p.name for p in found]}"
                        + ("; pick one with --name" if found else ""), file=str(folder))
    return found[0]


def read_inter(
    path: Path, report: ValidationReport, *, require_label: bool = False
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Raw interaction columns, their lines and ``x_label`` (int8, -1 without the column).

    Rows whose ``x_label`` is not 0, 1 or 2 are reported (``unparsable_number``) and left out, at
    load time and split time alike, so both see the same rows."""
    frame, lines = read_delimited(path, report, delimiter="\t", string_columns=["userID", "itemID"])
    require_columns(frame, ["userID", "itemID", *(["x_label"] if require_label else [])], path)
    raw = pd.DataFrame({"user": frame["userID"], "item": frame["itemID"]})
    for source, target in (("rating", "rating"), ("timestamp", "timestamp")):
        if source in frame:
            raw[target] = frame[source]
    if "x_label" not in frame:
        return raw, lines, np.full(len(raw), -1, dtype=np.int8)
    values = pd.to_numeric(frame["x_label"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isin(values, (0.0, 1.0, 2.0))
    report.add_rows("unparsable_number", lines[bad], frame["x_label"].to_numpy()[bad],
                    "x_label {value!r} is not 0 (train), 1 (valid) or 2 (test)", file=str(path), column="x_label")
    keep = ~bad
    return raw[keep].reset_index(drop=True), lines[keep], values[keep].astype(np.int8)


def check_feature_rows(
    features: dict[str, Path], rows: dict[str, int], interactions: pd.DataFrame, inter_path: Path
) -> None:
    """Row ``i`` of every feature matrix is itemID ``i``: the matrices must have the same number of
    rows, and every itemID must be an integer below it. Else a DataError naming the feature file,
    its row count and the other count (and the line of the first itemID that does not fit)."""
    if not features:
        return
    key, path = next(iter(features.items()))
    n_rows = rows[key]
    for other, other_path in features.items():
        if rows[other] != n_rows:
            raise DataError(f"feature matrices have different numbers of rows: {path.name} has {n_rows}, "
                            f"{other_path.name} has {rows[other]} (one row per item expected)", file=str(path))
    first = interactions.drop_duplicates("item")
    numbers = pd.to_numeric(first["item"], errors="coerce").to_numpy(dtype=np.float64)
    fits = (numbers >= 0) & (numbers < n_rows) & (numbers == np.round(numbers))
    if fits.all():
        return
    integral = numbers[~np.isnan(numbers) & (numbers == np.round(numbers)) & (numbers >= 0)]
    n_items = int(integral.max()) + 1 if len(integral) else 0
    at = int(np.flatnonzero(~fits)[0])
    raise DataError(f"has {n_rows} rows (row i = itemID i) but {inter_path.name} has {n_items} items: itemID "
                    f"{first['item'].iat[at]!r} at line {int(first['line'].to_numpy()[at])} has no feature row",
                    file=str(path))


def _npy_rows(path: Path) -> int:
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read as .npy: {exc}", file=str(path)) from exc
    if matrix.ndim != 2:
        raise DataError(f"expected a 2-D (n_items, dim) matrix, got shape {matrix.shape}", file=str(path))
    return int(matrix.shape[0])


def _dense_table(ids: pd.Series, column: str, n_rows: int | None) -> pd.DataFrame | None:
    """``0..n-1`` as id strings when the ids are non-negative integers (n = ``n_rows`` or max + 1),
    so index == id; None when they are not integers and no row count is given."""
    numbers = pd.to_numeric(ids, errors="coerce").to_numpy(dtype=np.float64)
    integral = len(numbers) > 0 and bool(np.all((numbers >= 0) & (numbers == np.round(numbers))))
    if n_rows is None:
        if not integral:
            return None
        n_rows = int(numbers.max()) + 1
    return pd.DataFrame({column: np.arange(n_rows).astype(str).astype(object)})


def _source_ids(path: Path, dense_column: str, dense_ids: pd.Series, report: ValidationReport) -> np.ndarray:
    """Original ids from an MMRec mapping file (``asin<TAB>itemID``), aligned to ``dense_ids``."""
    frame, _ = read_side_table(path, report, string_columns=None)
    require_columns(frame, [dense_column], path)
    others = [c for c in frame.columns if c != dense_column]
    if not others:
        raise DataError("mapping file has no original-id column", file=str(path))
    original = pd.Series(as_optional_text(frame[others[0]]).to_numpy(),
                         index=as_optional_text(frame[dense_column]).to_numpy())
    original = original[~original.index.duplicated(keep="first")]
    aligned = original.reindex(dense_ids.to_numpy()).to_numpy(dtype=object)
    aligned[pd.isna(aligned)] = None
    return aligned
