"""Features stage: per-modality encoders, a content-addressed cache and FeatureSet.

Heavy model code is imported lazily by :func:`extract_features` and the ``load_*`` functions, so
importing this package does not load any model (nor torch). Extraction runs as plan -> encode ->
commit (``features.extract``); settings live in ``features.config``.
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
from fusionrec.features.config import FeaturesConfig, RuntimeConfig
from fusionrec.features.extract import (
    EncodedResult,
    EncoderHandle,
    ExtractionPlan,
    ExtractionResult,
    PlanBatch,
    commit,
    encode,
    encode_all,
    extract_features,
    plan,
)
from fusionrec.features.store import FeatureStore, content_key

__all__ = [
    "EncodedBatch",
    "EncodedResult",
    "Encoder",
    "EncoderHandle",
    "ExtractionPlan",
    "ExtractionReport",
    "ExtractionResult",
    "FeatureSet",
    "FeatureStore",
    "FeaturesConfig",
    "MaskedItem",
    "ModalityFeatures",
    "PlanBatch",
    "Provenance",
    "RuntimeConfig",
    "commit",
    "content_key",
    "encode",
    "encode_all",
    "extract_features",
    "plan",
]
