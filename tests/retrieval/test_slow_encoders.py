"""The optimised encoder backends against plain sentence-transformers (real model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval.encoders.base import DEFAULT_MODEL
from retrieval.encoders.factory import load_encoder
from retrieval.encoders.openvino import PIPELINE_BATCH

pytestmark = pytest.mark.slow

TEXTS = [
    "How do I renew my residence permit in Doha?",
    "Where can I buy a cheap second-hand car?",
    "Como faço para cancelar a minha assinatura?",
    "¿Dónde puedo comprar una tarjeta SIM prepago?",
    "Qual è il miglior ristorante italiano in città?",
    "printer shows error E-04 after the firmware update " * 20,  # truncated at 256 tokens
    "ok",
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return load_encoder(DEFAULT_MODEL, backend="torch").encode(TEXTS)


def test_openvino_export_is_cached_and_matches_torch(tmp_path: Path, reference: np.ndarray) -> None:
    enc = load_encoder(
        DEFAULT_MODEL, backend="openvino", cache_dir=tmp_path, threads=2, query_threads=1
    )
    assert enc._single is not enc._compiled  # type: ignore[attr-defined]  # one-text copy
    assert enc.name == DEFAULT_MODEL and enc.dimension == 384
    vecs = enc.encode(TEXTS)
    assert vecs.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    cosine = (vecs * reference).sum(axis=1)
    assert cosine.min() >= 0.999, cosine
    # one at a time (the 1-thread copy) gives the same vectors as in a padded batch
    single = np.vstack([enc.encode([t]) for t in TEXTS])
    assert (single * vecs).sum(axis=1).min() >= 0.999
    # a micro-batch of 5 questions is given a sixth row (a copy, dropped) and padded on
    # to 16 tokens: the same vectors as one by one
    few = enc.encode(TEXTS[:5])
    assert few.shape == (5, 384) and (few * single[:5]).sum(axis=1).min() >= 0.999
    # many texts: batches of PIPELINE_BATCH run as concurrent jobs, one per stream, and
    # each vector lands in its text's row
    many = [f"{t} ({i})" for i in range(5) for t in TEXTS]
    assert len(many) > PIPELINE_BATCH
    assert enc._pipeline is None  # type: ignore[attr-defined]  # not compiled until needed
    pipelined = enc.encode(many)
    assert enc._pipeline is not None  # type: ignore[attr-defined]
    one_by_one = np.vstack([enc.encode([t]) for t in many])
    assert (pipelined * one_by_one).sum(axis=1).min() >= 0.999
    exports = list(tmp_path.iterdir())
    assert len(exports) == 1 and (exports[0] / "model.xml").exists()
    stamp = (exports[0] / "export.json").stat().st_mtime_ns
    again = load_encoder(DEFAULT_MODEL, backend="openvino", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == exports  # loaded from the cache, not exported again
    assert (exports[0] / "export.json").stat().st_mtime_ns == stamp
    assert np.allclose(again.encode(TEXTS[:2]), vecs[:2], atol=1e-4)


def test_torch_bf16_stays_close_to_fp32(reference: np.ndarray) -> None:
    vecs = load_encoder(DEFAULT_MODEL, backend="torch-bf16").encode(TEXTS)
    assert vecs.dtype == np.float32
    assert (vecs * reference).sum(axis=1).min() >= 0.99


def test_openvino_int8_is_quantized_once_and_stays_close(
    tmp_path: Path, reference: np.ndarray
) -> None:
    enc = load_encoder(DEFAULT_MODEL, backend="openvino", cache_dir=tmp_path, precision="int8")
    assert enc.name == f"{DEFAULT_MODEL}@int8"  # another vector space: an fp32 index rebuilds
    vecs = enc.encode(TEXTS)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    cosine = (vecs * reference).sum(axis=1)
    assert cosine.mean() >= 0.99 and cosine.min() >= 0.95, cosine
    (export,) = tmp_path.iterdir()
    quantized = export / "model-int8.xml"
    assert quantized.exists() and quantized.with_suffix(".bin").exists()
    stamp = quantized.stat().st_mtime_ns
    again = load_encoder(DEFAULT_MODEL, backend="openvino", cache_dir=tmp_path, precision="int8")
    assert quantized.stat().st_mtime_ns == stamp  # reused, not quantized again
    assert np.allclose(again.encode(TEXTS[:2]), vecs[:2], atol=1e-4)
