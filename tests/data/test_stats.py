from __future__ import annotations

import numpy as np
import pandas as pd

from fusionrec.data.schema import Dataset, IdMap, Interactions, ItemColumns
from fusionrec.data.stats import dataset_stats, stats_table


def test_stats_hand_computed(tiny_dataset: Dataset) -> None:
    stats = dataset_stats(tiny_dataset)
    assert (stats.n_users, stats.n_items, stats.n_interactions) == (5, 6, 12)
    assert stats.density == 12 / 30
    # per-user counts 3, 2, 4, 1, 2 -> min 1, median 2, max 4
    assert stats.user_count_quantiles["q0"] == 1 and stats.user_count_quantiles["q50"] == 2
    assert stats.user_count_quantiles["q100"] == 4
    assert stats.rating_histogram == {"1": 1, "2": 2, "3": 2, "4": 3, "5": 4}
    assert stats.time_range == ("1970-01-01 00:16:40", "1970-01-01 00:18:30")
    assert stats.modality_coverage == {"text": 1.0}


def test_coverage_counts_empty_and_missing_as_absent() -> None:
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "title": ["x", "", None, "y"],
            "poster": ["a.jpg", None, None, None],
            "genres": [["g"], [], None, ["h"]],
        }
    )
    inter = Interactions(np.array([0, 0]), np.array([0, 3]), np.array([1.0, 1.0]), n_users=1, n_items=4)
    ds = Dataset("c", items, inter, IdMap(["u"]), IdMap(items["item_id"]),
                 item_columns=ItemColumns(text=["title"], image="poster", multi_valued=["genres"]))
    stats = dataset_stats(ds)
    assert stats.modality_coverage == {"text": 0.5, "image": 0.25, "attr:genres": 0.5}
    assert stats.n_items_interacted == 2 and stats.time_range is None
    assert stats_table(stats).row_count >= 8
