"""McAuley Amazon review dumps (2014 and 2018), JSON lines, plain or gzipped, with optional meta.

Reviews: ``reviewerID`` -> user, ``asin`` -> item, ``overall`` (1..5) -> rating, ``unixReviewTime``
-> timestamp. Review text is interaction-level and the schema has no place for it, so each item
gets a bounded ``reviews`` text column: its reviews' ``summary. reviewText``, in file order, cut at
:data:`REVIEW_CHARS` per review and :data:`ITEM_REVIEW_CHARS` per item. Note that this column is
built from every review, including ones a later split may hold out: for a leakage-free content
model leave ``reviews`` out of the text columns.

Meta (``meta_*.json[.gz]``; 2014 files are often Python dict literals, 2018 files JSON): ``title``,
``description`` (2018 lists joined), ``categories`` (2014 nested lists flattened / 2018
``category``) as a multi-valued attribute, ``brand`` categorical, ``price`` numeric (``"$12.99"``
parsed) and ``image_url`` (2014 ``imUrl`` / 2018 first ``imageURLHighRes``): a URL, not a local
file, so it is not an image column and nothing is downloaded. Reviewed items missing from the meta
file are added to the catalog (``unknown_item``) and keep only their ``reviews`` text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from fusionrec.data.loaders.common import assemble_dataset, clean_interactions
from fusionrec.data.loaders.tabular import as_optional_text, literal_record, read_json_lines, rows_not_counted
from fusionrec.data.schema import Dataset, ItemColumns
from fusionrec.data.validate import ValidationReport
from fusionrec.errors import DataError

REVIEW_CHARS = 600
ITEM_REVIEW_CHARS = 3000
RATING_RANGE = (1.0, 5.0)
REVIEW_SCHEMA = pa.schema([
    ("reviewerID", pa.string()), ("asin", pa.string()), ("overall", pa.float64()),
    ("unixReviewTime", pa.int64()), ("summary", pa.string()), ("reviewText", pa.string()),
])
META_SCHEMA_2014 = pa.schema([
    ("asin", pa.string()), ("title", pa.string()), ("description", pa.string()),
    ("categories", pa.list_(pa.list_(pa.string()))), ("brand", pa.string()), ("price", pa.float64()),
    ("imUrl", pa.string()),
])
META_SCHEMA_2018 = pa.schema([
    ("asin", pa.string()), ("title", pa.string()), ("description", pa.list_(pa.string())),
    ("category", pa.list_(pa.string())), ("brand", pa.string()), ("price", pa.string()),
    ("imageURLHighRes", pa.list_(pa.string())), ("imageURL", pa.list_(pa.string())),
])
META_ITEM_COLUMNS = ItemColumns(text=["title", "description", "reviews"], categorical=["brand"],
                                multi_valued=["categories"], numeric=["price"])
_JSON_NAMES = re.compile(r"\.(json|jsonl|ndjson)(\.gz)?$", re.IGNORECASE)
_PRICE = re.compile(r"^\s*\$?\s*(\d[\d,]*(?:\.\d+)?)")


def load_amazon(
    source: Path, *, meta: Path | None = None, name: str | None = None
) -> tuple[Dataset, ValidationReport]:
    """Load a reviews file (or a folder with one reviews file and optionally one ``meta_*`` file)."""
    reviews_path, meta_path = _find_files(Path(source).expanduser().resolve(), meta)
    report = ValidationReport(source=str(reviews_path))
    frame, lines = read_json_lines(reviews_path, report, schema=REVIEW_SCHEMA)
    for column in ("reviewerID", "asin", "overall"):
        if frame[column].isna().all() and len(frame):
            raise DataError("no record has this field: not an Amazon reviews file?", file=str(reviews_path),
                            column=column)
    raw = pd.DataFrame({"user": frame["reviewerID"], "item": frame["asin"], "rating": frame["overall"]})
    if frame["unixReviewTime"].notna().any():
        raw["timestamp"] = frame["unixReviewTime"]
    interactions = clean_interactions(raw, lines, report, file=str(reviews_path), rating_range=RATING_RANGE)
    reviews_text = aggregate_reviews(frame, lines, interactions)
    del frame, raw

    if meta_path is None:
        first = interactions.drop_duplicates("item")
        items = pd.DataFrame({"item_id": first["item"].to_numpy()})
        items["reviews"] = items["item_id"].map(reviews_text).to_numpy(dtype=object)
        item_lines, items_file, item_columns = first["line"].to_numpy(), reviews_path, ItemColumns(text=["reviews"])
    else:
        items, item_lines = read_meta(meta_path, report)
        items["reviews"] = items["item_id"].map(reviews_text).to_numpy(dtype=object)
        items_file, item_columns = meta_path, META_ITEM_COLUMNS
    dataset = assemble_dataset(
        name or _JSON_NAMES.sub("", reviews_path.name),
        items,
        interactions,
        report,
        item_columns=item_columns,
        items_file=str(items_file),
        interactions_file=str(reviews_path),
        rating_scale=RATING_RANGE,
        check_media=False,
        source=str(reviews_path),
        item_lines=item_lines,
    )
    if meta_path is not None:  # catalog rows added for reviewed items without meta: give them their reviews
        missing = dataset.items["reviews"].isna().to_numpy()
        filled = dataset.items["item_id"][missing].map(reviews_text).to_numpy(dtype=object)
        reviews = dataset.items["reviews"].to_numpy(dtype=object).copy()
        reviews[missing] = filled
        reviews[pd.isna(reviews)] = None
        dataset.items["reviews"] = pd.Series(reviews, index=dataset.items.index, dtype=object)
    return dataset, report


def aggregate_reviews(frame: pd.DataFrame, lines: np.ndarray, interactions: pd.DataFrame) -> pd.Series:
    """Per item (index: asin), the kept reviews' ``summary. reviewText`` joined, bounded in length."""
    position = np.searchsorted(lines, interactions["line"].to_numpy())
    summary = frame["summary"].astype("string").str.strip().fillna("").iloc[position].reset_index(drop=True)
    body = frame["reviewText"].astype("string").str.strip().fillna("").iloc[position].reset_index(drop=True)
    both = (summary != "") & (body != "")
    pieces = (summary + body).where(~both, summary.str.rstrip(".") + ". " + body).str.slice(0, REVIEW_CHARS)
    table = pd.DataFrame({"item": interactions["item"].to_numpy(), "text": pieces.to_numpy()})
    table = table[table["text"].str.len() > 0]
    length = table["text"].str.len() + 1
    starts = length.groupby(table["item"], sort=False).cumsum() - length
    table = table[starts < ITEM_REVIEW_CHARS]
    joined = table.groupby("item", sort=False)["text"].agg(" ".join)
    return joined.str.slice(0, ITEM_REVIEW_CHARS).astype(object)


def read_meta(path: Path, report: ValidationReport) -> tuple[pd.DataFrame, np.ndarray]:
    """The item catalog from a 2014 or 2018 meta file: ``item_id`` + title, description, categories,
    brand, price, image_url; and each record's line."""
    schema = META_SCHEMA_2018 if _looks_2018(path) else META_SCHEMA_2014
    with rows_not_counted(report):
        frame, lines = read_json_lines(path, report, schema=schema, literal_fallback=True)
    if len(frame) and ("asin" not in frame or frame["asin"].isna().all()):
        raise DataError("no record has an 'asin': not an Amazon meta file?", file=str(path), column="asin")
    known = set(META_SCHEMA_2014.names) | set(META_SCHEMA_2018.names)
    frame = frame.reindex(columns=sorted(set(frame.columns) | known))
    items = pd.DataFrame({"item_id": frame["asin"].to_numpy()})
    items["title"] = as_optional_text(frame["title"]).to_numpy()
    items["description"] = as_optional_text(frame["description"].map(_flat_text)).to_numpy()
    categories = frame["categories"] if frame["categories"].notna().any() else frame["category"]
    items["categories"] = categories.map(_flat_list).to_numpy()
    items["brand"] = as_optional_text(frame["brand"]).to_numpy()
    items["price"] = _prices(frame["price"], lines, report, str(path))
    image = frame["imUrl"].map(_first_text)
    for column in ("imageURLHighRes", "imageURL"):
        image = image.where(image.notna(), frame[column].map(_first_text))
    items["image_url"] = as_optional_text(image).to_numpy()
    return items, lines


def _find_files(source: Path, meta: Path | None) -> tuple[Path, Path | None]:
    """The reviews file and the meta file (given, or found beside the reviews as ``meta_<name>``)."""
    if source.is_dir():
        data = sorted(p for p in source.iterdir() if p.is_file() and _JSON_NAMES.search(p.name))
        reviews = [p for p in data if not p.name.startswith("meta_")]
        if len(reviews) != 1:
            raise DataError(f"expected one reviews file (*.json[.gz], not meta_*) in the folder, found "
                            f"{[p.name for p in reviews]}", file=str(source))
        metas = [p for p in data if p.name.startswith("meta_")]
        if meta is None and len(metas) == 1:
            meta = metas[0]
        source = reviews[0]
    elif not source.is_file():
        raise DataError("file not found", file=str(source))
    elif meta is None:
        core = _JSON_NAMES.sub("", source.name).removeprefix("reviews_")
        core = re.sub(r"_5$", "", core)
        for candidate in (f"meta_{core}.json.gz", f"meta_{core}.json", f"meta_{core}.jsonl.gz", f"meta_{core}.jsonl"):
            if (source.parent / candidate).is_file():
                meta = source.parent / candidate
                break
    if meta is not None:
        meta = Path(meta).expanduser().resolve()
        if not meta.is_file():
            raise DataError("meta file not found", file=str(meta))
    return source, meta


def _looks_2018(path: Path) -> bool:
    """True when the first record has 2018 meta fields (``category``, ``imageURLHighRes``, list description)."""
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        record = literal_record(line)
                    if not isinstance(record, dict):
                        return False
                    described = isinstance(record.get("description"), list)
                    return described or "category" in record or "imageURLHighRes" in record
    except (OSError, EOFError):
        return False
    return False


def _flat_text(value: object) -> str | None:
    if isinstance(value, list | tuple | np.ndarray):
        parts = [str(v).strip() for v in value if v is not None and str(v).strip()]
        return " ".join(parts) or None
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _flat_list(value: object) -> list[str]:
    """Categories as a flat list of distinct strings (2014: list of lists; 2018: list)."""
    out: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, list | tuple | np.ndarray):
            for child in node:
                walk(child)
        elif node is not None and not (isinstance(node, float) and np.isnan(node)):
            text = str(node).strip()
            if text and text not in out:
                out.append(text)

    walk(value)
    return out


def _first_text(value: object) -> str | None:
    if isinstance(value, list | tuple | np.ndarray):
        return next((str(v) for v in value if v is not None and str(v).strip()), None)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _prices(column: pd.Series, lines: np.ndarray, report: ValidationReport, file: str) -> np.ndarray:
    """Numbers, or the first amount of ``"$12.99"`` / ``"$10.00 - $20.00"``; other text is reported."""
    text = as_optional_text(column)
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    amounts = text.astype("string").str.extract(_PRICE, expand=False).str.replace(",", "", regex=False)
    parsed = pd.to_numeric(amounts, errors="coerce").to_numpy(dtype=np.float64)
    values = np.where(np.isnan(numbers), parsed, numbers)
    bad = np.isnan(values) & text.notna().to_numpy(dtype=bool)
    report.add_rows("unparsable_attribute", lines[bad], text.to_numpy()[bad],
                    "price {value!r} is not an amount; cleared", file=file, column="price")
    return values
