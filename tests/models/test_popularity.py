from __future__ import annotations

import numpy as np

from fusionrec.data.splits import Split
from fusionrec.models.popularity import MostPop

from .contract import RecommenderContract


class TestMostPop(RecommenderContract):
    def make_model(self) -> MostPop:
        return MostPop()

    def test_beats_mostpop_on_held_out_data(self) -> None:  # type: ignore[override]
        """MostPop is the baseline itself."""

    def test_scores_are_training_counts(self, planted: Split) -> None:
        model = self.fitted(planted)
        counts = np.bincount(planted.train.item, minlength=planted.n_items)
        np.testing.assert_array_equal(model.score(np.array([0, 1])), np.tile(counts, (2, 1)))
