"""Turning a posted item (title, description, genres, an image) into a FeatureSet row the model reads.

Each modality is encoded by the encoder that made the catalogue's features, checked by
fingerprint; a modality that cannot be encoded here is *masked* (present False), never filled with
a fake vector, and the response says which were encoded:

- text: rendered with the catalogue's text columns (title, genres, the longest text column gets
  the description) and the default template, encoded by the matching text encoder;
- image: decoded with Pillow (already validated by the API), encoded by the default image encoder
  when its fingerprint matches the catalogue's image features;
- attributes / audio: masked (their encoders are fitted on the catalogue; refit with a retrain).
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.errors import ModelError
from fusionrec.features.base import FeatureSet, ModalityFeatures

log = logging.getLogger(__name__)


class NewItemEncoder:
    """Encoders matching ``features`` (the catalogue's FeatureSet), loaded on first use."""

    def __init__(self, features: FeatureSet, text_columns: list[str], text_encoder: Any | None = None) -> None:
        self.features = features
        self.text_columns = text_columns or ["title"]
        self._text = text_encoder
        self._image: Any | None = None
        self._image_failed = False

    def _text_encoder(self) -> Any:
        if self._text is None:
            from fusionrec.coldstart.text_query import load_matching_text_encoder

            self._text = load_matching_text_encoder(self.features)
        return self._text

    def _image_encoder(self) -> Any | None:
        if self._image is None and not self._image_failed:
            from fusionrec.features.config import FeaturesConfig
            from fusionrec.features.extract import load_encoder

            try:
                encoder = load_encoder("image", FeaturesConfig(), device="cpu", threads=1, model_dir=None)
            except Exception as exc:  # no image model here: the modality stays masked
                log.warning("no image encoder for new items: %s", exc)
                self._image_failed = True
                return None
            if encoder.fingerprint != self.features.modalities["image"].provenance.fingerprint:
                log.warning("the default image encoder did not make the catalogue's image features; new posters stay masked")
                self._image_failed = True
                return None
            self._image = encoder
        return self._image

    def render_text(self, title: str, description: str, genres: list[str]) -> str:
        from fusionrec.features.text import render_item_texts

        longest = self.text_columns[-1]
        values: dict[str, str] = {}
        for column in self.text_columns:
            if column == "title":
                values[column] = title
            elif "genre" in column or "categor" in column:
                values[column] = ", ".join(genres)
            elif column == longest:
                values[column] = description
            else:
                values[column] = ""
        items = pd.DataFrame([{key: (value if value else None) for key, value in values.items()}])
        stub = SimpleNamespace(items=items, item_columns=SimpleNamespace(text=self.text_columns))
        return render_item_texts(stub)[0]  # type: ignore[arg-type]

    def encode(self, item_id: str, title: str, description: str, genres: list[str],
               image: Path | None) -> tuple[FeatureSet, list[str]]:
        """A one-row FeatureSet with the catalogue's modalities and the list of those actually encoded."""
        encoded: list[str] = []
        modalities: dict[str, ModalityFeatures] = {}
        for name, catalogue in self.features.modalities.items():
            row = np.zeros((1, catalogue.matrix.shape[1]), dtype=np.float32)
            present = np.zeros(1, dtype=bool)
            if name == "text":
                text = self.render_text(title, description, genres)
                if text.strip():
                    row[0] = np.asarray(self._text_encoder().encode([text]), dtype=np.float32)[0]
                    present[0] = True
            elif name == "image" and image is not None:
                encoder = self._image_encoder()
                if encoder is not None:
                    row[0] = np.asarray(encoder.encode([image]), dtype=np.float32)[0]
                    present[0] = True
            if present[0]:
                encoded.append(name)
            modalities[name] = ModalityFeatures(row, present, catalogue.provenance)
        if not encoded:
            raise ModelError("the item has no content this server can encode (give a title or description)")
        return FeatureSet(ids=np.array([item_id]), modalities=modalities), encoded


def save_upload(media: Path, item_id: str, image: bytes, suffix: str) -> str:
    """Store an uploaded (validated) image under ``media/uploads``; its path relative to ``media``."""
    folder = media / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{item_id.replace(':', '_').replace('@', '_')}{suffix}"
    (folder / name).write_bytes(image)
    return f"uploads/{name}"
