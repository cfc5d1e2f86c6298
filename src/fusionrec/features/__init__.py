"""Features stage: per-modality encoders, a content-addressed cache and FeatureSet.

Heavy model code is imported lazily by :func:`extract_features` and the ``load_*`` functions, so
importing this package does not load any model.
"""

from fusionrec.features.base import (
    EncodedBatch,
    Encoder,
    ExtractionReport,
    FeatureSet,
    MaskedItem,
    ModalityFeatures,
    Provenance,
)
from fusionrec.features.extract import ExtractionResult, FeaturesConfig, RuntimeConfig, extract_features
from fusionrec.features.store import FeatureStore, content_key

__all__ = [
    "EncodedBatch",
    "Encoder",
    "ExtractionReport",
    "ExtractionResult",
    "FeatureSet",
    "FeatureStore",
    "FeaturesConfig",
    "MaskedItem",
    "ModalityFeatures",
    "Provenance",
    "RuntimeConfig",
    "content_key",
    "extract_features",
]
