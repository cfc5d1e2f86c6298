"""Shared mechanics of every loader: vectorised cleaning of interaction rows and assembly into a
Dataset (decoding and delimited reading with line numbers are in :mod:`.reading`, re-exported here).

Every loader reads its layout into plain pandas frames (string ids, raw rating/time values and the
source line of each row) and hands them to :func:`clean_interactions` and :func:`assemble_dataset`,
so the validation policy documented in :mod:`fusionrec.data.validate` is applied once, the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.loaders.reading import read_delimited, read_utf8, require_file
from fusionrec.data.schema import Dataset, IdMap, Interactions, ItemColumns, UserColumns
from fusionrec.data.validate import ValidationReport
from fusionrec.errors import DataError

EPOCH_RANGE = (-62_135_596_800, 253_402_300_799)  # epoch seconds of 0001-01-01 .. 9999-12-31 23:59:59 UTC
__all__ = ["EPOCH_RANGE", "assemble_dataset", "clean_interactions", "id_codes", "read_delimited", "read_utf8", "require_file",
           "resolve"]


def _as_id_strings(column: pd.Series) -> pd.Series:
    """Ids as stripped strings; NaN/None/'' become NA. Integral floats lose their '.0'."""
    if pd.api.types.is_float_dtype(column):
        values = column.to_numpy()
        if np.all(np.isnan(values) | (values == np.round(values))):
            column = column.astype("Int64")
    text = column.astype("string").str.strip()
    return text.mask(text == "")


def id_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Ids as integer codes into distinct id strings: ``(codes, ids)`` with ``ids[codes]`` equal to
    :func:`_as_id_strings` (code -1 where that is NA), ``ids`` an object array of distinct str.

    Only the distinct values are converted to strings, so a column of 20M integer ids or a
    dictionary-encoded (Categorical) one costs one hash pass (or none), not 20M ``str`` objects.
    Object columns (mixed Python values, where hashing would merge e.g. ``1`` and ``1.0``) are
    converted row by row first, as before."""
    if column.dtype == object:
        column = _as_id_strings(column)
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    text = _as_id_strings(pd.Series(uniques))
    # Distinct raw values can strip to the same id (" 7" and "7"), and '' is missing: factorize again.
    remap, ids = pd.factorize(text, use_na_sentinel=True)
    remap = np.append(remap, -1).astype(np.int64)  # codes of -1 stay -1
    return remap[codes], np.asarray(ids, dtype=object)


def _row_keys(columns: list[np.ndarray]) -> np.ndarray:
    """One int64 per row, equal exactly where all ``columns`` (non-negative integers) are equal."""
    limit = np.iinfo(np.int64).max
    key = columns[0].astype(np.int64)
    for column in columns[1:]:
        column = column.astype(np.int64)
        width = int(column.max()) + 1 if len(column) else 1
        if int(key.max(initial=0)) >= limit // width:  # make the product fit: dense codes first
            key = pd.factorize(key)[0].astype(np.int64)
            if int(key.max(initial=0)) >= limit // width:
                column = pd.factorize(column)[0].astype(np.int64)
                width = int(column.max()) + 1
        key = key * width + column
    return key


def _duplicated(keys: np.ndarray) -> np.ndarray:
    """``pd.Series(keys).duplicated(keep="first")`` for int64 keys, fast when repeats are rare: a sort
    finds the repeated values, and only the rows holding one go through a hash table."""
    if len(keys) < 2:
        return np.zeros(len(keys), dtype=bool)
    ordered = np.sort(keys)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    duplicated = np.zeros(len(keys), dtype=bool)
    if len(repeated):
        candidates = np.flatnonzero(np.isin(keys, np.unique(repeated)))
        duplicated[candidates] = pd.Series(keys[candidates]).duplicated(keep="first").to_numpy()
    return duplicated


def clean_interactions(
    raw: pd.DataFrame,
    lines: np.ndarray,
    report: ValidationReport,
    *,
    file: str,
    rating_range: tuple[float, float] | None = None,
    time_format: str | None = None,
    categorical_ids: bool = False,
    integer_ids: bool = False,
) -> pd.DataFrame:
    """Validate raw interaction rows (vectorised) and return the kept ones.

    ``raw`` has columns ``user``, ``item`` and optionally ``rating`` and ``timestamp`` (numbers
    or strings). Returns columns ``user``/``item`` (str; with ``categorical_ids`` a Categorical of
    str, which :func:`assemble_dataset` maps to indices without hashing every row), ``weight``
    (float32), ``timestamp`` (int64 seconds, if given) and ``line``. With ``integer_ids`` an id that
    is not an integer is an ``unparsable_number`` (checked once per distinct id). A rating must be
    finite; epoch times must lie in :data:`EPOCH_RANGE` (``time_out_of_range``).
    """
    codes: dict[str, np.ndarray] = {}
    ids: dict[str, np.ndarray] = {}
    keep = np.ones(len(raw), dtype=bool)
    for column in ("user", "item"):
        codes[column], ids[column] = id_codes(raw[column])
        missing = codes[column] < 0
        report.add_rows("missing_value", lines[missing], None, f"no {column} id", file=file, column=column)
        keep &= ~missing
        if integer_ids:
            bad = np.append(_not_integers(ids[column]), False)[codes[column]] & keep
            report.add_rows("unparsable_number", lines[bad], ids[column][codes[column][bad]],
                            f"{column} id {{value!r}} is not an integer", file=file, column=column)
            keep &= ~bad
    out = pd.DataFrame({"line": lines})

    if "rating" in raw:
        values = pd.to_numeric(raw["rating"], errors="coerce").to_numpy(dtype=np.float64)
        given = raw["rating"].notna().to_numpy()
        bad = np.isnan(values) & given & keep
        report.add_rows("unparsable_number", lines[bad], raw["rating"].to_numpy()[bad],
                        "rating {value!r} is not a number", file=file, column="rating")
        missing = ~given & keep
        report.add_rows("missing_value", lines[missing], None, "no rating", file=file, column="rating")
        keep &= ~np.isnan(values)
        infinite = np.isinf(values) & keep
        report.add_rows("unparsable_number", lines[infinite], values[infinite],
                        "rating {value:g} is not a finite number", file=file, column="rating")
        keep &= ~infinite
        if rating_range is not None:
            lo, hi = rating_range
            out_of_range = keep & ((values < lo) | (values > hi))
            report.add_rows("rating_out_of_range", lines[out_of_range], values[out_of_range],
                            f"rating {{value:g}} outside [{lo:g}, {hi:g}]", file=file, column="rating")
            keep &= ~out_of_range
        out["weight"] = values.astype(np.float32)
    else:
        out["weight"] = np.float32(1.0)

    if "timestamp" in raw:
        seconds, bad, out_of_range = _parse_time(raw["timestamp"], time_format)
        bad &= keep
        report.add_rows("unparsable_number", lines[bad], raw["timestamp"].to_numpy()[bad],
                        "time {value!r} is not a number or date", file=file, column="timestamp")
        keep &= ~bad
        out_of_range &= keep
        shown = raw["timestamp"].to_numpy()[out_of_range][: report.max_examples_per_kind]
        report.add_rows("time_out_of_range", lines[out_of_range], [_plain_number(v) for v in shown],
                        "time {value} is not epoch seconds within years 1..9999 (milliseconds?)",
                        file=file, column="timestamp")
        keep &= ~out_of_range
        out["timestamp"] = seconds

    has_time = "timestamp" in out
    user, item = codes["user"][keep], codes["item"][keep]
    out = out[keep]
    key = ["user", "item"] + (["timestamp"] if has_time else [])
    parts = [user, item]
    if has_time:
        seconds = out["timestamp"].to_numpy()
        low, high = (int(seconds.min()), int(seconds.max())) if len(seconds) else (0, 0)
        fits = high - low < np.iinfo(np.int64).max
        parts.append(seconds - np.int64(low) if fits else pd.factorize(seconds)[0])
    duplicated = _duplicated(_row_keys(parts))
    dup_at = np.flatnonzero(duplicated)[: report.max_examples_per_kind]  # only examples are formatted
    report.add_rows("duplicate_interaction", out["line"].to_numpy()[duplicated],
                    [[ids["user"][user[i]], ids["item"][item[i]]] for i in dup_at.tolist()],
                    "repeats (user, item" + (", time" if has_time else "") + ") {value}",
                    file=file, column=",".join(key))
    unique = ~duplicated
    out = out[unique].reset_index(drop=True)
    for position, (column, kept) in enumerate((("user", user[unique]), ("item", item[unique]))):
        id_values: pd.Series
        if categorical_ids:
            id_values = pd.Series(pd.Categorical.from_codes(kept, categories=pd.Index(ids[column], dtype=object)))
        else:  # object arrays of str (shared objects): IdMap lookups then skip an Arrow conversion each
            id_values = pd.Series(ids[column][kept], dtype=object)
        out.insert(position, column, id_values)
    report.rows_kept += len(out)
    return out


def _plain_number(value: object) -> object:
    """A float for messages: integral ones below 1e16 as an int (``1e14`` -> ``100000000000000``),
    others as ``%g`` (``-1e+300``)."""
    if isinstance(value, float | np.floating):
        number = float(value)
        return int(number) if abs(number) < 1e16 and number == round(number) else f"{number:g}"
    return value


def _not_integers(ids: np.ndarray) -> np.ndarray:
    """Mask of the (distinct, str) ids that are not written as an integer."""
    if len(ids) == 0:
        return np.zeros(0, dtype=bool)
    return ~pd.Series(ids, dtype=object).str.fullmatch(r"[+-]?\d+").to_numpy(dtype=bool)


def _parse_time(column: pd.Series, time_format: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seconds since the epoch (int64), a mask of unparsable values (missing counts as bad) and one
    of epoch numbers outside :data:`EPOCH_RANGE` (inf included); both masked rows hold 0."""
    numbers = pd.to_numeric(column, errors="coerce")
    # Epoch numbers when most present values are numbers (the rest are then bad), else dates.
    if time_format is None and 2 * int(numbers.notna().sum()) >= int(column.notna().sum()):
        bad = numbers.isna().to_numpy().copy()
        as_float = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        out_of_range = ~bad & ~((as_float >= EPOCH_RANGE[0]) & (as_float <= EPOCH_RANGE[1]))
        drop = bad | out_of_range
        exact = numbers.to_numpy() if numbers.dtype.kind == "i" else as_float  # int64 as is: no rounding
        return np.where(drop, 0, exact).astype(np.int64), bad, out_of_range
    dates = pd.to_datetime(column, format=time_format, errors="coerce", utc=True)
    bad = dates.isna().to_numpy().copy()
    # pandas 3 infers the resolution (s/ms/us/ns): convert to seconds explicitly, not via int64 // 1e9.
    seconds = dates.dt.tz_convert(None).to_numpy().astype("datetime64[s]").astype(np.int64)
    return np.where(bad, 0, seconds).astype(np.int64), bad, np.zeros(len(bad), dtype=bool)


def assemble_dataset(
    name: str,
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    report: ValidationReport,
    *,
    item_columns: ItemColumns,
    items_file: str,
    interactions_file: str,
    users: pd.DataFrame | None = None,
    user_columns: UserColumns | None = None,
    rating_scale: tuple[float, float] | None = None,
    media_root: str | None = None,
    check_media: bool = True,
    source: str = "",
    item_lines: np.ndarray | None = None,
) -> Dataset:
    """Map ids to indices and check the catalog: duplicates, unknown items, missing files, empty text.

    ``items`` has ``item_id`` plus modality columns; ``interactions`` comes from
    :func:`clean_interactions`. Unknown items are appended to the catalog with no content. No
    interaction left is a DataError naming ``interactions_file`` (an empty dataset is never saved).
    """
    if len(interactions) == 0:
        errors = [issue for issue in report.issues() if issue.severity == "error"]
        if report.rows_read == 0 or not errors:
            raise DataError("no interactions in the file (no data rows)", file=interactions_file)
        raise DataError(f"no interactions kept: all {report.rows_read:,} rows were rejected; first: {errors[0]}",
                        file=interactions_file)
    items = items.copy()
    items["item_id"] = _as_id_strings(items["item_id"])
    item_lines = np.arange(2, len(items) + 2) if item_lines is None else np.asarray(item_lines)
    valid_id = items["item_id"].notna().to_numpy()
    report.add_rows("missing_value", item_lines[~valid_id], None, "no item id", file=items_file, column="item_id")
    items, item_lines = items[valid_id], item_lines[valid_id]
    duplicated = items["item_id"].duplicated(keep="first").to_numpy()
    report.add_rows("duplicate_item", item_lines[duplicated], items["item_id"].to_numpy()[duplicated],
                    "item id {value!r} already in the catalog", file=items_file, column="item_id")
    items, item_lines = items[~duplicated].reset_index(drop=True), item_lines[~duplicated]

    item_map = IdMap(items["item_id"].to_numpy())
    item_index = _lookup(item_map, interactions["item"])
    unknown = item_index < 0
    if unknown.any():
        first_rows = interactions[unknown].drop_duplicates("item")
        report.add_rows("unknown_item", first_rows["line"].to_numpy(), first_rows["item"].to_numpy(),
                        "item {value!r} is not in the catalog", file=interactions_file, column="item")
        extra = pd.DataFrame({"item_id": first_rows["item"].to_numpy()})
        items = pd.concat([items, extra], ignore_index=True)
        item_lines = np.concatenate([item_lines, np.full(len(extra), -1)])
        item_map = IdMap(items["item_id"].to_numpy())
        item_index = _lookup(item_map, interactions["item"])
    items["item_id"] = items["item_id"].astype(object)

    _mask_empty_text(items, item_columns, item_lines, report, items_file)
    if check_media:
        for column in (item_columns.image, item_columns.audio):
            if column:
                _mask_missing_files(items, column, item_lines, report, items_file, media_root)

    user_ids = _first_seen(interactions["user"])
    if users is not None:
        users = users.copy()
        users["user_id"] = _as_id_strings(users["user_id"])
        users = users[users["user_id"].notna()].drop_duplicates("user_id").reset_index(drop=True)
        user_map = IdMap(users["user_id"].to_numpy()).extend(user_ids)
        if len(user_map) > len(users):
            extra_users = pd.DataFrame({"user_id": user_map.ids[len(users):]})
            users = pd.concat([users, extra_users], ignore_index=True)
        users["user_id"] = users["user_id"].astype(object)
    else:
        user_map = IdMap.from_values(user_ids)

    has_time = "timestamp" in interactions
    inter = Interactions(
        user=_lookup(user_map, interactions["user"]),
        item=item_index,
        weight=interactions["weight"].to_numpy(),
        timestamp=interactions["timestamp"].to_numpy() if has_time else None,
        n_users=len(user_map),
        n_items=len(item_map),
    )
    return Dataset(
        name=name,
        items=items,
        interactions=inter,
        user_map=user_map,
        item_map=item_map,
        item_columns=item_columns,
        users=users,
        user_columns=user_columns or UserColumns(),
        rating_scale=rating_scale,
        source=source,
        media_root=media_root,
    )


def _lookup(id_map: IdMap, ids: pd.Series) -> np.ndarray:
    """``id_map.lookup`` of a column; a Categorical one by its categories (one lookup per distinct id)."""
    if isinstance(ids.dtype, pd.CategoricalDtype):
        index = id_map.lookup(ids.cat.categories.to_numpy(dtype=object))
        return np.append(index, np.int32(-1))[ids.cat.codes.to_numpy()]
    return id_map.lookup(ids.to_numpy())


def _first_seen(ids: pd.Series) -> np.ndarray:
    """The values of an id column: for a Categorical just the distinct ones in first-seen order
    (what IdMap.from_values / extend keep of them anyway)."""
    if isinstance(ids.dtype, pd.CategoricalDtype):
        codes = pd.unique(ids.cat.codes.to_numpy())
        return ids.cat.categories.to_numpy(dtype=object)[codes[codes >= 0]]
    return ids.to_numpy()


def _mask_empty_text(
    items: pd.DataFrame, columns: ItemColumns, lines: np.ndarray, report: ValidationReport, file: str
) -> None:
    if not columns.text:
        return
    has_text = np.zeros(len(items), dtype=bool)
    for name in columns.text:
        text = items[name].astype("string").str.strip()
        present = (text.notna() & (text != "")).to_numpy(dtype=bool)
        clean = text.astype(object)
        clean[~present] = None
        items[name] = clean
        has_text |= present
    known = lines > 0  # items added for unknown ids are already reported as such
    empty = ~has_text & known
    report.add_rows("empty_text", lines[empty], items["item_id"].to_numpy()[empty],
                    "item {value!r} has no text; text modality masked", file=file,
                    column=",".join(columns.text))


def _mask_missing_files(
    items: pd.DataFrame, column: str, lines: np.ndarray, report: ValidationReport, file: str,
    media_root: str | None,
) -> None:
    paths = items[column]
    given = paths.notna().to_numpy() & (paths.astype("string").str.len().fillna(0).to_numpy() > 0)
    exists = np.zeros(len(items), dtype=bool)
    root = Path(media_root) if media_root else None
    for i in np.flatnonzero(given):  # one stat per catalog item, not per interaction
        path = Path(str(paths.iat[int(i)]))
        exists[i] = (path if path.is_absolute() or root is None else root / path).is_file()
    missing = given & ~exists
    report.add_rows("missing_file", lines[missing], paths.to_numpy()[missing],
                    "file {value!r} does not exist; modality masked", file=file, column=column)
    items[column] = paths.where(exists, None).astype(object)


def resolve(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().resolve()
