"""The triage classifier: sentence embeddings + a multinomial logistic-regression head over
intents. Each intent carries its route and queue (from routes.csv), so P(staff) is the
summed probability of the staff intents and the queue is the staff queue with the most
probability. Labelled training examples are kept to show the nearest ones as evidence.

The sum generalises only if the community side of the training data is as broad as the
questions it will see: trained on BANKING77 + CLINC150 alone, a question from another
domain spread its probability over many banking intents and 25-46 % of ordinary forum
questions went to staff. The default model is therefore also trained on real community
questions from other domains and languages (SUMO Firefox forum weeks 58-61, labelled as
``triage/data/sumo_labels.csv`` says; hand-written multilingual examples), each source a
community class of its own, so foreign questions have somewhere to go. A binary
staff/community head on the same features was measured and rejected (docs/triage.md):
CLINC150 val staff recall 0.951 at the threshold where this rule has 0.994.

The artefact is a directory (no pickle): ``manifest.json``, ``head.npz`` (weights, classes,
routes), ``examples.npz`` and ``examples.json`` (float16 vectors and texts, for evidence).
Versions sit side by side under one folder; the ``CURRENT`` file names the active one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from index.errors import UnsourceError
from index.files import fsync_path, sha256_file, write_atomic
from retrieval.encoders.base import Encoder
from triage.datasets import Labelled
from triage.lexicon import QUEUES

FORMAT_VERSION = 1
CURRENT = "CURRENT"
VERSION = re.compile(r"triage-\d{8}T\d{6}-[0-9a-f]{10}")  # what CURRENT may name


class ModelError(UnsourceError):
    """The triage model is missing, corrupt, or was trained with another encoder."""


@dataclass(frozen=True)
class Evidence:
    text: str
    label: str
    route: str
    queue: str
    similarity: float


@dataclass(frozen=True)
class Prediction:
    p_staff: float
    queue: str  # the most probable staff queue
    queue_probabilities: dict[str, float]
    intent: str
    intent_probability: float
    evidence: list[Evidence]


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first, without sorting all of them."""
    if k >= len(scores):
        return np.argsort(-scores)
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part])]


@dataclass
class TriageModel:
    encoder_name: str
    classes: np.ndarray  # (C,) str labels "<source>:<intent>"
    routes: np.ndarray  # (C,) "staff" | "community"
    queues: np.ndarray  # (C,) queue or ""
    coef: np.ndarray  # (C, D)
    intercept: np.ndarray  # (C,)
    example_texts: list[str]
    example_classes: np.ndarray  # (N,) index into classes
    example_vectors: np.ndarray  # (N, D) float16
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unsaved"))

    @cached_property
    def _examples32(self) -> np.ndarray:
        """Evidence vectors widened once, not on every request."""
        return self.example_vectors.astype(np.float32)

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        logits = vectors.astype(np.float64) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def p_staff(self, vectors: np.ndarray) -> np.ndarray:
        return self.probabilities(vectors)[:, self.routes == "staff"].sum(axis=1)

    def predict_vectors(self, vectors: np.ndarray, evidence: int = 3) -> list[Prediction]:
        probs = self.probabilities(vectors)
        staff = self.routes == "staff"
        sims = (
            vectors.astype(np.float32) @ self._examples32.T
            if evidence and len(self.example_texts)
            else None
        )
        out = []
        for i, p in enumerate(probs):
            per_queue = {q: float(p[self.queues == q].sum()) for q in QUEUES}
            best = int(p.argmax())
            found: list[Evidence] = []
            if sims is not None:
                for j in _top(sims[i], evidence):
                    c = int(self.example_classes[j])
                    found.append(
                        Evidence(
                            self.example_texts[j],
                            str(self.classes[c]),
                            str(self.routes[c]),
                            str(self.queues[c]),
                            round(float(sims[i, j]), 4),
                        )
                    )
            out.append(
                Prediction(
                    p_staff=float(p[staff].sum()),
                    queue=max(per_queue, key=lambda q: per_queue[q]),
                    queue_probabilities=per_queue,
                    intent=str(self.classes[best]),
                    intent_probability=float(p[best]),
                    evidence=found,
                )
            )
        return out

    def predict(
        self, encoder: Encoder, texts: Sequence[str], evidence: int = 3
    ) -> list[Prediction]:
        if encoder.name != self.encoder_name:
            raise ModelError(
                f"triage model was trained on {self.encoder_name!r}, not {encoder.name!r}"
            )
        return self.predict_vectors(encoder.encode(list(texts)), evidence)

    # -- persistence -------------------------------------------------------------------

    def save(self, root: Path) -> Path:
        """Write a new version under ``root`` and make it current; returns its directory."""
        root.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        digest = hashlib.sha256(self.coef.tobytes() + self.intercept.tobytes()).hexdigest()[:10]
        version = f"triage-{stamp}-{digest}"
        assert VERSION.fullmatch(version)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        tmp.chmod(0o755)
        try:
            np.savez(
                tmp / "head.npz",
                classes=self.classes,
                routes=self.routes,
                queues=self.queues,
                coef=self.coef,
                intercept=self.intercept,
            )
            np.savez(
                tmp / "examples.npz", classes=self.example_classes, vectors=self.example_vectors
            )
            (tmp / "examples.json").write_text(json.dumps(self.example_texts, ensure_ascii=False))
            files = {n: sha256_file(tmp / n) for n in ("head.npz", "examples.npz", "examples.json")}
            manifest = dict(self.manifest) | {
                "version": version,
                "format_version": FORMAT_VERSION,
                "encoder": self.encoder_name,
                "created_at": datetime.now(UTC).isoformat(),
                "files": files,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            for f in tmp.iterdir():
                fsync_path(f)
            final = root / version
            os.replace(tmp, final)
            write_atomic(root / CURRENT, (version + "\n").encode())
            self.manifest = manifest
            return final
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, path: Path) -> TriageModel:
        """Load ``path`` (a version directory, or a root with a CURRENT file)."""
        if (path / CURRENT).is_file():
            version = (path / CURRENT).read_text().strip()
            # a version directory of this root, nothing else (no "/", no "..")
            if not VERSION.fullmatch(version):
                raise ModelError(f"{path / CURRENT}: not a model version name: {version[:80]!r}")
            path = path / version
        manifest_file = path / "manifest.json"
        if not manifest_file.is_file():
            raise ModelError(
                f"no triage model at {path}; train one with `unsource triage train` "
                "(or `make triage-model`)"
            )
        try:
            manifest = json.loads(manifest_file.read_text())
            if manifest.get("format_version") != FORMAT_VERSION:
                raise ModelError(f"{path}: unsupported format {manifest.get('format_version')}")
            for name, digest in manifest["files"].items():
                if sha256_file(path / name) != digest:
                    raise ModelError(f"{path / name}: checksum mismatch")
            with np.load(path / "head.npz") as head, np.load(path / "examples.npz") as ex:
                return cls(
                    encoder_name=manifest["encoder"],
                    classes=head["classes"],
                    routes=head["routes"],
                    queues=head["queues"],
                    coef=head["coef"],
                    intercept=head["intercept"],
                    example_texts=json.loads((path / "examples.json").read_text()),
                    example_classes=ex["classes"],
                    example_vectors=ex["vectors"],
                    manifest=manifest,
                )
        except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: unreadable triage model ({exc})") from exc


def train(
    examples: Sequence[Labelled],
    encoder: Encoder,
    c: float = 10.0,
    weights: dict[str, float] | None = None,
    vectors: np.ndarray | None = None,
) -> TriageModel:
    """Fit the head on ``examples``; ``weights`` maps a label's source prefix to a sample
    weight (e.g. hand-written seed examples count more than one crowd-sourced row)."""
    from sklearn.linear_model import LogisticRegression

    if not examples:
        raise ModelError("no training examples")
    labels = sorted({e.label for e in examples})
    if len(labels) < 2:
        raise ModelError("training needs at least two distinct labels")
    index = {label: i for i, label in enumerate(labels)}
    meta = {e.label: (e.route, e.queue) for e in examples}
    y = np.array([index[e.label] for e in examples])
    x = vectors if vectors is not None else encoder.encode([e.text for e in examples])
    w = np.array([(weights or {}).get(e.label.split(":", 1)[0], 1.0) for e in examples])
    head = LogisticRegression(C=c, max_iter=3000)
    head.fit(x, y, sample_weight=w)
    coef, intercept = head.coef_, head.intercept_
    if len(labels) == 2:  # sklearn keeps one row for binary problems
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    sources: dict[str, int] = {}
    for e in examples:
        src = e.label.split(":", 1)[0]
        sources[src] = sources.get(src, 0) + 1
    return TriageModel(
        encoder_name=encoder.name,
        classes=np.array(labels),
        routes=np.array([meta[label][0] for label in labels]),
        queues=np.array([meta[label][1] for label in labels]),
        coef=coef.astype(np.float32),
        intercept=intercept.astype(np.float32),
        example_texts=[e.text for e in examples],
        example_classes=y.astype(np.int32),
        example_vectors=np.asarray(x, dtype=np.float16),
        manifest={"c": c, "weights": weights or {}, "examples": sources},
    )
