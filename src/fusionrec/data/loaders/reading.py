"""Reading raw text: decompression and decoding with line-level checks, and delimited parsing with
the physical source line of every row.

Line numbers are physical lines of the (decompressed) file, 1-based. A row whose quoted field holds
a line break starts at the line where it begins; lines that hold only whitespace are ignored like
empty lines (they never become a row, nor a ``malformed_row``).
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from fusionrec.data.validate import ValidationReport
from fusionrec.errors import DataError

_QUOTE = ord('"')
_SPACES = b" \t\r\x0b\x0c"  # bytes a blank line may hold (the delimiter excepted)


def require_file(path: Path) -> Path:
    if not path.exists():
        raise DataError("file not found", file=str(path))
    if not path.is_file():
        raise DataError("not a regular file", file=str(path))
    return path


def gunzip(path: Path, raw: bytes) -> bytes:
    """The decompressed content of a ``.gz`` file. A truncated or corrupt one is a DataError naming
    the file and the line the readable part reaches (the last line there may be cut)."""
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        readable = _readable_part(raw)
        line = readable.count(b"\n") + 1
        what = "truncated" if isinstance(exc, EOFError) else "corrupt"
        raise DataError(f"{what} gzip file, readable up to this line ({exc})", file=str(path), row=line) from None


def _readable_part(raw: bytes) -> bytes:
    """As much of a (multi-member) gzip stream as decompresses."""
    out: list[bytes] = []
    while raw:
        decompressor = zlib.decompressobj(wbits=31)
        try:
            out.append(decompressor.decompress(raw))
        except zlib.error:
            break
        if not decompressor.eof:
            break
        raw = decompressor.unused_data
    return b"".join(out)


def read_utf8(
    path: Path,
    report: ValidationReport,
    *,
    encoding: str = "utf-8",
    fallback: str = "latin-1",
    field_of: Callable[[int, bytes, int], str | None] | None = None,
) -> bytes:
    """File content as UTF-8 bytes (``.gz`` decompressed). Lines that are not valid ``encoding`` are
    reported (``bad_encoding``, with their line number and, given ``field_of(line_number, line,
    byte_offset)``, the column) and decoded with ``fallback`` instead."""
    raw = require_file(path).read_bytes()
    if path.suffix == ".gz":
        raw = gunzip(path, raw)
    if encoding.lower().replace("-", "") in ("latin1", "iso88591", "cp1252"):
        return raw.decode(encoding).encode("utf-8")
    is_utf8 = encoding.lower().replace("-", "") == "utf8"
    if is_utf8 and raw.isascii():  # valid as is; checked without decoding the whole file
        return raw
    try:
        raw.decode(encoding)
        return raw if is_utf8 else raw.decode(encoding).encode("utf-8")
    except UnicodeDecodeError:
        pass
    fixed = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            fixed.append(line.decode(encoding))
        except UnicodeDecodeError as exc:
            report.add(
                "bad_encoding",
                f"byte {exc.start}: not valid {encoding}; decoded as {fallback}",
                file=str(path),
                row=number,
                column=field_of(number, line, exc.start) if field_of is not None else None,
            )
            fixed.append(line.decode(fallback, errors="replace"))
    return "\n".join(fixed).encode("utf-8")


def read_delimited(
    path: Path,
    report: ValidationReport,
    *,
    delimiter: str = ",",
    column_names: list[str] | None = None,
    encoding: str = "utf-8",
    quoting: bool = True,
    string_columns: list[str] | None = None,
    categorical_columns: list[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a CSV/TSV (or ``::``-separated) file with pyarrow.

    Returns the frame and the 1-based physical source line where each row starts. Rows with the
    wrong number of fields are reported as ``malformed_row`` (with their line) and skipped.
    ``column_names`` given means the file has no header line. ``string_columns`` are kept as
    strings (ids); those also in ``categorical_columns`` come back as a Categorical of the same
    strings (dictionary-encoded while parsing: no Python string per row).
    """
    field_of = _field_namer(path, delimiter, column_names, quoting)
    data = read_utf8(path, report, encoding=encoding, field_of=field_of)
    shown_delimiter = delimiter
    if len(delimiter) > 1:  # e.g. MovieLens-1M's "::": map to a byte that never occurs in text
        data = data.replace(delimiter.encode(), b"\x1f")
        delimiter = "\x1f"
    quoting = quoting and b'"' in data
    data, starts = _record_starts(data, delimiter.encode(), quoting)
    invalid: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        text = row.text.replace("\x1f", shown_delimiter)[:80]
        message = f"expected {row.expected_columns} fields, found {row.actual_columns}: {text!r}"
        invalid.append((int(row.number) if row.number is not None else -1, message))
        return "skip"

    convert = pacsv.ConvertOptions(
        column_types={
            c: pa.dictionary(pa.int32(), pa.string()) if c in (categorical_columns or []) else pa.string()
            for c in (string_columns or [])
        },
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(
                use_threads=False, column_names=column_names, block_size=1 << 24
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, quote_char='"' if quoting else False, invalid_row_handler=on_invalid
            ),
            convert_options=convert,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"cannot parse as delimited text: {exc}", file=str(path)) from exc
    frame = table.to_pandas()
    header = 0 if column_names is not None else 1
    if starts is not None and len(starts) != header + len(frame) + len(invalid):  # a stray quote: scan exactly
        starts = _exact_record_starts(data, delimiter.encode())
    lines = _row_lines(starts, data, header, len(frame), [number for number, _ in invalid])
    for number, message in invalid:  # arrow numbers records (header included, empty lines not)
        line = int(starts[number - 1]) if starts is not None and 0 < number <= len(starts) else number
        report.add("malformed_row", message, file=str(path), row=line if line > 0 else None)
    report.rows_read += len(frame) + len(invalid)
    return frame, lines


def _field_namer(
    path: Path, delimiter: str, column_names: list[str] | None, quoting: bool
) -> Callable[[int, bytes, int], str | None]:
    """``(line number, raw line, byte offset) -> column name`` of the field holding that byte (for
    bad_encoding); None on the header line."""
    names = column_names
    if names is None:
        with require_file(path).open("rb") as handle:
            header = handle.readline()
        if path.suffix == ".gz":
            header = b""
        names = [n.strip().strip('"') for n in header.decode("utf-8", errors="replace").rstrip("\r\n").split(delimiter)]

    def field_of(number: int, line: bytes, offset: int) -> str | None:
        if column_names is None and number == 1:
            return None
        prefix = line[:offset].decode("latin-1")
        if quoting and '"' in prefix and len(delimiter) == 1:
            index = len(next(csv.reader([prefix], delimiter=delimiter))) - 1
        else:
            index = prefix.count(delimiter)
        return names[index] if 0 <= index < len(names) and names[index] else None

    return field_of


def _record_starts(data: bytes, delimiter: bytes, quoting: bool) -> tuple[bytes, np.ndarray | None]:
    """``data`` with whitespace-only lines emptied (pyarrow skips empty lines), and the 1-based line
    where each record (header included) starts; None when every non-empty line is one record and
    none was empty (the fast case: row lines are then a range).

    Vectorised: a line starts inside a quoted field when an odd number of quotes precede it (a
    doubled quote counts twice). A quote inside an unquoted field breaks that count; the caller
    then checks the record count against pyarrow's and falls back to :func:`_exact_record_starts`.
    """
    spaces = bytes(b for b in _SPACES if bytes([b]) != delimiter)
    starts_blank = data[:1] in [bytes([b]) for b in spaces] or any(b"\n" + bytes([b]) in data for b in spaces)
    has_empty = b"\n\n" in data or data.startswith(b"\n") or b"\n\r\n" in data
    if not (quoting or starts_blank or has_empty):
        return data, None
    buffer = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buffer == 10)
    begins = np.r_[0, newlines + 1]
    ends = np.r_[newlines, len(buffer)]
    inside = np.zeros(len(begins), dtype=bool)
    if quoting:
        quotes = np.flatnonzero(buffer == _QUOTE)
        inside = np.searchsorted(quotes, begins) % 2 == 1
    nonempty = ends > begins
    first = np.zeros(len(begins), dtype=np.uint8)
    first[nonempty] = buffer[begins[nonempty]]
    candidates = np.flatnonzero(nonempty & ~inside & np.isin(first, np.frombuffer(spaces, dtype=np.uint8)))
    blank = [int(i) for i in candidates.tolist() if not data[begins[i] : ends[i]].strip(spaces)]
    if blank:  # few: rebuild the buffer without their bytes, newlines kept
        pieces, at = [], 0
        for i in blank:
            pieces.append(data[at : begins[i]])
            at = int(ends[i])
        data = b"".join([*pieces, data[at:]])
        nonempty[blank] = False
    is_cr = np.zeros(len(begins), dtype=bool)
    single = np.flatnonzero((ends - begins) == 1)
    is_cr[single] = buffer[begins[single]] == 13
    return data, np.flatnonzero(nonempty & ~is_cr & ~inside) + 1


def _exact_record_starts(data: bytes, delimiter: bytes) -> np.ndarray:
    """Record start lines by pyarrow's rules (a quote opens a field only at its start; ``""`` inside
    is a quote), scanning only lines that hold a quote character."""
    lines = data.split(b"\n")
    starts: list[int] = []
    inside = False
    for number, line in enumerate(lines, start=1):
        if not inside and line.strip(b"\r"):
            starts.append(number)
        if b'"' not in line:
            continue
        at_field_start = not inside
        i, n = 0, len(line)
        while i < n:
            char = line[i]
            if inside:
                if char == _QUOTE:
                    if i + 1 < n and line[i + 1] == _QUOTE:
                        i += 1
                    else:
                        inside = False
            elif char == _QUOTE and at_field_start:
                inside = True
            at_field_start = not inside and char == delimiter[0]
            i += 1
    return np.asarray(starts, dtype=np.int64)


def _row_lines(starts: np.ndarray | None, data: bytes, header: int, n_rows: int, bad: list[int]) -> np.ndarray:
    """The start line of each parsed row: records that are not the header nor skipped."""
    if starts is None:
        if not bad:
            return np.arange(header + 1, max(header + 1, min(data.count(b"\n") + 2, header + 1 + n_rows)))
        starts = np.arange(1, data.count(b"\n") + 2)
    keep = np.ones(len(starts), dtype=bool)
    keep[:header] = False
    bad_index = np.asarray([b - 1 for b in bad if 0 < b <= len(starts)], dtype=np.int64)
    keep[bad_index] = False
    return starts[keep][:n_rows]
