"""A trainable text tower: the last N layers of a sentence encoder, fine-tuned with the recommender.

The frozen lower layers run once: every item text is tokenised once, passed through the embeddings
and the frozen layers (no grad), and the hidden states at the input of the first trainable layer are
cached per item, truncated to the text's own token count and packed in one ``(n_tokens, d)`` tensor
(float16 by default: 2 bytes per value, e.g. 3,883 texts x 128 tokens x 384 = 0.38 GB at most).
A training step then runs only the trainable top layers and the pooling (mean / CLS / last token,
then L2 normalisation, as the features stage and sentence-transformers do) on the batch's unique
items, in length-sorted micro-batches. With no training the output equals the frozen text
features of the same texts and settings (float16 cache: within ~1e-4; float32: ~1e-6).

::

    tower = TrainableTextEncoder.from_features(feature_set, n_trainable_layers=1, max_length=128)
    z = tower(items)                 # (len(items), tower.dim); zero rows where tower.present is False
    groups = tower.parameter_groups(2e-5)
    vectors = tower.encode_all()     # (n_items, dim), eval mode, no grad

Saving: the module's ``state_dict`` holds the trainable layers' weights plus small uint8/int64
buffers with the item texts and the settings (model, fingerprint, Hugging Face config), so
``TrainableTextEncoder.from_state(arrays, prefix)`` rebuilds it without the feature directory.
The frozen cache is *not* saved (hundreds of MB, and a deterministic function of the frozen model
and the texts): it is recomputed on first use after loading, from the model named at fit time
(checked by fingerprint). A fitted recommender scores from its exported vectors, so loading one
never needs it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusionrec.errors import ModelError
from fusionrec.features.config import Pooling
from fusionrec.fusion.text_frozen import (
    DTYPES,
    CacheDtype,
    bytes_tensor,
    encoder_layers,
    frozen_hidden,
    load_text_model,
    pack_texts,
    padded,
    split_model,
    tokenize,
    unpack_texts,
)
from fusionrec.fusion.text_inputs import feature_text_settings, item_texts

log = logging.getLogger(__name__)

TEXT_TOWER_FORMAT = 1
_VERIFY_ATOL = {"float16": 2e-3, "bfloat16": 1e-2, "float32": 1e-4}

__all__ = ["TrainableTextEncoder", "feature_text_settings", "item_texts"]


class TrainableTextEncoder(torch.nn.Module):
    """``(b,)`` item indices -> ``(b, dim)`` pooled text vectors; only the last N layers train.

    Parameters
    ----------
    texts: one text per item index; ``None`` or blank = the item has no text (``present`` False,
        its output row is zero and must be masked by the caller, as for any missing modality).
    model: ``"minilm"`` (the default all-MiniLM-L6-v2 package) or a local Hugging Face /
        sentence-transformers folder of a BERT-style encoder (what ``features.text`` accepts).
    n_trainable_layers: the last N transformer layers are trained; the embeddings and the
        layers below stay frozen (0: nothing trains, the cache holds the final hidden states).
    max_length: tokens per text (capped by the model's own maximum).
    pooling, normalize, instruction: as in the features stage (``auto``: the model's pooling).
    cache_dtype: storage of the cached frozen hidden states.
    micro_batch: texts per forward pass of the top layers (sorted by length, to pad little).
    device: where the module is put (it moves with ``.to()``; the cache is built where it is then).
    build_cache: build the frozen cache now; else on first use, on the module's device then.
    verify: at construction, check on a few texts that frozen layers + top layers + pooling
        reproduce the whole model's output (an unsupported architecture fails loudly).
    """

    present: torch.Tensor
    meta_json: torch.Tensor
    texts_utf8: torch.Tensor
    text_offsets: torch.Tensor
    cache_hidden: torch.Tensor | None
    cache_offsets: torch.Tensor | None
    cache_lengths: torch.Tensor | None

    def __init__(
        self,
        texts: Sequence[str | None],
        *,
        model: str | Path = "minilm",
        n_trainable_layers: int = 1,
        max_length: int = 128,
        pooling: Pooling = "auto",
        normalize: bool = True,
        instruction: str = "",
        cache_dtype: CacheDtype = "float16",
        micro_batch: int = 64,
        device: str | torch.device = "cpu",
        build_cache: bool = False,
        verify: bool = True,
    ) -> None:
        super().__init__()
        if cache_dtype not in DTYPES:
            raise ModelError(f"cache_dtype must be one of {sorted(DTYPES)}, got {cache_dtype!r}")
        folder = Path(str(model)).expanduser()
        settings = {"model": str(folder.resolve()) if folder.exists() else str(model), "max_length": max_length,
                    "pooling": pooling, "normalize": normalize, "instruction": instruction}  # fmt: skip
        encoder = load_text_model(settings, device)
        clean = [t if t is not None and t.strip() else "" for t in texts]
        sample = [i for i, t in enumerate(clean) if t][:4]
        reference = encoder.encode([clean[i] for i in sample]) if verify and sample else None  # whole model
        bottom, top = split_model(encoder.model, n_trainable_layers)
        meta = {
            "format": TEXT_TOWER_FORMAT, **settings, "max_length": int(encoder.max_length),
            "pooling": encoder.pooling, "fingerprint": encoder.fingerprint, "name": encoder.name,
            "n_layers": len(bottom.encoder.layer) + len(top), "n_trainable_layers": int(n_trainable_layers),
            "cache_dtype": cache_dtype, "hf_config": bottom.config.to_dict(),
        }  # fmt: skip
        self._setup(meta, top, bottom.config, clean, micro_batch)
        self._frozen: tuple[Any, Any] | None = (encoder, bottom)  # not a submodule: no state, no .to()
        self.to(device)
        if reference is not None:
            self._verify(sample, reference)
        if build_cache:
            self.build_cache()

    # ------------------------------------------------------------------ construction
    def _setup(
        self, meta: dict[str, Any], top: torch.nn.ModuleList, hf_config: Any, texts: list[str], micro_batch: int
    ) -> None:
        present = torch.tensor([bool(t) for t in texts], dtype=torch.bool)
        if not bool(present.any()):
            raise ModelError("no item has a text: nothing to fine-tune")
        self.meta = meta
        self.layers = top
        self._hf_config = hf_config
        self.micro_batch = max(1, int(micro_batch))
        self.cache_info: dict[str, float] = {}
        self.register_buffer("present", present)
        self.register_buffer("meta_json", bytes_tensor(json.dumps(meta, sort_keys=True).encode("utf-8")))
        data, offsets = pack_texts(texts)
        self.register_buffer("texts_utf8", data)
        self.register_buffer("text_offsets", offsets)
        for name in ("cache_hidden", "cache_offsets", "cache_lengths"):
            self.register_buffer(name, None, persistent=False)

    @classmethod
    def from_features(
        cls,
        features: Any,
        *,
        model: str | Path | None = None,
        n_trainable_layers: int = 1,
        max_length: int = 128,
        modality: str = "text",
        **kwargs: Any,
    ) -> TrainableTextEncoder:
        """Built on the texts a FeatureSet recorded for ``modality``, with the pooling, normalisation and
        instruction its encoder used; ``model=None``: the model that encoded them (when it can be told)."""
        settings = feature_text_settings(features, modality)
        if model is None:
            if settings["model"] is None:
                raise ModelError(
                    f"the {modality} features were encoded by {settings['name']!r} from a local folder: "
                    "give that folder as the fine-tuning model (text_finetune.model=PATH)"
                )
            model = settings["model"]
        tower = cls(
            item_texts(features, modality), model=model, n_trainable_layers=n_trainable_layers,
            max_length=max_length, pooling=settings["pooling"], normalize=settings["normalize"],
            instruction=settings["instruction"], **kwargs,
        )  # fmt: skip
        if tower.meta["fingerprint"] != settings["fingerprint"]:
            ours, theirs = json.loads(tower.meta["fingerprint"]), json.loads(settings["fingerprint"])
            differs = {k: (theirs.get(k), ours.get(k)) for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)}
            log.info("text tower differs from the %s features in %s (features, tower): at step 0 it "
                     "does not reproduce them exactly", modality, differs)  # fmt: skip
        return tower

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], prefix: str = "", *, model: str | Path | None = None, micro_batch: int = 64
    ) -> TrainableTextEncoder:
        """Rebuilt from saved arrays (``prefix + state_dict key``), weights loaded; the frozen cache is
        recomputed on first use from the saved model name (or ``model``, e.g. the folder moved)."""
        try:
            meta = json.loads(np.asarray(state[prefix + "meta_json"], dtype=np.uint8).tobytes())
            texts = unpack_texts(state[prefix + "texts_utf8"], np.asarray(state[prefix + "text_offsets"]))
        except KeyError as exc:
            raise ModelError(f"no saved text tower under {prefix!r} (missing {exc})") from None
        if meta.get("format") != TEXT_TOWER_FORMAT:
            raise ModelError(f"text tower format {meta.get('format')} is not supported")
        if model is not None:
            meta["model"] = str(model)
        from transformers import AutoConfig, AutoModel

        hf_dict = dict(meta["hf_config"])
        hf_config = AutoConfig.for_model(hf_dict.pop("model_type"), **hf_dict)
        with torch.device("meta"):
            skeleton = AutoModel.from_config(hf_config)
        top = torch.nn.ModuleList(encoder_layers(skeleton)[meta["n_layers"] - meta["n_trainable_layers"] :])
        tower = cls.__new__(cls)
        torch.nn.Module.__init__(tower)
        tower._setup(meta, top.to_empty(device="cpu"), skeleton.config, texts, micro_batch)
        tower._frozen = None
        params = {k[len(prefix) :]: torch.as_tensor(np.asarray(v)) for k, v in state.items() if k.startswith(prefix)}
        params.pop("meta_json")  # ours (``model`` may differ); the rest must match exactly
        missing, unexpected = tower.load_state_dict(params, strict=False)
        if unexpected or set(missing) != {"meta_json"}:
            raise ModelError(f"saved text tower does not fit its settings (missing {missing}, unexpected {unexpected})")
        return tower

    # ------------------------------------------------------------------ the frozen cache
    @property
    def dim(self) -> int:
        return int(self.meta["hf_config"]["hidden_size"])

    @property
    def n_items(self) -> int:
        return int(self.present.shape[0])

    def texts(self) -> list[str]:
        """The item texts (``""`` where absent)."""
        return unpack_texts(self.texts_utf8.cpu().numpy(), self.text_offsets.cpu().numpy())

    def _frozen_model(self, device: torch.device) -> tuple[Any, Any]:
        if self._frozen is None:
            encoder = load_text_model(self.meta, device)
            if encoder.fingerprint != self.meta["fingerprint"]:
                raise ModelError(
                    f"the text model {self.meta['model']!r} is not the one this tower was trained with "
                    "(its fingerprint differs); pass the original model folder"
                )
            bottom, _ = split_model(encoder.model, self.meta["n_trainable_layers"])
            self._frozen = (encoder, bottom)
        encoder, bottom = self._frozen
        return encoder, bottom.to(device).eval()

    def _frozen_hidden(self, texts: Sequence[str], device: torch.device) -> tuple[torch.Tensor, list[int], int]:
        """``(sum of token counts, d)`` frozen hidden states of ``texts`` (in order), counts, truncated."""
        encoder, bottom = self._frozen_model(device)
        ids, truncated = tokenize(encoder.tokenizer, texts, self.meta["instruction"], int(self.meta["max_length"]))
        packed = frozen_hidden(encoder.tokenizer, bottom, ids, DTYPES[self.meta["cache_dtype"]], device)
        return packed, [len(row) for row in ids], truncated

    def build_cache(self) -> dict[str, float]:
        """Run the frozen layers over every present text once (on this module's device); returns and
        keeps ``cache_info``: texts, tokens, truncated texts, megabytes, seconds. Frees the frozen model."""
        started = time.perf_counter()
        device = self.present.device
        texts = self.texts()
        index = np.flatnonzero(self.present.cpu().numpy())
        packed, counts, truncated = self._frozen_hidden([texts[i] for i in index], device)
        lengths = torch.zeros(self.n_items, dtype=torch.long)
        lengths[torch.from_numpy(index)] = torch.as_tensor(counts, dtype=torch.long)
        self.cache_hidden = packed
        self.cache_lengths = lengths.to(device)
        self.cache_offsets = (torch.cumsum(lengths, 0) - lengths).to(device)
        self._frozen = None  # the frozen layers are not needed again
        self.cache_info = {
            "texts": float(len(index)), "tokens": float(packed.shape[0]), "truncated": float(truncated),
            "megabytes": packed.numel() * packed.element_size() / 2**20, "seconds": time.perf_counter() - started,
        }  # fmt: skip
        log.info("text tower cache: %(texts).0f texts, %(tokens).0f tokens (%(truncated).0f truncated), "
                 "%(megabytes).1f MB, %(seconds).1fs", self.cache_info)  # fmt: skip
        return self.cache_info

    def release_cache(self) -> None:
        """Drop the frozen cache (e.g. once fitted); it is rebuilt on the next forward."""
        self.cache_hidden = self.cache_offsets = self.cache_lengths = None

    # ------------------------------------------------------------------ forward
    def _attention_mask(self, hidden: torch.Tensor, mask: torch.Tensor) -> Any:
        try:
            from transformers.masking_utils import create_bidirectional_mask
        except ImportError:  # older transformers: the additive 4-d mask every attention accepts
            return (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        return create_bidirectional_mask(config=self._hf_config, inputs_embeds=hidden, attention_mask=mask)

    def _top(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(b, L, d)`` frozen hidden states + ``(b, L)`` token mask -> ``(b, d)`` pooled vectors."""
        if len(self.layers):
            attention = self._attention_mask(hidden, mask)
            for layer in self.layers:
                out = layer(hidden, attention_mask=attention)
                hidden = out[0] if isinstance(out, tuple) else out
        pooling = self.meta["pooling"]
        if pooling == "cls":
            pooled = hidden[:, 0]
        elif pooling == "last":
            pooled = hidden[torch.arange(len(hidden), device=hidden.device), mask.sum(1) - 1]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.meta["normalize"] else pooled

    def _encode_present(self, items: torch.Tensor) -> torch.Tensor:
        """``(m,)`` distinct items that have a text -> ``(m, d)``, in length-sorted micro-batches."""
        if self.cache_hidden is None:
            self.build_cache()
        assert self.cache_hidden is not None and self.cache_lengths is not None and self.cache_offsets is not None
        lengths = self.cache_lengths[items]
        order = torch.argsort(lengths, descending=True)
        parts = []
        for begin in range(0, len(order), self.micro_batch):
            chunk = items[order[begin : begin + self.micro_batch]]
            parts.append(self._top(*padded(self.cache_hidden, self.cache_offsets[chunk], self.cache_lengths[chunk])))
        return torch.cat(parts)[torch.argsort(order)]

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """``(b,)`` item indices -> ``(b, dim)`` float32; rows of items without text are zero (see ``mask``)."""
        items = items.to(self.present.device).long()
        unique, inverse = torch.unique(items, return_inverse=True)
        keep = torch.nonzero(self.present[unique]).squeeze(1)
        out = torch.zeros(len(unique), self.dim, device=items.device)
        if len(keep):
            out = out.index_copy(0, keep, self._encode_present(unique[keep]))
        return out[inverse]

    def mask(self, items: torch.Tensor) -> torch.Tensor:
        """``(b,)`` bool: whether each item has a text."""
        return self.present[items.to(self.present.device).long()]

    @torch.no_grad()
    def encode_all(self, batch_size: int = 1024) -> torch.Tensor:
        """``(n_items, dim)`` vectors of every item in eval mode (zero rows where ``present`` is False)."""
        was_training = self.training
        self.eval()
        try:
            items = torch.arange(self.n_items, device=self.present.device)
            return torch.cat([self(items[s : s + batch_size]) for s in range(0, self.n_items, batch_size)])
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ training hooks
    def parameter_groups(self, learning_rate: float, weight_decay: float = 0.0) -> list[dict[str, Any]]:
        """One torch optimiser group of the trainable layers at their own rate (none when 0 layers)."""
        params = [p for p in self.layers.parameters() if p.requires_grad]
        return [{"params": params, "lr": learning_rate, "weight_decay": weight_decay}] if params else []

    def state_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """The state dict as numpy arrays (what :meth:`from_state` reads back)."""
        return {prefix + k: v.detach().cpu().numpy() for k, v in self.state_dict().items()}

    def _verify(self, sample: list[int], reference: np.ndarray) -> None:
        texts = self.texts()
        device = self.present.device
        packed, counts, _ = self._frozen_hidden([texts[i] for i in sample], device)
        lengths = torch.as_tensor(counts, device=device)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            ours = self._top(*padded(packed, torch.cumsum(lengths, 0) - lengths, lengths)).cpu().numpy()
        self.train(was_training)
        error = float(np.abs(ours - reference).max())
        if error > _VERIFY_ATOL[self.meta["cache_dtype"]]:
            raise ModelError(
                f"splitting {self.meta['name']!r} into frozen and trainable layers does not reproduce its "
                f"output (max difference {error:.2g}): this architecture is not supported for fine-tuning"
            )
