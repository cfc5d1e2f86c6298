"""The frozen half of a fine-tuned text encoder: load a model split at a layer, run its lower part once.

:class:`~fusionrec.fusion.text_tower.TrainableTextEncoder` trains the top layers; this module loads
the Hugging Face encoder through the features stage (same tokenizer, max length, pooling and
fingerprint as the text features), splits ``model.encoder.layer`` into the frozen lower layers and
the trainable top ones, tokenises texts exactly as the features stage does, and packs the frozen
hidden states of many texts into one ``(total tokens, d)`` tensor (each text only its own tokens).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from pydantic import ValidationError

from fusionrec.errors import ModelError
from fusionrec.features.config import TextEncoderConfig

CacheDtype = Literal["float16", "bfloat16", "float32"]
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
TOKENS_PER_BATCH = 4096  # padded tokens per forward pass of the frozen layers


def bytes_tensor(data: bytes) -> torch.Tensor:
    """``(len(data),)`` uint8 tensor (a string stored in a state dict)."""
    return torch.tensor(np.frombuffer(data, dtype=np.uint8).copy(), dtype=torch.uint8)


def pack_texts(texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """UTF-8 bytes of all texts, ``(n + 1,)`` int64 byte offsets."""
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)
    return bytes_tensor(b"".join(encoded)), torch.from_numpy(offsets)


def unpack_texts(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    raw = np.asarray(data, dtype=np.uint8).tobytes()
    return [raw[int(a) : int(b)].decode("utf-8") for a, b in itertools.pairwise(offsets)]


def encoder_layers(model: Any) -> torch.nn.ModuleList:
    """The transformer layers of a BERT-style encoder (``model.encoder.layer``)."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise ModelError(
            f"cannot fine-tune {type(model).__name__}: only BERT-style encoders (model.encoder.layer) "
            "are supported"
        )
    return layers


def load_text_model(settings: Mapping[str, Any], device: torch.device | str) -> Any:
    """The features stage's HFTextEncoder for ``settings`` (model, max_length, pooling, normalize,
    instruction): tokenizer, resolved settings and fingerprint; weights load on first use."""
    from fusionrec.features.text import load_text_encoder

    try:
        config = TextEncoderConfig(
            encoder=str(settings["model"]), max_length=int(settings["max_length"]),
            pooling=settings["pooling"], normalize=bool(settings["normalize"]),
            instruction=str(settings["instruction"]),
        )  # fmt: skip
    except ValidationError as exc:
        raise ModelError(f"text fine-tuning settings: {exc}") from None
    encoder = load_text_encoder(config, device=str(device))
    if encoder.kind != "encoder":
        raise ModelError(f"text fine-tuning needs an encoder model; {settings['model']!r} is a {encoder.kind}")
    return encoder


def split_model(hf: Any, n_trainable_layers: int) -> tuple[Any, torch.nn.ModuleList]:
    """Cut ``hf`` (in place) to its frozen lower layers (no grad); returns it and the top layers."""
    layers = encoder_layers(hf)
    if not 0 <= n_trainable_layers <= len(layers):
        raise ModelError(f"n_trainable_layers must be in [0, {len(layers)}], got {n_trainable_layers}")
    split = len(layers) - n_trainable_layers
    hf.encoder.layer = torch.nn.ModuleList(layers[:split])
    hf.requires_grad_(False)
    return hf, torch.nn.ModuleList(layers[split:])


def tokenize(tokenizer: Any, texts: Sequence[str], instruction: str, max_length: int) -> tuple[list[list[int]], int]:
    """Token ids per text, cut to ``max_length`` as the features stage does; and how many were cut."""
    inputs = [instruction + t for t in texts]
    ids = tokenizer(inputs, truncation=False, verbose=False)["input_ids"]
    long = [i for i, row in enumerate(ids) if len(row) > max_length]
    if long:
        cut = tokenizer([inputs[i] for i in long], truncation=True, max_length=max_length, verbose=False)
        for i, row in zip(long, cut["input_ids"], strict=True):
            ids[i] = row
    return ids, len(long)


@torch.no_grad()
def frozen_hidden(
    tokenizer: Any, bottom: Any, ids: Sequence[list[int]], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``(sum of len(ids[i]), d)`` hidden states of ``bottom`` for each token sequence, packed in
    order (text i at rows ``sum(len(ids[:i])) ...``), longest texts first in padded batches."""
    lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    packed = torch.empty(int(starts[-1]), int(bottom.config.hidden_size), dtype=dtype, device=device)
    order = np.argsort(-lengths, kind="stable")
    begin = 0
    while begin < len(order):
        chunk = order[begin : begin + max(1, TOKENS_PER_BATCH // max(int(lengths[order[begin]]), 1))]
        begin += len(chunk)
        padded = tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, padding=True, return_tensors="pt")
        mask = padded["attention_mask"].to(device)
        hidden = bottom(input_ids=padded["input_ids"].to(device), attention_mask=mask).last_hidden_state
        counts = torch.as_tensor(lengths[chunk], device=device)
        within = torch.arange(int(counts.sum()), device=device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts
        )
        rows = torch.repeat_interleave(torch.as_tensor(starts[chunk], device=device), counts) + within
        packed[rows] = hidden[mask.bool()].to(dtype)
    return packed


def padded(packed: torch.Tensor, offsets: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``offsets[i] : offsets[i] + lengths[i]`` of ``packed`` as ``(b, max length, d)`` float32
    (zeros after each text's end) and the ``(b, max length)`` 0/1 token mask."""
    positions = torch.arange(int(lengths.max()), device=packed.device)
    mask = positions[None, :] < lengths[:, None]
    rows = (offsets[:, None] + positions[None, :]).clamp(max=len(packed) - 1)
    return packed[rows].float() * mask.unsqueeze(-1), mask.long()
