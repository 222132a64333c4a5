"""Fine-tuning with the real model on a slice of SemEval train: the artefact loads offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eval.datasets import load_semeval
from eval.finetune import finetune
from retrieval.encoders.factory import load_encoder
from tests.support import SEMEVAL

pytestmark = pytest.mark.slow


def test_finetuned_model_saves_and_loads(tmp_path: Path) -> None:
    train = load_semeval(SEMEVAL, "train")
    train.queries = train.queries[:6]
    losses: list[float] = []
    out = finetune(
        "all-MiniLM-L6-v2",
        train,
        tmp_path / "m",
        epochs=1,
        progress=lambda _step, _steps, loss: losses.append(loss),
    )
    assert losses and all(np.isfinite(losses))
    tuned = load_encoder(str(out))
    vectors = tuned.encode(["Where can I rent a car in Doha?", "car rental Doha"])
    assert vectors.shape == (2, 384) and float(vectors[0] @ vectors[1]) > 0.5
    base = load_encoder("all-MiniLM-L6-v2").encode(["Where can I rent a car in Doha?"])
    assert not np.allclose(base[0], vectors[0])  # the weights did move
