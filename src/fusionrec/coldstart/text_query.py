"""Free text as a query in the item text space: the encoder that made the features, and retrieval.

A user's description ("space adventures with robots") is encoded by the same text encoder, with
the same settings, as the items' text features, so it lands in the same space; the check is the
encoder fingerprint the FeatureSet recorded (a different encoder is an error, never a silent
mismatch). Similarity is the centred cosine the content models use
(:func:`fusionrec.fusion.vectors.centered_unit_rows` with the catalogue's centre).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from fusionrec.errors import ModelError
from fusionrec.fusion.vectors import centered_unit_rows, modality_center


class TextEncoderLike(Protocol):
    """An :class:`~fusionrec.features.base.Encoder` of texts (``fingerprint`` names its settings)."""

    @property
    def fingerprint(self) -> str: ...

    def encode(self, batch: Sequence[Any]) -> np.ndarray: ...


def load_matching_text_encoder(features: Any, encoder: str = "minilm") -> TextEncoderLike:
    """The text encoder ``encoder`` (``minilm``, ``smollm2`` or a folder) with the settings recorded
    in ``features["text"]``'s fingerprint; ModelError when it is not the encoder that made them."""
    from fusionrec.features.config import TextEncoderConfig
    from fusionrec.features.text import load_text_encoder

    if "text" not in getattr(features, "modalities", {}):
        raise ModelError("free-text queries need text features (extract them with `fusionrec features -m text`)")
    provenance = features.modalities["text"].provenance
    try:
        recorded = json.loads(provenance.fingerprint)
    except (TypeError, ValueError):
        recorded = {}
    settings = {key: recorded[key] for key in ("max_length", "normalize", "instruction", "dtype") if key in recorded}
    if recorded.get("pooling") in ("mean", "cls", "last", "auto"):
        settings["pooling"] = recorded["pooling"]
    try:
        config = TextEncoderConfig(encoder=encoder, **settings)
    except ValueError:
        config = TextEncoderConfig(encoder=encoder)
    loaded = load_text_encoder(config)
    if loaded.fingerprint != provenance.fingerprint:
        raise ModelError(
            f"the text features were made by {provenance.encoder!r} with other settings than {encoder!r}: "
            "pass the encoder that made them (--text-encoder NAME_OR_PATH)"
        )
    return loaded


class TextRetriever:
    """Items whose text is closest to a free-text query (centred cosine in the text feature space).

    ``features``: a FeatureSet with a ``text`` modality aligned to the model's items.
    """

    def __init__(self, features: Any, encoder: TextEncoderLike) -> None:
        if "text" not in getattr(features, "modalities", {}):
            raise ModelError("free-text queries need text features")
        text = features.modalities["text"]
        if encoder.fingerprint != text.provenance.fingerprint:
            raise ModelError(f"the query encoder is not the one that made the text features ({text.provenance.encoder})")
        self.encoder = encoder
        self.center = modality_center(text.matrix, text.present)
        self.items = centered_unit_rows(text.matrix, text.present, self.center)  # (n_items, d), zero rows: no text

    def similarity(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), n_items)`` float32 centred cosines (0 for items without text)."""
        if any(not str(t).strip() for t in texts):
            raise ModelError("a text query is empty")
        query = np.asarray(self.encoder.encode(list(texts)), dtype=np.float32)
        query = centered_unit_rows(query, None, self.center)
        return np.asarray(query @ self.items.T, dtype=np.float32)

    def top_items(self, texts: Sequence[str], n: int) -> np.ndarray:
        """``(len(texts), n)`` int64 indices of the ``n`` most similar items, best first."""
        from fusionrec.ranking.topk import as_score_tensor, top_k_items

        items, _ = top_k_items(as_score_tensor(self.similarity(texts)), n)
        return items
