from __future__ import annotations

from pathlib import Path

import pytest

from fusionrec.data.loaders import LoaderOptions, load_source
from fusionrec.data.loaders import tabular as tabular_module
from fusionrec.data.loaders.amazon import ITEM_REVIEW_CHARS
from fusionrec.errors import DataError

from .helpers import only_issue, write_jsonl


def _review_2014(user: str, asin: str, overall: float, when: int, text: str = "great", summary: str = "Nice") -> dict[str, object]:
    return {"reviewerID": user, "asin": asin, "reviewerName": "X", "helpful": [0, 0], "reviewText": text,
            "overall": overall, "summary": summary, "unixReviewTime": when, "reviewTime": "01 1, 2014"}


def _amazon_2014(folder: Path) -> Path:
    reviews = write_jsonl(folder / "reviews_Beauty_5.json.gz", [
        _review_2014("U1", "B1", 5.0, 1400000000, "Lovely colour.", "Love it"),
        _review_2014("U2", "B1", 3.0, 1400000100, "Fades fast", ""),
        '{"reviewerID": "U3", "asin": "B2", "overall": 4.0,',  # truncated line
        _review_2014("U2", "B3", 4.0, 1400000200, "No meta for this one"),
        _review_2014("U3", "B2", 9.0, 1400000300),
    ])
    write_jsonl(folder / "meta_Beauty.json.gz", [
        "{'asin': 'B1', 'title': 'Lipstick', 'description': 'Red.', 'categories': [['Beauty', 'Makeup'], "
        "['Beauty', 'Lips']], 'imUrl': 'http://img/B1.jpg', 'price': 12.5, 'brand': 'Acme', "
        "'salesRank': {'Beauty': 10}, 'related': {'also_bought': ['B2']}}",
        "{'asin': 'B2', 'title': 'Mascara', 'categories': [['Beauty']], 'imUrl': 'http://img/B2.jpg'}",
        "{'asin': 'B4', 'title': 'Never reviewed'}",
    ])
    return reviews


def test_amazon_2014_gz_with_literal_meta(tmp_path: Path) -> None:
    reviews = _amazon_2014(tmp_path)
    dataset, report = load_source("amazon", reviews)  # meta found beside: meta_Beauty.json.gz

    assert str(only_issue(report, "malformed_row")).startswith(f"{reviews}, line 3: not valid JSON")
    assert str(only_issue(report, "rating_out_of_range")).startswith(f"{reviews}, line 5, column 'rating'")
    assert str(only_issue(report, "unknown_item")).startswith(f"{reviews}, line 4, column 'item': item 'B3'")
    assert dataset.name == "reviews_Beauty_5" and dataset.rating_scale == (1.0, 5.0)
    assert dataset.item_map.ids.tolist() == ["B1", "B2", "B4", "B3"]  # meta order, then items without meta
    inter = dataset.interactions
    assert inter.weight.tolist() == [5.0, 3.0, 4.0]
    assert inter.timestamp is not None and inter.timestamp.tolist() == [1400000000, 1400000100, 1400000200]
    items = dataset.items.set_index("item_id")
    assert items.loc["B1", "title"] == "Lipstick" and items.loc["B1", "description"] == "Red."
    assert items.loc["B1", "categories"] == ["Beauty", "Makeup", "Lips"]
    assert items.loc["B1", "price"] == 12.5 and items.loc["B1", "brand"] == "Acme"
    assert items.loc["B1", "image_url"] == "http://img/B1.jpg"
    assert items.loc["B1", "reviews"] == "Love it. Lovely colour. Fades fast"
    assert items.loc["B3", "reviews"] == "Nice. No meta for this one"  # no meta, but its reviews are kept
    assert items.loc["B4", "reviews"] is None  # in the catalog, never reviewed
    assert dataset.item_columns.text == ["title", "description", "reviews"]
    assert dataset.item_columns.image is None  # URLs are not local files


def test_amazon_2018_gz_json_meta(tmp_path: Path) -> None:
    reviews = write_jsonl(tmp_path / "All_Beauty.json.gz", [
        {"overall": 5.0, "vote": "2", "verified": True, "reviewTime": "09 1, 2016", "reviewerID": "A1", "asin": "P1",
         "style": {"Size:": " 1 oz"}, "reviewText": "Smells good", "summary": "Five Stars", "unixReviewTime": 1472688000},
        {"overall": 2.0, "verified": False, "reviewerID": "A2", "asin": "P1", "reviewText": "meh",
         "summary": "Two", "unixReviewTime": 1472688001, "image": ["http://x"]},
        "not json at all",
        {"overall": 4.0, "reviewerID": "A2", "asin": "P2", "summary": "ok", "unixReviewTime": 1472688002},
    ])
    meta = write_jsonl(tmp_path / "meta_All_Beauty.json.gz", [
        {"asin": "P1", "title": "Soap", "description": ["Gentle.", "Unscented."], "category": ["Beauty", "Bath"],
         "brand": "Suds", "price": "$12.99", "imageURLHighRes": ["http://img/P1.jpg"], "also_buy": ["P2"]},
        {"asin": "P2", "title": "Shampoo", "description": [], "category": [], "price": "$5.00 - $9.00"},
        {"asin": "P3", "title": "Lotion", "price": "<span>call</span>"},
    ])
    dataset, report = load_source("amazon", reviews, LoaderOptions(meta=meta))
    assert str(only_issue(report, "malformed_row")).startswith(f"{reviews}, line 3")
    assert str(only_issue(report, "unparsable_attribute")).startswith(f"{meta}, line 3, column 'price'")
    items = dataset.items.set_index("item_id")
    assert items.loc["P1", "description"] == "Gentle. Unscented." and items.loc["P2", "description"] is None
    assert items.loc["P1", "categories"] == ["Beauty", "Bath"] and items.loc["P2", "categories"] == []
    assert items.loc["P1", "price"] == 12.99 and items.loc["P2", "price"] == 5.0
    assert items.loc["P1", "image_url"] == "http://img/P1.jpg"
    assert items.loc["P2", "reviews"] == "ok"
    assert (dataset.n_users, dataset.n_items, len(dataset.interactions)) == (2, 3, 3)


def test_without_meta_catalog_comes_from_reviews(tmp_path: Path) -> None:
    reviews = write_jsonl(tmp_path / "Toys_5.json", [
        _review_2014("U1", "T1", 5.0, 1, "x" * 5000), _review_2014("U2", "T2", 4.0, 2),
        _review_2014("U3", "T1", 4.0, 3, "second"),
    ])
    dataset, report = load_source("amazon", reviews)
    assert dict(report.counts) == {}
    assert dataset.item_map.ids.tolist() == ["T1", "T2"] and dataset.item_columns.text == ["reviews"]
    long_text = dataset.items["reviews"].iloc[0]
    assert long_text.startswith("Nice. xxx") and len(long_text) <= ITEM_REVIEW_CHARS


def test_clean_files_take_the_vectorised_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def per_line(*args: object, **kwargs: object) -> None:
        raise AssertionError("per-line fallback used for a clean file")

    monkeypatch.setattr(tabular_module, "_parse_lines", per_line)
    reviews = write_jsonl(tmp_path / "Music_5.json.gz", [_review_2014(f"U{k}", f"M{k % 3}", 4.0, k) for k in range(50)])
    dataset, _ = load_source("amazon", reviews)
    assert len(dataset.interactions) == 50 and dataset.n_items == 3


def test_folder_source_and_errors(tmp_path: Path) -> None:
    _amazon_2014(tmp_path)
    dataset, _ = load_source("amazon", tmp_path)
    assert dataset.items.set_index("item_id").loc["B1", "title"] == "Lipstick"
    write_jsonl(tmp_path / "other.json", [{"x": 1}])
    with pytest.raises(DataError, match="expected one reviews file"):
        load_source("amazon", tmp_path)
    with pytest.raises(DataError, match=r"other\.json, column 'reviewerID': no record has this field"):
        load_source("amazon", tmp_path / "other.json")
    with pytest.raises(DataError, match="meta file not found"):
        load_source("amazon", tmp_path / "reviews_Beauty_5.json.gz", LoaderOptions(meta=tmp_path / "nope.json"))


def test_one_bad_line_in_a_big_file_keeps_the_rest_vectorised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[int] = []
    per_line = tabular_module._parse_lines

    def counting(lines, numbers, *args):  # type: ignore[no-untyped-def]
        parsed.append(len(numbers))
        return per_line(lines, numbers, *args)

    monkeypatch.setattr(tabular_module, "_parse_lines", counting)
    records: list[dict[str, object] | str] = [_review_2014(f"U{k}", f"I{k % 7}", 4.0, k) for k in range(3000)]
    records[1776] = '{"reviewerID": "U1776", "asin": '  # line 1777
    records[2499] = _review_2014("U2499", "I0", 0.0, 2499)  # line 2500: rating out of range
    records[2000] = "   "  # a blank line is not a record
    reviews = write_jsonl(tmp_path / "Big_5.json.gz", records)
    dataset, report = load_source("amazon", reviews)
    assert str(only_issue(report, "malformed_row")).startswith(f"{reviews}, line 1777: not valid JSON")
    assert str(only_issue(report, "rating_out_of_range")).startswith(f"{reviews}, line 2500, column 'rating'")
    assert len(dataset.interactions) == 2997 and report.rows_read == 2999
    assert sum(parsed) <= 512  # only the block around the bad line went line by line
