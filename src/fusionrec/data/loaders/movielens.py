"""MovieLens folders, layout detected from the files present.

- ``ml-100k``: ``u.data`` (tab, with timestamps), ``u.item`` (pipe, latin-1, 19 genre flags), ``u.user``.
- ``ml-1m``: ``ratings.dat``, ``movies.dat``, ``users.dat`` (``::``-separated, latin-1).
- ``ml-1m`` without timestamps (the shared research layout): ``ratings_no_timestamp.csv`` instead of
  ``ratings.dat``, plus ``movies_text.jsonl`` (or ``movies_extrainfos.dat``) with plot, director,
  actors, and ``posters/<movie_id>.jpg``.
- ``ml-latest`` (e.g. ml-latest-small): ``ratings.csv``, ``movies.csv`` (genres ``A|B``), ``tags.csv``.

Item text columns: ``title``, ``genres_text`` and, when present, ``director``, ``plot`` (OMDb) or
``tags`` (aggregated free-text tags). ``genres`` is a multi-valued attribute, ``year`` (from the
title) numeric. Users' ``gender``/``occupation`` are categorical and ``age`` numeric profile columns.
User and movie ids in the ratings file must be integers (else ``unparsable_number``, row skipped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.loaders.common import assemble_dataset, clean_interactions, read_delimited, read_utf8
from fusionrec.data.loaders.tabular import (
    as_optional_text,
    read_side_table,
    require_columns,
    split_multi_valued,
)
from fusionrec.data.schema import Dataset, ItemColumns, UserColumns
from fusionrec.data.validate import ValidationReport
from fusionrec.errors import DataError

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]
ML1M_OCCUPATIONS = [
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
]
OMDB_TEXT = ("director", "plot")  # item text columns taken from the OMDb extra info, in this order
OMDB_OTHER = ("actors", "writer", "rated", "released", "poster_url")
USER_COLUMNS = UserColumns(categorical=["gender", "occupation"], numeric=["age"])
LAYOUTS = ("ml-100k", "ml-1m", "ml-1m-no-timestamp", "ml-latest")


@dataclass
class _Parts:
    """What one layout reader produces, before the shared cleaning and assembly."""

    raw: pd.DataFrame
    lines: np.ndarray
    interactions_file: Path
    items: pd.DataFrame
    item_lines: np.ndarray
    items_file: Path
    rating_range: tuple[float, float]
    text: list[str] = field(default_factory=lambda: ["title", "genres_text"])
    users: pd.DataFrame | None = None


def detect_layout(folder: Path) -> str:
    """One of :data:`LAYOUTS`, from the rating file the folder holds."""
    if (folder / "u.data").is_file():
        return "ml-100k"
    if (folder / "ratings.dat").is_file():
        return "ml-1m"
    if (folder / "ratings_no_timestamp.csv").is_file():
        return "ml-1m-no-timestamp"
    if (folder / "ratings.csv").is_file() and (folder / "movies.csv").is_file():
        return "ml-latest"
    raise DataError(
        "not a MovieLens folder: expected u.data (ML-100K), ratings.dat (ML-1M), "
        "ratings_no_timestamp.csv (ML-1M without timestamps) or ratings.csv + movies.csv (ml-latest)",
        file=str(folder),
    )


def load_movielens(
    source: Path, *, name: str | None = None, check_media: bool = True
) -> tuple[Dataset, ValidationReport]:
    """Load a MovieLens folder of any supported layout (see the module docstring)."""
    folder = Path(source).expanduser().resolve()
    if not folder.is_dir():
        raise DataError("MovieLens source must be a folder", file=str(folder))
    layout = detect_layout(folder)
    report = ValidationReport(source=f"{folder} ({layout})")
    reader = {"ml-100k": _read_100k, "ml-1m": _read_1m, "ml-1m-no-timestamp": _read_1m,
              "ml-latest": _read_latest}[layout]
    parts = reader(folder, report)
    interactions = clean_interactions(parts.raw, parts.lines, report, file=str(parts.interactions_file),
                                      rating_range=parts.rating_range, integer_ids=True)
    items, text = parts.items, list(parts.text)
    items["year"] = _year_from_title(items["title"])
    text += _add_omdb_info(folder, items, report)
    image = _add_posters(folder, items)
    item_columns = ItemColumns(text=text, image=image, multi_valued=["genres"], numeric=["year"],
                               categorical=["rated"] if "rated" in items else [])
    dataset = assemble_dataset(
        name or folder.name,
        items,
        interactions,
        report,
        item_columns=item_columns,
        items_file=str(parts.items_file),
        interactions_file=str(parts.interactions_file),
        users=parts.users,
        user_columns=USER_COLUMNS if parts.users is not None else UserColumns(),
        rating_scale=parts.rating_range,
        media_root=str(folder) if image else None,
        check_media=check_media,
        source=str(folder),
        item_lines=parts.item_lines,
    )
    return dataset, report


def _read_100k(folder: Path, report: ValidationReport) -> _Parts:
    ratings = folder / "u.data"
    raw, lines = read_delimited(ratings, report, delimiter="\t", column_names=["user", "item", "rating", "timestamp"],
                                string_columns=["user", "item"])
    genres = _genre_names(folder / "u.genre", report)
    info = ["movie_id", "title", "release_date", "video_release_date", "imdb_url"]
    items_file = folder / "u.item"
    frame, item_lines = read_side_table(items_file, report, delimiter="|", encoding="latin-1", quoting=False,
                                        column_names=info + genres, string_columns=info)
    flags = frame[genres].fillna(0).to_numpy(dtype=np.int64) == 1
    names = np.asarray(genres, dtype=object)
    genre_lists = pd.Series([names[row].tolist() for row in flags], dtype=object)
    items = pd.DataFrame({"item_id": frame["movie_id"].to_numpy(),
                          "title": as_optional_text(frame["title"]).to_numpy()})
    items["genres"] = genre_lists.to_numpy()
    items["genres_text"] = _join(genre_lists)
    items["release_date"] = as_optional_text(frame["release_date"]).to_numpy()
    items["imdb_url"] = as_optional_text(frame["imdb_url"]).to_numpy()
    users = None
    if (folder / "u.user").is_file():
        user_frame, _ = read_side_table(folder / "u.user", report, delimiter="|", encoding="latin-1", quoting=False,
                                        column_names=["user_id", "age", "gender", "occupation", "zip"],
                                        string_columns=["user_id", "gender", "occupation", "zip"])
        users = _users(user_frame)
    return _Parts(raw[["user", "item", "rating", "timestamp"]], lines, ratings, items, item_lines, items_file,
                  (1.0, 5.0), users=users)


def _read_1m(folder: Path, report: ValidationReport) -> _Parts:
    if (folder / "ratings.dat").is_file():
        ratings = folder / "ratings.dat"
        raw, lines = read_delimited(ratings, report, delimiter="::", quoting=False,
                                    column_names=["user", "item", "rating", "timestamp"],
                                    string_columns=["user", "item"])
    else:
        ratings = folder / "ratings_no_timestamp.csv"
        frame, lines = read_delimited(ratings, report, delimiter=",", string_columns=["user_id", "movie_id"])
        require_columns(frame, ["user_id", "movie_id", "rating"], ratings)
        raw = pd.DataFrame({"user": frame["user_id"], "item": frame["movie_id"], "rating": frame["rating"]})
    items_file = folder / "movies.dat"
    movies, item_lines = read_side_table(items_file, report, delimiter="::", encoding="latin-1", quoting=False,
                                         column_names=["movie_id", "title", "genres"],
                                         string_columns=["movie_id", "title", "genres"])
    items = _items_with_genres(movies, "|")
    users = None
    if (folder / "users.dat").is_file():
        user_frame, _ = read_side_table(folder / "users.dat", report, delimiter="::", encoding="latin-1", quoting=False,
                                        column_names=["user_id", "gender", "age", "occupation", "zip"],
                                        string_columns=["user_id", "gender", "zip"])
        codes = pd.to_numeric(user_frame["occupation"], errors="coerce").to_numpy(dtype=np.float64)
        valid = ~np.isnan(codes) & (codes >= 0) & (codes < len(ML1M_OCCUPATIONS))
        occupation = np.full(len(codes), None, dtype=object)
        occupation[valid] = np.asarray(ML1M_OCCUPATIONS, dtype=object)[codes[valid].astype(np.int64)]
        user_frame["occupation"] = occupation
        users = _users(user_frame)
    return _Parts(raw, lines, ratings, items, item_lines, items_file, (1.0, 5.0), users=users)


def _read_latest(folder: Path, report: ValidationReport) -> _Parts:
    ratings = folder / "ratings.csv"
    frame, lines = read_delimited(ratings, report, delimiter=",", string_columns=["userId", "movieId"])
    require_columns(frame, ["userId", "movieId", "rating", "timestamp"], ratings)
    raw = pd.DataFrame({"user": frame["userId"], "item": frame["movieId"], "rating": frame["rating"],
                        "timestamp": frame["timestamp"]})
    del frame
    items_file = folder / "movies.csv"
    movies, item_lines = read_side_table(items_file, report, delimiter=",",
                                         string_columns=["movieId", "title", "genres"])
    require_columns(movies, ["movieId", "title", "genres"], items_file)
    movies = movies.rename(columns={"movieId": "movie_id"})
    movies["genres"] = movies["genres"].where(movies["genres"] != "(no genres listed)")
    items = _items_with_genres(movies, "|")
    text = ["title", "genres_text"]
    if (folder / "tags.csv").is_file():
        items["tags"] = _aggregate_tags(folder / "tags.csv", items["item_id"], report)
        text.append("tags")
    return _Parts(raw, lines, ratings, items, item_lines, items_file, (0.5, 5.0), text=text)


def _items_with_genres(movies: pd.DataFrame, separator: str) -> pd.DataFrame:
    genres = split_multi_valued(movies["genres"], separator)
    items = pd.DataFrame({"item_id": movies["movie_id"].to_numpy(),
                          "title": as_optional_text(movies["title"]).to_numpy()})
    items["genres"] = genres.to_numpy()
    items["genres_text"] = _join(genres)
    return items


def _join(lists: pd.Series, separator: str = ", ") -> np.ndarray:
    return np.asarray([separator.join(values) if len(values) else None for values in lists], dtype=object)


def _genre_names(path: Path, report: ValidationReport) -> list[str]:
    """ML-100K genre names in flag order, from ``u.genre`` (``name|index``) when it is there."""
    if not path.is_file():
        return list(ML100K_GENRES)
    pairs = [line.rsplit("|", 1) for line in read_utf8(path, report, encoding="latin-1").decode().splitlines()]
    by_index = {int(index): name for name, index in (p for p in pairs if len(p) == 2 and p[1].strip().isdigit())}
    if sorted(by_index) != list(range(len(by_index))) or not by_index:
        raise DataError("genre list is not numbered 0..n-1", file=str(path))
    return [by_index[i] for i in range(len(by_index))]


def _users(frame: pd.DataFrame) -> pd.DataFrame:
    users = pd.DataFrame({"user_id": frame["user_id"].to_numpy()})
    users["gender"] = as_optional_text(frame["gender"]).to_numpy()
    users["age"] = pd.to_numeric(frame["age"], errors="coerce").to_numpy(dtype=np.float64)
    users["occupation"] = as_optional_text(frame["occupation"]).to_numpy()
    users["zip"] = as_optional_text(frame["zip"]).to_numpy()
    return users


def _year_from_title(titles: pd.Series) -> np.ndarray:
    """Release year from a title like ``"Toy Story (1995)"`` (float64, NaN when absent)."""
    years = titles.astype("string").str.extract(r"\((\d{4})\)\s*$", expand=False)
    return pd.to_numeric(years, errors="coerce").to_numpy(dtype=np.float64)


def _aggregate_tags(path: Path, item_ids: pd.Series, report: ValidationReport) -> np.ndarray:
    """Per movie, its distinct free-text tags (case-insensitive, first spelling kept) joined by ', '."""
    tags, _ = read_side_table(path, report, delimiter=",", string_columns=["userId", "movieId", "tag"])
    require_columns(tags, ["movieId", "tag"], path)
    frame = pd.DataFrame({"item": tags["movieId"].astype("string").str.strip(),
                          "tag": tags["tag"].astype("string").str.strip()}).dropna()
    frame = frame[frame["tag"] != ""]
    frame = frame[~frame.assign(key=frame["tag"].str.lower()).duplicated(["item", "key"])]
    joined = frame.groupby("item", sort=False)["tag"].agg(", ".join)
    return as_optional_text(item_ids.astype("string").str.strip().map(joined)).to_numpy()


def _add_omdb_info(folder: Path, items: pd.DataFrame, report: ValidationReport) -> list[str]:
    """Join OMDb extra info (``movies_text.jsonl`` or ``movies_extrainfos.dat``) onto ``items`` in
    place; return the text columns it added. ``N/A`` counts as missing."""
    jsonl, dat = folder / "movies_text.jsonl", folder / "movies_extrainfos.dat"
    if jsonl.is_file():
        extra, _ = read_side_table(jsonl, report)
        id_column = "movie_id"
    elif dat.is_file():
        names = ["movie_id", "title", "year", "rated", "released", "genre", "director", "writer", "actors",
                 "plot", "poster_url"]
        extra, _ = read_side_table(dat, report, delimiter="::", quoting=False, column_names=names,
                                   string_columns=names)
        id_column = "movie_id"
    else:
        return []
    present = [c for c in (*OMDB_TEXT, *OMDB_OTHER) if c in extra]
    if id_column not in extra or not present:
        return []
    info = pd.DataFrame({c: as_optional_text(extra[c]) for c in present})
    info = info.where(info != "N/A", None)
    info.index = pd.Index(as_optional_text(extra[id_column]).to_numpy(dtype=object))
    info = info[~info.index.duplicated(keep="first")]
    keys = items["item_id"].astype("string").str.strip().to_numpy(dtype=object)
    position = info.index.get_indexer(pd.Index(keys))
    found = position >= 0
    for column in present:
        values = np.full(len(items), None, dtype=object)
        values[found] = info[column].to_numpy(dtype=object)[position[found]]
        items[column] = values
    return [c for c in OMDB_TEXT if c in present]


def _add_posters(folder: Path, items: pd.DataFrame) -> str | None:
    """``poster`` = ``posters/<movie_id>.jpg`` for the movies whose poster file is in the folder."""
    posters = folder / "posters"
    if not posters.is_dir():
        return None
    available = {entry.name for entry in posters.iterdir()}
    names = ("posters/" + items["item_id"].astype("string").str.strip() + ".jpg").to_numpy(dtype=object)
    has = np.asarray([name[len("posters/"):] in available for name in names], dtype=bool)
    poster = np.full(len(items), None, dtype=object)
    poster[has] = names[has]
    items["poster"] = poster
    return "poster"
