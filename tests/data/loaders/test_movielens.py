from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from fusionrec.data.loaders import load_source
from fusionrec.data.loaders.movielens import detect_layout
from fusionrec.data.stats import dataset_stats
from fusionrec.errors import DataError

from .helpers import write, write_jsonl

FLAGS_TOY = "|".join(["0", "0", "0", "1", "1", "1"] + ["0"] * 13)  # Animation, Children's, Comedy
FLAGS_DRAMA = "|".join(["0"] * 8 + ["1"] + ["0"] * 10)


def _ml100k(folder: Path) -> Path:
    write(folder / "u.data", "1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t1\t4\t881250951\n")
    write(folder / "u.item", (f"1|Toy Story (1995)|01-Jan-1995||http://imdb/1|{FLAGS_TOY}\n"
                              f"2|Café Society (1995)|01-Jan-1995||http://imdb/2|{FLAGS_DRAMA}\n").encode("latin-1"))
    write(folder / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    return folder


def test_ml100k(tmp_path: Path) -> None:
    dataset, report = load_source("movielens", _ml100k(tmp_path / "ml-100k"))
    assert dict(report.counts) == {}  # u.item is read as latin-1: no encoding warning
    assert dataset.name == "ml-100k" and dataset.rating_scale == (1.0, 5.0)
    assert (dataset.n_users, dataset.n_items, len(dataset.interactions)) == (2, 2, 3)
    assert dataset.interactions.timestamp is not None and dataset.interactions.timestamp[0] == 881250949
    items = dataset.items
    assert items["title"].tolist() == ["Toy Story (1995)", "Café Society (1995)"]
    assert items["genres"].iloc[0] == ["Animation", "Children's", "Comedy"] and items["genres"].iloc[1] == ["Drama"]
    assert items["genres_text"].iloc[0] == "Animation, Children's, Comedy"
    assert items["year"].tolist() == [1995.0, 1995.0]
    assert dataset.item_columns.text == ["title", "genres_text"] and dataset.item_columns.multi_valued == ["genres"]
    assert dataset.users is not None
    assert dataset.users[["user_id", "age", "gender", "occupation"]].values.tolist() == [
        ["1", 24.0, "M", "technician"], ["2", 53.0, "F", "other"]]
    assert dataset.user_columns.categorical == ["gender", "occupation"] and dataset.user_columns.numeric == ["age"]


def _ml1m_common(folder: Path) -> None:
    write(folder / "movies.dat", "1::Toy Story (1995)::Animation|Children's|Comedy\n"
                                 "2::Amélie (2001)::Comedy|Romance\n3::Heat (1995)::Action\n".encode("latin-1"))
    write(folder / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")


def test_ml1m_official(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    _ml1m_common(folder)
    write(folder / "ratings.dat", "1::1::5::978300760\n1::2::3::978302109\n2::1::4::978301968\n2::9::4::978301969\n")
    dataset, report = load_source("movielens", folder)
    assert detect_layout(folder) == "ml-1m"
    assert report.counts["unknown_item"] == 1  # movie 9 is not in movies.dat
    assert dataset.item_map.ids.tolist() == ["1", "2", "3", "9"]
    assert dataset.items["title"].iloc[1] == "Amélie (2001)" and dataset.items["year"].iloc[1] == 2001.0
    assert dataset.interactions.timestamp is not None and dataset.interactions.timestamp.tolist()[0] == 978300760
    assert dataset.users is not None
    assert dataset.users["occupation"].tolist() == ["K-12 student", "self-employed"]  # codes 10 and 16
    assert dataset.users["age"].tolist() == [1.0, 56.0]


def test_ml1m_without_timestamps_with_plots_and_posters(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    _ml1m_common(folder)
    write(folder / "ratings_no_timestamp.csv", "user_id,movie_id,rating\n1,1,5\n1,2,3\n2,3,4\n")
    write_jsonl(folder / "movies_text.jsonl", [
        {"movie_id": 1, "title": "Toy Story", "rated": "G", "director": "John Lasseter", "plot": "Toys come alive."},
        {"movie_id": 2, "title": "Amélie", "rated": "R", "director": "Jean-Pierre Jeunet", "plot": "N/A"},
    ])
    write(folder / "posters" / "1.jpg", b"jpeg")
    write(folder / "posters" / "3.jpg", b"jpeg")
    dataset, report = load_source("movielens", folder)

    assert detect_layout(folder) == "ml-1m-no-timestamp" and report.n_errors == 0
    assert dataset.interactions.timestamp is None
    cols = dataset.item_columns
    assert cols.text == ["title", "genres_text", "director", "plot"] and cols.image == "poster"
    assert cols.categorical == ["rated"]
    items = dataset.items
    assert items["plot"].tolist() == ["Toys come alive.", None, None]  # "N/A" and no row count as missing
    assert items["director"].tolist()[:2] == ["John Lasseter", "Jean-Pierre Jeunet"]
    assert items["poster"].iloc[0] == "posters/1.jpg" and items["poster"].isna().iloc[1]
    assert dataset.media_path(items["poster"].iloc[2]) == folder / "posters" / "3.jpg"
    coverage = dataset_stats(dataset).modality_coverage
    assert coverage["image"] == pytest.approx(2 / 3) and coverage["text"] == 1.0


def test_ml_latest(tmp_path: Path) -> None:
    folder = tmp_path / "ml-latest-small"
    write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,11,0.5,964981247\n"
                                  "2,11,5.5,964981248\n")
    write(folder / "movies.csv", 'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
                                 '11,"American President, The (1995)",(no genres listed)\n')
    write(folder / "tags.csv", "userId,movieId,tag,timestamp\n2,1,pixar,1\n3,1,Pixar,2\n3,1,fun,3\n")
    dataset, report = load_source("movielens", folder)
    assert report.counts["rating_out_of_range"] == 1  # 5.5 > 5 (range 0.5..5)
    assert dataset.rating_scale == (0.5, 5.0) and dataset.interactions.weight.tolist() == [4.0, 0.5]
    items = dataset.items
    assert items["title"].iloc[1] == "American President, The (1995)"
    assert items["genres"].iloc[1] == [] and items["genres_text"].iloc[1] is None
    assert items["tags"].tolist() == ["pixar, fun", None]  # case-insensitive distinct tags
    assert dataset.item_columns.text == ["title", "genres_text", "tags"]
    assert dataset.users is None


def test_not_a_movielens_folder(tmp_path: Path) -> None:
    write(tmp_path / "ratings.txt", "1 2 3\n")
    with pytest.raises(DataError, match="not a MovieLens folder"):
        load_source("movielens", tmp_path)


# --- acceptance on the real data (skipped when shared/data is absent) ---------------------------


@pytest.mark.realdata
def test_real_ml1m(shared_data: Path) -> None:
    if not (shared_data / "ml-1m").is_dir():
        pytest.skip(f"{shared_data / 'ml-1m'} not present")
    start = time.perf_counter()
    dataset, report = load_source("movielens", shared_data / "ml-1m")
    elapsed = time.perf_counter() - start
    stats = dataset_stats(dataset)
    assert (stats.n_interactions, stats.n_users, stats.n_items_interacted, stats.n_items) == (1_000_209, 6_040, 3_706, 3_883)
    assert report.n_errors == 0 and dataset.interactions.timestamp is None
    assert stats.rating_histogram == {"1": 56_174, "2": 107_557, "3": 261_197, "4": 348_971, "5": 226_310}
    assert stats.modality_coverage["image"] == pytest.approx(3_867 / 3_883)  # every poster file found
    assert stats.modality_coverage["text"] == 1.0
    plot = dataset.items["plot"].notna().to_numpy()
    rated = np.bincount(dataset.interactions.item, minlength=dataset.n_items) > 0
    assert 3_600 < int((plot & rated).sum()) <= 3_706
    assert elapsed < 15, f"loading ML-1M took {elapsed:.1f}s"


@pytest.mark.realdata
def test_real_ml100k(shared_data: Path) -> None:
    if not (shared_data / "ml-100k").is_dir():
        pytest.skip(f"{shared_data / 'ml-100k'} not present")
    dataset, report = load_source("movielens", shared_data / "ml-100k")
    stats = dataset_stats(dataset)
    assert (stats.n_interactions, stats.n_users, stats.n_items) == (100_000, 943, 1_682)
    assert report.n_errors == 0 and stats.time_range is not None


@pytest.mark.realdata
def test_real_ml_latest_small(shared_data: Path) -> None:
    if not (shared_data / "ml-latest-small").is_dir():
        pytest.skip(f"{shared_data / 'ml-latest-small'} not present")
    dataset, report = load_source("movielens", shared_data / "ml-latest-small")
    stats = dataset_stats(dataset)
    assert (stats.n_interactions, stats.n_users, stats.n_items_interacted) == (100_836, 610, 9_724)
    assert stats.n_items == 9_742 and report.n_errors == 0
    assert dataset.items["tags"].notna().sum() > 1_000
