"""Generic tables: CSV / TSV / Parquet interactions, an optional items file and an optional users
file, tied together by a :class:`TabularMapping` that says which column is what.

Rows are numbered as the validation report expects: 1-based source lines for delimited text,
1-based row indices for Parquet. Relative file names in the mapping resolve against the source
folder (``SOURCE`` itself when it is a folder, else the folder that holds it); media paths in the
items file resolve against ``media_root``, by default the items file's folder.
"""

from __future__ import annotations

import ast
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from fusionrec.data.loaders.common import (
    assemble_dataset,
    clean_interactions,
    read_delimited,
    read_utf8,
    require_file,
)
from fusionrec.data.schema import Dataset, ItemColumns, UserColumns
from fusionrec.data.validate import ValidationReport
from fusionrec.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")


class TabularMapping(BaseModel):
    """Which file and which column holds what. Unknown keys are rejected (typos fail loudly)."""

    model_config = ConfigDict(extra="forbid")

    interactions: str | None = Field(default=None, description="interactions file, when SOURCE is a folder")
    items: str | None = Field(default=None, description="items (catalog) file; none = catalog from interactions")
    users: str | None = Field(default=None, description="users (profiles) file")
    delimiter: str | None = Field(default=None, description="field separator; default from the suffix (.tsv = tab)")
    encoding: str = Field(default="utf-8", description="text encoding of the delimited files")
    interactions_columns: list[str] | None = Field(default=None, description="column names of a header-less interactions file")
    items_columns: list[str] | None = Field(default=None, description="column names of a header-less items file")
    users_columns: list[str] | None = Field(default=None, description="column names of a header-less users file")

    user: str = Field(default="user_id", description="user id column of the interactions file")
    item: str = Field(default="item_id", description="item id column of the interactions file")
    rating: str | None = Field(default=None, description="rating column (none = implicit, weight 1)")
    timestamp: str | None = Field(default=None, description="time column: epoch seconds or dates")
    time_format: str | None = Field(default=None, description="strptime format of the time column, e.g. %Y-%m-%d")
    rating_range: tuple[float, float] | None = Field(default=None, description="(min, max) valid rating")

    item_id: str | None = Field(default=None, description="item id column of the items file (default: `item`)")
    text: list[str] = Field(default=[], description="item text columns")
    image: str | None = Field(default=None, description="item image path column")
    audio: str | None = Field(default=None, description="item audio path column")
    categorical: list[str] = Field(default=[], description="single-valued categorical item attributes")
    multi_valued: list[str] = Field(default=[], description="multi-valued item attributes, e.g. genres 'A|B'")
    multi_valued_separator: str = Field(default="|", description="separator of the multi-valued columns")
    numeric: list[str] = Field(default=[], description="numeric item attributes")
    media_root: str | None = Field(default=None, description="folder media paths are relative to (default: items file's)")

    user_id: str | None = Field(default=None, description="user id column of the users file (default: `user`)")
    user_categorical: list[str] = Field(default=[], description="categorical user profile columns")
    user_numeric: list[str] = Field(default=[], description="numeric user profile columns")


def read_table(
    path: Path,
    report: ValidationReport,
    *,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    column_names: list[str] | None = None,
    string_columns: list[str] | None = None,
    quoting: bool = True,
    categorical_columns: list[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a delimited text, JSON-lines or Parquet file: the frame and each row's 1-based line
    (text) or row (Parquet). ``categorical_columns`` (of ``string_columns``) may come back
    dictionary-encoded (Categorical) from delimited text."""
    require_file(path)
    if _suffix(path) in JSON_SUFFIXES:
        return read_json_lines(path, report)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            frame = pq.read_table(path).to_pandas()
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"cannot read as Parquet: {exc}", file=str(path)) from exc
        report.rows_read += len(frame)
        return frame, np.arange(1, len(frame) + 1)
    sep = delimiter or sniff_delimiter(path)
    return read_delimited(path, report, delimiter=sep, column_names=column_names, encoding=encoding,
                          quoting=quoting, string_columns=string_columns, categorical_columns=categorical_columns)


@contextmanager
def rows_not_counted(report: ValidationReport) -> Iterator[None]:
    """Read a catalog or profile file inside this: its issues go to ``report`` but its rows do not
    count in ``report.rows_read`` (which counts interaction rows, against ``rows_kept``)."""
    before = report.rows_read
    try:
        yield
    finally:
        report.rows_read = before


def read_side_table(
    path: Path,
    report: ValidationReport,
    *,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    column_names: list[str] | None = None,
    string_columns: list[str] | None = None,
    quoting: bool = True,
) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`read_table` for a catalog or profile file (see :func:`rows_not_counted`)."""
    with rows_not_counted(report):
        return read_table(path, report, delimiter=delimiter, encoding=encoding, column_names=column_names,
                          string_columns=string_columns, quoting=quoting)


def read_json_lines(
    path: Path,
    report: ValidationReport,
    *,
    schema: pa.Schema | None = None,
    literal_fallback: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read JSON lines (plain or .gz): the frame and each record's 1-based line.

    A vectorised pyarrow read comes first (with ``schema``: only those fields, typed). When it
    fails (a bad line, a changing type) the bad lines are isolated by halving, the good halves
    still read by pyarrow, and only blocks of up to :data:`LINE_BLOCK` lines around a bad one are
    parsed line by line: ``json.loads``, then ``ast.literal_eval`` if ``literal_fallback`` (Python
    dict literals, whose files go line by line throughout); a line that is neither is reported as
    ``malformed_row`` and skipped. Blank lines are ignored.
    """
    data = read_utf8(path, report)
    numbers = _nonblank_lines(data)
    try:
        frame = _arrow_json(data, schema)
        if len(frame) != len(numbers):
            raise ValueError("record count differs from line count")
    except ARROW_ERRORS:
        frame, numbers = _read_around_bad_lines(data.split(b"\n"), numbers, path, report, schema, literal_fallback)
    report.rows_read += len(frame)
    return frame, numbers


LINE_BLOCK = 512
ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError)
_WHITESPACE = np.array([9, 10, 11, 12, 13, 32], dtype=np.uint8)


def _arrow_json(data: bytes, schema: pa.Schema | None) -> pd.DataFrame:
    table = pajson.read_json(
        io.BytesIO(data),
        read_options=pajson.ReadOptions(use_threads=False, block_size=1 << 25),
        parse_options=pajson.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="ignore" if schema is not None else "infer"
        ),
    )
    return table.to_pandas()


def _nonblank_lines(data: bytes) -> np.ndarray:
    """1-based numbers of the lines that hold anything but whitespace (vectorised: a line whose
    first byte is not whitespace is not blank; only the others are looked at one by one)."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    begins = np.r_[0, np.flatnonzero(buffer == 10) + 1]
    ends = np.r_[begins[1:] - 1, len(buffer)]
    nonblank = ends > begins
    first = np.zeros(len(begins), dtype=np.uint8)
    first[nonblank] = buffer[begins[nonblank]]
    for i in np.flatnonzero(nonblank & np.isin(first, _WHITESPACE)).tolist():
        nonblank[i] = bool(data[begins[i] : ends[i]].strip())
    return np.flatnonzero(nonblank) + 1


def _read_around_bad_lines(
    lines: list[bytes],
    numbers: np.ndarray,
    path: Path,
    report: ValidationReport,
    schema: pa.Schema | None,
    literal_fallback: bool,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The fallback of :func:`read_json_lines` (see there)."""
    pieces: list[tuple[int, pd.DataFrame, np.ndarray]] = []
    try:
        json.loads(lines[numbers[0] - 1]) if len(numbers) else None
        pending = [(0, len(numbers) // 2), (len(numbers) // 2, len(numbers))]
    except ValueError:  # the first line is not JSON either (e.g. dict literals): all line by line
        pieces.append((0, *_parse_lines(lines, numbers, path, report, literal_fallback)))
        pending = []
    while pending:
        lo, hi = pending.pop()
        block = numbers[lo:hi]
        if hi == lo:
            continue
        try:
            frame = _arrow_json(b"\n".join([lines[n - 1] for n in block.tolist()]), schema)
            if len(frame) == len(block):
                pieces.append((lo, frame, block))
                continue
        except ARROW_ERRORS:
            pass
        if hi - lo > LINE_BLOCK:
            middle = (lo + hi) // 2
            pending += [(lo, middle), (middle, hi)]
        else:
            pieces.append((lo, *_parse_lines(lines, block, path, report, literal_fallback)))
    pieces.sort(key=lambda piece: piece[0])
    frames = [frame for _, frame, _ in pieces if len(frame)]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    kept = np.concatenate([kept for _, _, kept in pieces]) if pieces else np.zeros(0, dtype=np.int64)
    if schema is not None:
        frame = frame.reindex(columns=schema.names)
    return frame, kept.astype(np.int64)


def _parse_lines(
    lines: list[bytes], numbers: np.ndarray, path: Path, report: ValidationReport, literal_fallback: bool
) -> tuple[pd.DataFrame, np.ndarray]:
    """Parse the given lines one by one; bad ones are reported and counted as read."""
    records: list[dict[str, object]] = []
    kept: list[int] = []
    for number in numbers.tolist():
        text = lines[number - 1].decode("utf-8")
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            record = literal_record(text) if literal_fallback else None
            if record is None:
                report.add("malformed_row", f"not valid JSON ({exc.msg}, char {exc.pos}): {text.strip()[:60]!r}",
                           file=str(path), row=number)
                continue
        if not isinstance(record, dict):
            report.add("malformed_row", f"a JSON {type(record).__name__}, not an object", file=str(path), row=number)
            continue
        records.append(record)
        kept.append(number)
    report.rows_read += len(numbers) - len(kept)
    return pd.DataFrame.from_records(records), np.asarray(kept, dtype=np.int64)


def literal_record(text: str) -> dict[str, object] | None:
    """A Python dict literal (as in Amazon 2014 meta files), or None when the text is not one."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    return suffixes[-1] if suffixes else ""


def sniff_delimiter(path: Path) -> str:
    """Tab for .tsv/.tab files; otherwise tab when the first line has more tabs than commas (a
    ``.csv`` that is really tab-separated, as MMRec's id mappings are), else comma."""
    if _suffix(path) in (".tsv", ".tab"):
        return "\t"
    if path.name.lower().endswith(".gz"):
        return ","
    with path.open("rb") as handle:
        first = handle.readline()
    return "\t" if first.count(b"\t") > first.count(b",") else ","


def require_columns(frame: pd.DataFrame, columns: list[str], file: Path) -> None:
    """DataError naming the file, the first missing column and the columns that are there."""
    have = [str(c) for c in frame.columns]
    for column in columns:
        if column not in have:
            raise DataError(f"column not found; the file has {have}", file=str(file), column=column)


def as_optional_text(column: pd.Series) -> pd.Series:
    """Strings as an object Series with None where missing or blank (whitespace stripped)."""
    text = column.astype("string").str.strip()
    out = text.astype(object)
    out[(text.isna() | (text == "")).to_numpy(dtype=bool)] = None
    return out


def split_multi_valued(column: pd.Series, separator: str) -> pd.Series:
    """``"A|B"`` -> ``["A", "B"]`` (stripped, empties dropped); missing -> ``[]``. Lists pass through."""
    values: list[list[str]] = []
    for value in column.to_numpy(dtype=object):
        if isinstance(value, list | tuple | np.ndarray):
            values.append([str(v).strip() for v in value if str(v).strip()])
        elif value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            values.append([])
        else:
            values.append([part.strip() for part in str(value).split(separator) if part.strip()])
    return pd.Series(values, index=column.index, dtype=object)


def numeric_attribute(
    column: pd.Series, lines: np.ndarray, report: ValidationReport, *, file: str, name: str
) -> np.ndarray:
    """float64 values; a present value that is not a number is reported (``unparsable_attribute``) and cleared."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    given = as_optional_text(column).notna().to_numpy(dtype=bool)
    bad = np.isnan(values) & given
    report.add_rows("unparsable_attribute", lines[bad], column.to_numpy()[bad],
                    "value {value!r} is not a number; attribute cleared", file=file, column=name)
    return values


def build_attribute_frame(
    frame: pd.DataFrame,
    lines: np.ndarray,
    report: ValidationReport,
    *,
    file: Path,
    id_column: str,
    id_name: str,
    text: list[str],
    categorical: list[str],
    multi_valued: list[str],
    numeric: list[str],
    paths: list[str],
    separator: str = "|",
) -> pd.DataFrame:
    """The id column renamed to ``id_name`` plus typed attribute columns, in a fresh frame."""
    require_columns(frame, [id_column, *text, *categorical, *multi_valued, *numeric, *paths], file)
    out = pd.DataFrame({id_name: frame[id_column].to_numpy()})
    for name in (*text, *categorical, *paths):
        out[name] = as_optional_text(frame[name]).to_numpy()
    for name in multi_valued:
        out[name] = split_multi_valued(frame[name], separator).to_numpy()
    for name in numeric:
        out[name] = numeric_attribute(frame[name], lines, report, file=str(file), name=name)
    return out


def _file_in(root: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else root / path


def load_tabular(
    source: Path,
    mapping: TabularMapping,
    *,
    name: str | None = None,
    check_media: bool = True,
) -> tuple[Dataset, ValidationReport]:
    """Load interactions (+ items, + users) described by ``mapping``. ``source`` is the interactions
    file, or a folder and ``mapping.interactions`` names the file in it."""
    source = Path(source).expanduser().resolve()
    root = source if source.is_dir() else source.parent
    if source.is_dir():
        if not mapping.interactions:
            raise DataError("SOURCE is a folder: name the interactions file in the mapping ('interactions:')",
                            file=str(source))
        inter_path = _file_in(root, mapping.interactions)
    else:
        inter_path = source
    report = ValidationReport(source=str(source))

    value_columns = [c for c in (mapping.rating, mapping.timestamp) if c]
    frame, lines = read_table(inter_path, report, delimiter=mapping.delimiter, encoding=mapping.encoding,
                              column_names=mapping.interactions_columns,
                              string_columns=[mapping.user, mapping.item],
                              categorical_columns=[mapping.user, mapping.item])
    require_columns(frame, [mapping.user, mapping.item, *value_columns], inter_path)
    raw = pd.DataFrame({"user": frame[mapping.user], "item": frame[mapping.item]})
    if mapping.rating:
        raw["rating"] = frame[mapping.rating]
    if mapping.timestamp:
        raw["timestamp"] = frame[mapping.timestamp]
    del frame
    interactions = clean_interactions(raw, lines, report, file=str(inter_path),
                                      rating_range=mapping.rating_range, time_format=mapping.time_format,
                                      categorical_ids=True)

    item_columns = ItemColumns(text=mapping.text, image=mapping.image, audio=mapping.audio,
                               categorical=mapping.categorical, multi_valued=mapping.multi_valued,
                               numeric=mapping.numeric)
    if mapping.items:
        items_path = _file_in(root, mapping.items)
        items, item_lines = _read_items(items_path, mapping, report)
    else:
        if item_columns.all_columns():
            raise DataError("item columns are mapped but no items file is given ('items:')", file=str(source))
        items_path = inter_path
        first = interactions.drop_duplicates("item")
        items, item_lines = pd.DataFrame({"item_id": first["item"].to_numpy()}), first["line"].to_numpy()

    users, user_columns = None, UserColumns()
    if mapping.users:
        users_path = _file_in(root, mapping.users)
        user_frame, user_lines = read_side_table(
            users_path, report, delimiter=mapping.delimiter, encoding=mapping.encoding,
            column_names=mapping.users_columns,
            string_columns=[mapping.user_id or mapping.user, *mapping.user_categorical])
        users = build_attribute_frame(
            user_frame, user_lines, report, file=users_path, id_column=mapping.user_id or mapping.user,
            id_name="user_id", text=[], categorical=mapping.user_categorical, multi_valued=[],
            numeric=mapping.user_numeric, paths=[])
        user_columns = UserColumns(categorical=mapping.user_categorical, numeric=mapping.user_numeric)

    if mapping.media_root:
        media_root = _file_in(root, mapping.media_root)
    else:
        media_root = items_path.parent
    dataset = assemble_dataset(
        name or inter_path.name.split(".")[0],
        items,
        interactions,
        report,
        item_columns=item_columns,
        items_file=str(items_path),
        interactions_file=str(inter_path),
        users=users,
        user_columns=user_columns,
        rating_scale=mapping.rating_range,
        media_root=str(media_root) if (mapping.image or mapping.audio) else None,
        check_media=check_media,
        source=str(source),
        item_lines=item_lines,
    )
    return dataset, report


def _read_items(path: Path, mapping: TabularMapping, report: ValidationReport) -> tuple[pd.DataFrame, np.ndarray]:
    id_column = mapping.item_id or mapping.item
    paths = [c for c in (mapping.image, mapping.audio) if c]
    text_like = [id_column, *mapping.text, *mapping.categorical, *mapping.multi_valued, *paths]
    frame, lines = read_side_table(path, report, delimiter=mapping.delimiter, encoding=mapping.encoding,
                                   column_names=mapping.items_columns, string_columns=text_like)
    items = build_attribute_frame(
        frame, lines, report, file=path, id_column=id_column, id_name="item_id", text=mapping.text,
        categorical=mapping.categorical, multi_valued=mapping.multi_valued, numeric=mapping.numeric,
        paths=paths, separator=mapping.multi_valued_separator)
    return items, lines
