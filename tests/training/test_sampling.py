from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fusionrec.training.sampling import bpr_triples, contains, interaction_keys, sample_negatives


def test_negatives_are_never_positives_and_roughly_uniform() -> None:
    rng = np.random.default_rng(0)
    positives = sp.csr_matrix((rng.random((50, 20)) < 0.5).astype(np.float32))
    positives[0, :] = 1.0  # a user with every item but one
    positives[0, 7] = 0.0
    positives = sp.csr_matrix(positives)
    positives.eliminate_zeros()
    users = np.repeat(np.arange(50), 200)
    negatives = sample_negatives(users, positives, rng)
    dense = positives.toarray()
    assert not dense[users, negatives].any()
    assert (negatives[users == 0] == 7).all()
    counts = np.bincount(negatives[users == 1], minlength=20)
    allowed = dense[1] == 0
    assert (counts[~allowed] == 0).all() and counts[allowed].min() > 0


def test_bpr_triples_cover_each_positive_once() -> None:
    rng = np.random.default_rng(1)
    positives = sp.csr_matrix((rng.random((30, 40)) < 0.2).astype(np.float32))
    users, items, negatives = bpr_triples(positives, rng)
    assert len(users) == positives.nnz
    pairs = set(zip(users.tolist(), items.tolist(), strict=True))
    assert pairs == set(zip(*positives.nonzero(), strict=True))
    keys = interaction_keys(positives)
    assert contains(keys, users, items, 40).all() and not contains(keys, users, negatives, 40).any()
