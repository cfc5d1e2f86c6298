"""Diversity re-ranking of a model's candidate lists: MMR and fast greedy DPP MAP inference over
any item feature space (fused content, one modality, or the model's own item vectors).

See :func:`rerank` (the entry point), :mod:`fusionrec.rerank.greedy` (the algorithms) and
:mod:`fusionrec.rerank.space` (spaces and similarity).
"""

from fusionrec.rerank.core import RERANK_METHODS, rerank
from fusionrec.rerank.greedy import dpp_select, mmr_select, normalize_relevance
from fusionrec.rerank.space import FUSED, MODEL, DenseRows, ItemSimilarity, item_space, space_names

__all__ = [
    "FUSED",
    "MODEL",
    "RERANK_METHODS",
    "DenseRows",
    "ItemSimilarity",
    "dpp_select",
    "item_space",
    "mmr_select",
    "normalize_relevance",
    "rerank",
    "space_names",
]
