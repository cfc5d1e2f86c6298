"""Explanations per modality: leave-one-modality-out contributions, fuser weights, and evidence items.

``Explainer(model, features, titles=...).explain(user, items, history=...)`` (or ``explain_user``)
gives one :class:`ItemExplanation` per recommended item; see :mod:`fusionrec.explain.contributions`
for what removing a modality means for each model.
"""

from fusionrec.explain.evidence import EvidenceIndex, parse_genres, phrase
from fusionrec.explain.explainer import Explainer, driving_modality, explain_user, history_items
from fusionrec.explain.types import Evidence, ItemExplanation

__all__ = [
    "Evidence",
    "EvidenceIndex",
    "Explainer",
    "ItemExplanation",
    "driving_modality",
    "explain_user",
    "history_items",
    "parse_genres",
    "phrase",
]
