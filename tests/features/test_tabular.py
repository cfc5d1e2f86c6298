"""Attribute and user-profile encoders: one-hot / hashed / codes, multi-hot, missing-aware numeric."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from fusionrec.data.schema import ItemColumns, UserColumns
from fusionrec.features.tabular import (
    AttributesConfig,
    CategoricalEmbedding,
    CategoricalEncoder,
    MultiHotEncoder,
    NumericEncoder,
    TableEncoder,
    categorical_codes,
    encode_item_attributes,
    user_feature_set,
)

from .conftest import make_dataset


def test_categorical_onehot_with_other_and_missing() -> None:
    encoder = CategoricalEncoder(column="rated", min_count=2).fit(["PG", "PG", "R", "R", "G", None])
    assert encoder.vocabulary == ["PG", "R"]
    matrix = encoder.transform(["PG", "G", None, "NC-17"])
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 1]])
    assert encoder.feature_names == ["rated=PG", "rated=R", "rated=<other>"]


def test_categorical_hash_is_stable_and_needs_no_vocabulary() -> None:
    encoder = CategoricalEncoder(column="city", mode="hash", hash_dim=8)
    a = encoder.transform(["Paris", "Lyon", "Paris", None])
    assert a.shape == (4, 8) and a.sum(axis=1).tolist() == [1, 1, 1, 0]
    np.testing.assert_array_equal(a[0], a[2])
    np.testing.assert_array_equal(
        CategoricalEncoder(column="city", mode="hash", hash_dim=8).transform(["Paris"])[0], a[0]
    )


def test_multi_hot_accepts_lists_and_separated_strings() -> None:
    encoder = MultiHotEncoder(column="genres").fit([["Comedy", "Drama"], "Comedy|Horror", [], None])
    matrix = encoder.transform([["Comedy", "Drama"], "Comedy|Horror", [], "Drama, Comedy"])
    names = encoder.feature_names
    assert names[0] == "genres=Comedy"
    assert matrix.sum(axis=1).tolist() == [2, 2, 0, 2]


def test_numeric_is_standardised_and_missing_aware() -> None:
    encoder = NumericEncoder(column="year").fit([1990, 2000, None, "n/a"])
    matrix = encoder.transform([1990, 2000, None])
    np.testing.assert_allclose(matrix[:, 0], [-1, 1, 0])
    np.testing.assert_array_equal(matrix[:, 1], [0, 0, 1])


def test_item_attributes_and_state_roundtrip() -> None:
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "rated": ["PG", "R", None],
            "genres": [["Comedy"], ["Drama", "Comedy"], []],
            "year": [1990.0, None, 2000.0],
        }
    )
    dataset = make_dataset(
        items, ItemColumns(categorical=["rated"], multi_valued=["genres"], numeric=["year"])
    )
    encoded = encode_item_attributes(dataset, AttributesConfig())
    assert encoded.matrix.shape == (3, 3 + 2 + 2) and encoded.present.all()
    restored = TableEncoder.from_dict(encoded.encoder.to_dict())
    matrix, _ = restored.transform(items)
    np.testing.assert_array_equal(matrix, encoded.matrix)
    assert restored.fingerprint == encoded.fingerprint


def test_user_profiles_movielens_style() -> None:
    users = pd.DataFrame(
        {
            "user_id": ["1", "2", "3"],
            "gender": ["F", "M", "M"],
            "age": [1.0, 56.0, 25.0],
            "occupation": ["K-12 student", "self-employed", None],
        }
    )
    items = pd.DataFrame({"item_id": ["a"]})
    dataset = make_dataset(
        items,
        ItemColumns(),
        users=users,
        user_columns=UserColumns(categorical=["gender", "occupation"], numeric=["age"]),
    )
    features = user_feature_set(dataset)
    profile = features["profile"]
    assert features.entity == "user" and list(features.ids) == ["1", "2", "3"]
    assert profile.matrix.shape == (3, 3 + 3 + 2)
    names = profile.provenance.extra["columns"]
    assert names[:3] == ["gender=M", "gender=F", "gender=<other>"]


def test_categorical_codes_feed_a_learned_embedding() -> None:
    frame = pd.DataFrame({"gender": ["F", "M", None], "occupation": ["a", "b", "a"]})
    codes, cardinalities = categorical_codes(frame, ["gender", "occupation"])
    assert codes[2, 0] == 0 and cardinalities == [4, 4]
    embedding = CategoricalEmbedding(cardinalities, dim=4)
    out = embedding(torch.from_numpy(codes))
    assert out.shape == (3, 8) and torch.all(out[2, :4] == 0)  # missing -> zero vector
