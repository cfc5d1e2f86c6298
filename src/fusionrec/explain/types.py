"""What an explanation of one recommended item holds (plain dataclasses, JSON-ready through ``to_dict``).

Kept free of numpy arrays and torch tensors so a server can return them as they are: every number
is a Python float, every item an int index into the model's item IdMap (the caller maps indices
to external ids with ``to_dict(item_ids=...)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Evidence:
    """A past item of the user that resembles the recommended item in one modality.

    ``similarity`` is the centred cosine of the two items' feature rows in ``modality`` (see
    :func:`fusionrec.fusion.vectors.centered_unit_rows`), in [-1, 1]; ``phrase`` reads like
    "poster like Toy Story (1995)"; ``shared`` lists the genres both items have (attributes only).
    """

    modality: str
    item: int
    similarity: float
    phrase: str
    shared: tuple[str, ...] = ()

    def to_dict(self, item_ids: Sequence[str] | np.ndarray | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "modality": self.modality,
            "item": self.item,
            "similarity": round(self.similarity, 6),
            "phrase": self.phrase,
        }
        if item_ids is not None:
            out["item_id"] = str(item_ids[self.item])
        if self.shared:
            out["shared"] = list(self.shared)
        return out


@dataclass(frozen=True)
class ItemExplanation:
    """Why one item was recommended to one user.

    - ``score``: the model's ranking score of (user, item).
    - ``content_score``: the part of the score the contributions decompose: the model's score of
      the item from its features (``score_items``); ``None`` without contributions. Equal to
      ``score`` for ``content``; VBPR's content terms (its ID terms and bias are left out);
      two_tower's item tower without the ID embedding.
    - ``contributions``: per modality, ``content_score`` minus the score of the same item with that
      modality marked missing (leave-one-modality-out); ``None`` when the model does not read
      content at score time (``method`` says why).
    - ``fuser_weights``: the fuser's gate / attention weights of this item per modality (0 on a
      missing one), ``None`` when the model has no fuser.
    - ``evidence``: the user's past items most similar to this one, per modality, best first.
    - ``driver``: the modality with the largest positive contribution (``None`` without
      contributions or when none is positive).
    """

    item: int
    score: float
    title: str | None = None
    content_score: float | None = None
    contributions: dict[str, float] | None = None
    fuser_weights: dict[str, float] | None = None
    evidence: tuple[Evidence, ...] = ()
    driver: str | None = None
    method: str = ""

    def evidence_for(self, modality: str | None) -> Evidence | None:
        """The best evidence in ``modality`` (``None``: the best of any modality), if there is one."""
        for entry in (
            self.evidence if modality is None else (e for e in self.evidence if e.modality == modality)
        ):
            return entry
        return None

    @property
    def headline(self) -> Evidence | None:
        """The evidence to show first: the driving modality's, else the most similar one."""
        return self.evidence_for(self.driver) or self.evidence_for(None)

    def to_dict(self, item_ids: Sequence[str] | np.ndarray | None = None) -> dict[str, Any]:
        """JSON-ready: numbers rounded to 6 digits, with external ids when ``item_ids`` is given."""

        def rounded(values: dict[str, float] | None) -> dict[str, float] | None:
            return None if values is None else {k: round(v, 6) for k, v in values.items()}

        out: dict[str, Any] = {"item": self.item}
        if item_ids is not None:
            out["item_id"] = str(item_ids[self.item])
        out |= {
            "title": self.title,
            "score": round(self.score, 6),
            "content_score": None if self.content_score is None else round(self.content_score, 6),
            "contributions": rounded(self.contributions),
            "fuser_weights": rounded(self.fuser_weights),
            "driver": self.driver,
            "evidence": [e.to_dict(item_ids) for e in self.evidence],
            "method": self.method,
        }
        return out


@dataclass(frozen=True)
class Contributions:
    """Leave-one-modality-out result for a batch of ``k`` items of one user.

    ``values``: ``{modality: (k,) float64}`` (``None`` when not available); ``content_score``:
    ``(k,)`` (``None`` likewise); ``method``: how they were measured or why they are missing.
    """

    values: dict[str, Any] | None
    content_score: Any | None
    method: str
    modalities: tuple[str, ...] = field(default=())
