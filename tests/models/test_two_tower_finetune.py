"""two_tower with text_finetune: the text encoder's last layer trains with the recommendation loss,
at its own rate, and a saved model gives the same scores; cold items are refused clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fusionrec.data.schema import Dataset, IdMap, Interactions, ItemColumns
from fusionrec.data.splits import Split
from fusionrec.errors import ModelError
from fusionrec.eval.evaluator import Evaluator
from fusionrec.features.config import TextEncoderConfig
from fusionrec.features.extract import extract_features
from fusionrec.features.text import load_text_encoder
from fusionrec.models.popularity import MostPop
from fusionrec.models.registry import load_model
from fusionrec.models.two_tower import TwoTower
from fusionrec.models.two_tower_text import TEXT_INPUT

from .conftest import planted_split

CLUSTER_WORDS = [["space", "alien", "ship"], ["love", "city", "night"], ["war", "crew", "dark"],
                 ["toys", "boy", "room"], ["bank", "robbers", "detective"], ["family", "friends", "old"]]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT with a word-level vocabulary, saved as a local model folder."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny-bert-tt")
    words = sorted({w for group in CLUSTER_WORDS for w in group} | {"a", "story", "about", "the"})
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    transformers.BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(words) + 5, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=32)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def _text_features(split: Split, folder: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    cluster = np.arange(split.n_items) // 20
    texts = ["a story about the " + " ".join(rng.choice(CLUSTER_WORDS[c], size=4)) for c in cluster]
    ids = list(split.item_map.ids)
    dataset = Dataset(
        name="tt-finetune", items=pd.DataFrame({"item_id": ids, "plot": texts}),
        interactions=Interactions(np.zeros(1), np.zeros(1), np.ones(1), n_users=1, n_items=len(ids)),
        user_map=IdMap(["u"]), item_map=IdMap(ids), item_columns=ItemColumns(text=["plot"]),
    )  # fmt: skip
    encoder = load_text_encoder(TextEncoderConfig(encoder=str(folder), max_length=16))
    return extract_features(dataset, ["text"], cache_dir=tmp_path / "cache", progress=False, encoders={"text": encoder}).features


def test_finetuning_trains_the_text_layer_and_saves_self_contained(tiny_bert: Path, tmp_path: Path) -> None:
    split = planted_split()
    features = _text_features(split, tiny_bert, tmp_path)
    finetune = {"model": str(tiny_bert), "layers": 1, "learning_rate": 1e-3, "max_length": 16}
    model = TwoTower(text_finetune=finetune, epochs=15, min_steps=0, patience=3, seed=0)
    # the untrained encoder's top layer, to compare against
    untrained = TwoTower(text_finetune=finetune, epochs=1, min_steps=0, seed=0)
    untrained.n_users, untrained.n_items = split.n_users, split.n_items
    untrained._fit_features = features
    before = {k: v.clone() for k, v in untrained._build_module().state_dict().items() if TEXT_INPUT in k and "layers" in k}
    model.fit(split.train, features=features, valid=split.valid, item_ids=split.item_map.ids)
    after = model._module().state_dict()
    assert before and any(not torch.equal(before[k], after[k]) for k in before), "the text layer did not train"
    assert model._module().items.content is None  # the only modality is text: it comes from the encoder
    evaluator = Evaluator(ks=(10,), beyond=False)
    ours = evaluator.evaluate(model, split, on="test").mean()["recall@10"]
    baseline = evaluator.evaluate(MostPop().fit(split.train), split, on="test").mean()["recall@10"]
    assert ours > baseline + 0.05, (ours, baseline)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    users = np.arange(split.n_users)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    with pytest.raises(ModelError, match="text_finetune"):
        model.score_items(users[:2], features)
