"""Per-modality contributions to a score: leave-one-modality-out, and the fuser's own weights.

What "modality ``m`` removed" means here, the same for every model: the recommended item is scored
by the model's own feature path (``score_items(users, item_features)``) once as it is and once with
``m`` marked missing for that item (``present`` False, a zero row: the FeatureSet convention, never
a zero vector presented as data), so the model treats it exactly like an item that lacks ``m``;
the user's side (the content profile, the trained user vectors) is the one the model holds, unchanged.

- ``content``: the score is ``sum_m <p_u,m, v_i,m> / |p_u|`` over per-modality blocks, and a
  missing modality is a zero item block, so the contribution of ``m`` is exactly its block's term
  and the contributions sum to the score (dropping the block on the profile side too, with the
  profile's norm kept, is the same number; renormalising the shorter profile would be a refit).
- ``vbpr``: ``score_items`` is the content terms ``<theta_u + beta', c_i>``; the ID terms and
  the bias do not depend on content, so the difference is the change of the full score.
- ``two_tower``: ``score_items`` is the item tower without its ID embedding (what a cold item
  gets); with an ID embedding the full score's change can differ (the tower is not additive).
- ``ease_side`` reads content only when fitting (inside its item-item weights), and the ID models
  (``maps_cold_items``: content only maps items without interactions) score warm items from IDs:
  no score-time contribution exists, so none is reported (``None`` with the reason).

All variants of the ``k`` items are stacked into one FeatureSet of ``k * (M + 1)`` rows and scored
in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fusionrec.errors import ModelError
from fusionrec.explain.types import Contributions
from fusionrec.features.base import FeatureSet, ModalityFeatures
from fusionrec.fusion.fuser_base import Fuser
from fusionrec.fusion.item_content import ItemContent
from fusionrec.models.base import Recommender, SupportsColdStart

#: how each model's contributions are measured (the generic line for other score_items models)
METHODS = {
    "content": "leave-one-modality-out on the content profile's per-modality terms (they sum to the score)",
    "vbpr": "leave-one-modality-out on VBPR's content terms (ID factors and bias unchanged)",
    "two_tower": "leave-one-modality-out on the item tower without its ID embedding",
}
GENERIC_METHOD = "leave-one-modality-out on the model's feature scoring path (score_items)"


def item_content_module(model: Recommender) -> ItemContent | None:
    """The :class:`ItemContent` inside a torch model (vbpr, two_tower, freedom), if it has one."""
    module = getattr(model, "module", None)
    if not isinstance(module, torch.nn.Module):
        return None
    return next((m for m in module.modules() if isinstance(m, ItemContent)), None)


def scored_modalities(
    model: Recommender, features: FeatureSet, declared: Sequence[str] | None = None
) -> list[str]:
    """The modalities ``model`` reads, in FeatureSet order: ``declared`` (e.g. a bundle's recorded
    feature provenance), else its ItemContent's, else its ``modalities`` setting, else all of ``features``."""
    content = item_content_module(model)
    names = declared or (content.names if content is not None else None) or getattr(model, "modalities", None)
    wanted = set(names) if names else set(features.modalities)
    return [name for name in features.modalities if name in wanted]


def unavailable_reason(model: Recommender) -> str | None:
    """Why ``model`` has no score-time contributions (``None`` when it has them)."""
    name = model.name
    if not getattr(model, "uses_features", False):
        return f"{name} is an ID model: its scores read no item content (contributions n/a)"
    if getattr(model, "maps_cold_items", False):
        return (
            f"{name} scores trained items from their IDs; content only maps items without interactions (n/a)"
        )
    if not isinstance(model, SupportsColdStart):
        return f"{name} reads content only when fitting (inside its item weights): no score-time leave-one-out (n/a)"
    return None


def stacked_variants(features: FeatureSet, items: np.ndarray, names: Sequence[str]) -> FeatureSet:
    """``k * (len(names) + 1)`` rows: block 0 the ``(k,)`` items as they are, block ``j + 1`` the same
    items with ``names[j]`` missing (mask False, zero row, empty recorded text)."""
    k = len(items)
    rows = np.tile(np.asarray(items, dtype=np.int64), len(names) + 1)
    block = np.repeat(np.arange(len(names) + 1), k)
    out: dict[str, ModalityFeatures] = {}
    for name, modality in features.modalities.items():
        dropped = block == names.index(name) + 1 if name in names else np.zeros(len(rows), dtype=bool)
        matrix = np.where(dropped[:, None], np.float32(0.0), modality.matrix[rows])
        inputs = None
        if modality.inputs is not None:
            inputs = ["" if drop else modality.inputs[int(i)] for i, drop in zip(rows, dropped, strict=True)]
        out[name] = ModalityFeatures(matrix, modality.present[rows] & ~dropped, modality.provenance, inputs)
    return FeatureSet(ids=features.ids[rows], modalities=out, entity=features.entity)


def leave_one_out(
    model: Recommender, features: FeatureSet, user: int, items: np.ndarray, modalities: Sequence[str]
) -> Contributions:
    """Contributions of each of ``modalities`` to the scores of ``items`` (``(k,)``) for ``user``.

    ``features`` holds the model's modalities only (rows aligned to its items). ``values[m]`` is
    ``(k,)``: the content score minus the score with ``m`` missing (module docstring).
    """
    reason = unavailable_reason(model)
    if reason is not None:
        return Contributions(None, None, reason)
    if user < 0 or user >= model.n_users:
        return Contributions(None, None, "contributions need a user the model was trained with")
    items = np.asarray(items, dtype=np.int64).ravel()
    names = list(modalities)
    scorer: Any = model
    try:
        scores = np.asarray(
            scorer.score_items(np.array([user]), stacked_variants(features, items, names)), dtype=np.float64
        )
    except ModelError as exc:  # e.g. a vbpr / two_tower fitted without features
        return Contributions(None, None, f"{model.name}: {exc}")
    table = scores[0].reshape(len(names) + 1, len(items))
    values = {name: table[0] - table[j + 1] for j, name in enumerate(names)}
    return Contributions(values, table[0], METHODS.get(model.name, GENERIC_METHOD), tuple(names))


def has_learned_weights(fuser: Fuser) -> bool:
    """Whether the fuser weighs modalities itself (gates, attention), not the uniform default."""
    return type(fuser).modality_weights is not Fuser.modality_weights


def fuser_weights(model: Recommender, items: np.ndarray) -> tuple[tuple[str, ...], np.ndarray] | None:
    """``(modality names, (k, M) weights)`` of the model's fuser for ``items``, ``None`` without a
    fuser that learns them (read in eval mode from the model's own stored item features)."""
    content = item_content_module(model)
    if content is None or not has_learned_weights(content.fuser):
        return None
    device = next(iter(content.buffers())).device
    index = torch.as_tensor(np.asarray(items, dtype=np.int64), device=device)
    was_training = content.training
    content.eval()
    try:
        with torch.no_grad():
            weights = content.modality_weights(index)
    finally:
        content.train(was_training)
    return content.names, weights.detach().to("cpu", torch.float64).numpy()
