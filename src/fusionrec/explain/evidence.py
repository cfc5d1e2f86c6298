"""Evidence per modality: the user's past items most like the recommended one ("poster like X").

Similarity is the cosine of centred unit rows (:func:`fusionrec.fusion.vectors.centered_unit_rows`,
centre = the catalogue's mean present unit row), the measure the content model and the item
graphs use: raw pretrained embeddings share a large common direction, so an uncentred cosine
mostly says "both are movies". The rows are computed once per catalogue (``EvidenceIndex``), then
each request is one ``(k, d) @ (d, |history|)`` product per modality. An item lacking a modality
gets no evidence in it, and history items lacking it are never evidence for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fusionrec.explain.types import Evidence
from fusionrec.features.base import FeatureSet
from fusionrec.features.tabular import split_multi
from fusionrec.fusion.vectors import centered_unit_rows

#: the phrase per modality ("{title}" is the past item's title); other modalities: "<name> like {title}"
PHRASES = {
    "image": "poster like {title}",
    "text": "plot like {title}",
    "attributes": "same genre as {title}",
    "audio": "sounds like {title}",
}
ATTRIBUTES = "attributes"


def phrase(modality: str, title: str, shared: Sequence[str] | None = None) -> str:
    """The evidence phrase; for attributes with known genres it names the ``shared`` ones
    ("same genre (Comedy) as Toy Story") and says "similar attributes" when none is shared."""
    if modality == ATTRIBUTES and shared is not None:
        return f"same genre ({', '.join(shared)}) as {title}" if shared else f"similar attributes to {title}"
    return PHRASES.get(modality, modality + " like {title}").format(title=title)


def parse_genres(values: Sequence[object] | np.ndarray) -> list[tuple[str, ...]]:
    """A multi-valued items column (lists, or ``A|B`` / ``A, B`` strings) as one tuple per item."""
    return [tuple(split_multi(value)) for value in values]


class EvidenceIndex:
    """Centred unit rows of every modality of a catalogue, for "most similar past item" lookups.

    Parameters
    ----------
    features: the catalogue's FeatureSet (``(n_items, d_m)`` matrices + present masks).
    titles: ``(n_items,)`` display names (default: the FeatureSet's item ids).
    genres: one tuple of genre names per item (e.g. :func:`parse_genres` of a ``genres`` column),
        named in the attributes phrase; ``None``: not known.
    """

    def __init__(
        self,
        features: FeatureSet,
        titles: Sequence[str] | np.ndarray | None = None,
        genres: Sequence[Sequence[str]] | None = None,
    ) -> None:
        n_items = len(features.ids)
        self.titles = np.asarray(features.ids if titles is None else titles).astype(str)
        if len(self.titles) != n_items or (genres is not None and len(genres) != n_items):
            raise ValueError(f"titles / genres must have one entry per item ({n_items})")
        self.genres = None if genres is None else [tuple(g) for g in genres]
        self.rows: dict[str, np.ndarray] = {}  # modality -> (n_items, d) centred unit rows (0 = missing)
        self.present: dict[str, np.ndarray] = {}  # modality -> (n_items,) bool
        for name, modality in features.modalities.items():
            rows = centered_unit_rows(modality.matrix, modality.present)
            self.rows[name] = rows
            self.present[name] = np.asarray(modality.present, dtype=bool) & rows.any(axis=1)

    @property
    def modalities(self) -> list[str]:
        return list(self.rows)

    def similar(self, items: np.ndarray, history: np.ndarray, per_modality: int = 1) -> list[list[Evidence]]:
        """Per item of ``items`` (``(k,)``), up to ``per_modality`` past items of ``history``
        (``(h,)`` indices) per modality, most similar first over all modalities; an item is never its own evidence."""
        items = np.asarray(items, dtype=np.int64).ravel()
        history = np.unique(np.asarray(history, dtype=np.int64).ravel())
        found: list[list[Evidence]] = [[] for _ in items]
        for name, rows in self.rows.items():  # a loop over the few modalities
            past = history[self.present[name][history]]
            if not len(past) or per_modality < 1:
                continue
            sims = rows[items] @ rows[past].T  # (k, |past|)
            sims[items[:, None] == past[None, :]] = -np.inf
            sims[~self.present[name][items]] = -np.inf
            n = min(per_modality, len(past))
            top = np.argsort(-sims, axis=1, kind="stable")[:, :n]  # (k, n)
            best = np.take_along_axis(sims, top, axis=1)
            for row, (cols, values) in enumerate(zip(top, best, strict=True)):  # k items x n
                for col, value in zip(cols, values, strict=True):
                    if np.isfinite(value):
                        found[row].append(self._evidence(name, int(items[row]), int(past[col]), float(value)))
        for entries in found:
            entries.sort(key=lambda e: -e.similarity)
        return found

    def _evidence(self, modality: str, item: int, past: int, similarity: float) -> Evidence:
        shared: tuple[str, ...] | None = None
        if modality == ATTRIBUTES and self.genres is not None:
            theirs = set(self.genres[past])
            shared = tuple(g for g in self.genres[item] if g in theirs)
        return Evidence(
            modality, past, similarity, phrase(modality, str(self.titles[past]), shared), shared or ()
        )
