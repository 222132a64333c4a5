"""The corpus: the community's threads as unsource searches them: the store (truth), the
vector index (derived) and the encoder that fills it, kept in step.

Writes go to the store first, in one transaction; only once it has committed is the
in-memory vector index updated, under the same lock that searches take, so a write
that returned is visible to the next search. The index file is a cache: ``open``
loads it when its manifest matches the store (model, dimension, generation, count,
checksum) and otherwise rebuilds it from the vectors kept in the store, re-encoding
only rows embedded by another model.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from index import seed
from index.corpus_parts import (
    Encoder,
    Prepared,
    UpsertReport,
    Verification,
    content_hash,
    duplicate_ids,
)
from index.errors import IndexMismatch, ValidationFailed
from index.models import Thread
from index.store.protocol import Existing, Exported, Row, StoredThread, ThreadStore
from index.vectors import layered as vectors
from index.vectors.layout import IndexLayout

log = logging.getLogger(__name__)

__all__ = ["Corpus", "Encoder", "IndexLayout", "UpsertReport", "Verification", "content_hash"]


class Corpus:
    """Store + vector index + the encoder that fills it."""

    def __init__(
        self,
        store: ThreadStore,
        embedder: Encoder,
        index_dir: Path,
        text_of: Callable[[Thread], str],
        space: str | None = None,
        layout: IndexLayout | None = None,
        seed_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.seed_dir = seed_dir  # a published index to start from (index/seed.py)
        self.embedder = embedder
        self.index_dir = Path(index_dir)
        self.text_of = text_of
        # the embedding space: model + how a thread becomes text; vectors from another
        # space are never mixed in
        self.space = space or embedder.name
        self.layout = layout or IndexLayout()
        self.lock = threading.RLock()
        self.index: vectors.VectorIndex = vectors.FlatIndex(embedder.dimension)
        self.generation = 0  # the store generation the index reflects
        self.rebuilt_because: str | None = None
        self._counted: tuple[int, int] | None = None  # (generation, count)
        self._saved: vectors.Manifest | None = None  # what the index was loaded or saved as

    # -- lifecycle ---------------------------------------------------------------------
    def open(self) -> None:
        """Load the saved index and catch it up with the store's later writes; rebuild
        from the store's vectors when there is no usable saved index. With no saved index
        of its own, a replica starts from the published seed if there is one."""
        with self.lock:
            if self.seed_dir is not None and seed.adopt(self.seed_dir, self.index_dir):
                log.info("vector index seeded from %s", self.seed_dir)
            try:
                manifest, index = vectors.load(
                    self.index_dir,
                    model=self.space,
                    dimension=self.embedder.dimension,
                    generation=self.store.generation(),
                    store_id=self.store.store_id(),
                    mmap=self.layout.mmap,
                    nprobe=self.layout.nprobe,
                )
                self.index, self.generation = index, manifest.generation
                self._saved = manifest
                self.refresh()
                count = self.store.count()
                if self.index.count != count:
                    raise IndexMismatch("saved index does not match the store after catch-up")
                if self.layout.kind_for(count, manifest.kind) != manifest.kind:
                    raise IndexMismatch(f"a {manifest.kind} index no longer suits {count} threads")
                if vectors.blocks_of(self.index) != self.layout.blocks:
                    raise IndexMismatch("saved index is split into other column blocks")
                self.rebuilt_because = None
            except IndexMismatch as why:
                log.info("rebuilding vector index: %s", why)
                self.rebuilt_because = str(why)
                self.rebuild()

    def refresh(self) -> int:
        """Apply writes other processes (CLI, other replicas) committed since the index's
        generation; returns how many keys changed. Own writes are applied as they commit."""
        if self.store.generation() == self.generation:  # the usual case, one key lookup
            return 0
        with self.lock:
            changes = self.store.changes_since(self.generation)
            if changes.generation == self.generation:
                return 0
            if changes.generation < self.generation:
                raise IndexMismatch("the store went back to an older generation")
            self.index.remove([*changes.deleted, *changes.pks.tolist()])
            usable = [
                m == self.space and v.size == self.index.dimension
                for m, v in zip(changes.models, changes.vectors, strict=True)
            ]
            keep = [i for i, ok in enumerate(usable) if ok]
            if keep:
                self.index.add(changes.pks[keep], np.stack([changes.vectors[i] for i in keep]))
            stale = [int(pk) for pk, ok in zip(changes.pks, usable, strict=True) if not ok]
            self.generation = changes.generation
            self._reencode(stale, self.index, None)
            return len(changes.pks) + len(changes.deleted)

    def rebuild(self, reembed: bool = False, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the vector index from the store; returns how many rows were re-encoded.
        The index kind follows the layout (flat, or IVF trained on the stored vectors)."""
        with self.lock:
            stale: list[int] = []
            keys: list[np.ndarray] = []
            blocks: list[np.ndarray] = []
            generation = self.store.generation()
            dim = self.embedder.dimension
            for pks, models, vecs in self.store.iter_embeddings():
                usable = [
                    not reembed and m == self.space and v.size == dim
                    for m, v in zip(models, vecs, strict=True)
                ]
                keep = [i for i, ok in enumerate(usable) if ok]
                if keep:
                    keys.append(pks[keep])
                    blocks.append(np.stack([vecs[i] for i in keep]).astype(np.float32))
                stale.extend(int(pk) for pk, ok in zip(pks, usable, strict=True) if not ok)
                if progress:
                    progress(len(keep))
            matrix = np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)
            total = len(matrix) + len(stale)
            fresh = self.layout.new_index(dim, matrix, total, self.index.kind)
            if len(matrix):
                fresh.add(np.concatenate(keys), matrix)
            del matrix, blocks
            self.index, self.generation = fresh, generation
            reencoded = self._reencode(stale, fresh, progress)
            self.refresh()  # writes by others while this ran
            self.save()
            return reencoded

    def compact(self) -> bool:
        """Fold a memory-mapped index's in-memory delta into a new saved file once it has
        grown past ``layout.compact_after`` of the base; True if it did."""
        with self.lock:
            index = self.index
            if not isinstance(index, vectors.LayeredIndex):
                return False
            if index.delta.count + len(index.dead) <= self.layout.compact_after * max(
                index.base.count, 10_000
            ):
                return False
            self.save()
            return True

    def reencode(self, pks: list[int]) -> int:
        """Re-encode these stored rows from their text, in the store and the index."""
        with self.lock:
            return self._reencode(pks, self.index, None)

    def _reencode(
        self,
        pks: list[int],
        target: vectors.VectorIndex,
        progress: Callable[[int], None] | None,
        batch: int = 256,
    ) -> int:
        for i in range(0, len(pks), batch):
            stored = self.store.get_many(pks[i : i + batch])
            items = list(stored.values())
            texts = [self.text_of(s.thread) for s in items]
            vecs = self.embedder.encode(texts)
            gen = self.store.replace_embeddings(
                [
                    (s.pk, content_hash(t), self.space, v)
                    for s, t, v in zip(items, texts, vecs, strict=True)
                ]
            )
            ids = np.array([s.pk for s in items], dtype=np.int64)
            target.remove(ids.tolist())
            target.add(ids, vecs)
            self._advance(gen)
            if progress:
                progress(len(items))
        return len(pks)

    def _advance(self, generation: int) -> None:
        """After an own write committed as ``generation``: the index reflects it only if
        it already reflected every earlier one; otherwise ``refresh`` catches up."""
        if generation == self.generation + 1:
            self.generation = generation

    def save(self, reopen: bool = True) -> vectors.Manifest:
        """Write the index; with ``layout.mmap`` (and ``reopen``: not when closing) the
        index is then served from the new file (mapped), so the in-memory delta starts
        empty again."""
        with self.lock:
            manifest = vectors.save(
                self.index, self.index_dir, self.space, self.generation, self.store.store_id()
            )
            self._saved = manifest
            if self.layout.mmap and reopen:
                self.index = vectors.map_file(self.index_dir / manifest.file, self.layout.nprobe)
            return manifest

    def unsaved(self) -> bool:
        """Whether the index differs from its saved file: False only for the file it was
        loaded or saved as, served with no later write (at a million threads a save
        rewrites ~900 MB; a replica that stops without having changed it need not)."""
        with self.lock:
            index, saved = self.index, self._saved
            return not (
                isinstance(index, vectors.LayeredIndex)
                and saved is not None
                and index.path.name == saved.file
                and saved.generation == self.generation
                and index.delta.count == 0
                and not index.dead
            )

    # -- writes ------------------------------------------------------------------------
    def _to_embed(
        self, threads: Sequence[Thread]
    ) -> tuple[dict[str, Existing], list[str], list[str], list[int]]:
        """The stored rows of ``threads``' ids, their texts and text hashes, and which of
        them need a vector (new, text changed, or embedded in another space)."""
        existing = self.store.existing([t.id for t in threads])
        texts = [self.text_of(t) for t in threads]
        hashes = [content_hash(t) for t in texts]
        need = [
            i
            for i, t in enumerate(threads)
            if (e := existing.get(t.id)) is None
            or e.content_hash != hashes[i]
            or e.embed_model != self.space
        ]
        return existing, texts, hashes, need

    def prepare(self, threads: Sequence[Thread]) -> Prepared:
        """The vectors ``upsert`` would encode for ``threads``, encoded now and without the
        lock, so that a pipelined ingest encodes the next batch while this one is written
        (``Engine.ingest_batches``). ``upsert`` takes a vector only for the very text it
        was made from, in the same space, and encodes whatever else it needs."""
        _, texts, hashes, need = self._to_embed(threads)
        fresh = self.embedder.encode([texts[i] for i in need]) if need else None
        vectors_ = {hashes[i]: fresh[j] for j, i in enumerate(need)} if fresh is not None else {}
        return Prepared(self.space, vectors_)

    def upsert(self, threads: Sequence[Thread], prepared: Prepared | None = None) -> UpsertReport:
        """Insert or replace threads by id; re-embed only those whose text changed (with
        the vectors of ``prepared`` where it has them)."""
        duplicates = duplicate_ids(t.id for t in threads)
        if duplicates:
            raise ValidationFailed(
                [(f"item {i}", "id", f"duplicate id {tid!r} in one batch") for i, tid in duplicates]
            )
        report = UpsertReport()
        if not threads:
            return report
        ahead = prepared.vectors if prepared is not None and prepared.space == self.space else {}
        with self.lock:
            existing, texts, hashes, need = self._to_embed(threads)
            todo = [i for i in need if hashes[i] not in ahead]
            fresh = self.embedder.encode([texts[i] for i in todo]) if todo else None
            encoded = {i: fresh[j] for j, i in enumerate(todo)} if fresh is not None else {}
            new_vecs = {i: encoded[i] if i in encoded else ahead[hashes[i]] for i in need}
            rows = [Row(t, hashes[i], self.space, new_vecs.get(i)) for i, t in enumerate(threads)]
            pks, generation = self.store.upsert(rows)
            # the store has committed: now the derived index
            changed = [pks[threads[i].id] for i in need]
            self.index.remove(
                [existing[threads[i].id].pk for i in need if threads[i].id in existing]
            )
            if changed:
                self.index.add(np.array(changed, dtype=np.int64), np.stack(list(new_vecs.values())))
            self._advance(generation)
            for i, t in enumerate(threads):
                if t.id not in existing:
                    report.created.append(t.id)
                elif i in new_vecs:
                    report.updated.append(t.id)
                else:
                    report.unchanged_text.append(t.id)
            return report

    def delete(self, thread_id: str) -> bool:
        with self.lock:
            pk, generation = self.store.delete(thread_id)
            if pk is None:
                return False
            self.index.remove([pk])
            self._advance(generation)
            return True

    # -- reads: the one door to the store and the index for searches and snapshots ----
    def nearest(
        self, query: np.ndarray, limit: int, within: vectors.Keys | None = None
    ) -> list[tuple[int, float]]:
        """The ``limit`` threads whose vectors score highest against ``query`` (inner
        product), among the keys ``within`` when given."""
        with self.lock:
            return self.index.search(query, limit, within=within)

    def vectors_for(self, pks: Sequence[int]) -> dict[int, np.ndarray]:
        with self.lock:
            return self.index.vectors_for(pks)

    def threads(self, pks: Sequence[int]) -> dict[int, StoredThread]:
        return self.store.get_many(pks)

    def newest(self, count: int) -> list[int]:
        """The keys of the ``count`` newest threads, newest first."""
        return self.store.newest(count)

    def keys_for(self, thread_ids: Sequence[str]) -> dict[str, int]:
        return self.store.pks_for_ids(thread_ids)

    @property
    def keyword_search(self) -> Callable[..., list[tuple[int, float]]]:
        """The store's keyword search (``ThreadStore.keyword_search``: text, k, within,
        weights, language)."""
        return self.store.keyword_search

    def filter_keys(self, tags: Sequence[str] | None, language: str | None) -> list[int]:
        return self.store.filter_pks(tags, language)

    def warm_keyword_index(self, stop: threading.Event) -> int:
        """The store's ``warm_keyword_index``: its keyword index read once (a background
        job as a replica starts)."""
        return self.store.warm_keyword_index(stop)

    def warm_pages(self, stop: threading.Event) -> int:
        """The store's ``warm_pages``: its file read into the page cache (a background job
        as a replica starts)."""
        return self.store.warm_pages(stop)

    def store_id(self) -> str:
        return self.store.store_id()

    @property
    def dimension(self) -> int:
        return self.index.dimension

    def seen(self) -> tuple[int, int]:
        """What a search can see change: the index's generation and this process's writes
        to the store (a cached filter is read again when either moves)."""
        return self.generation, self.store.writes()

    def export(
        self, write: Callable[[Exported], object], restart: Callable[[], None]
    ) -> tuple[int, int, bytes] | None:
        """Every thread (to ``write``) and the index's bytes, of one generation: retried
        (``restart`` first) while another process writes meanwhile; (count, generation,
        index bytes), or None after five tries."""
        for _ in range(5):
            with self.lock:
                self.refresh()
                generation = self.generation
                index_bytes = self.index.to_bytes()
                restart()
                count = 0
                for batch in self.store.iter_export():
                    for row in batch:
                        write(row)
                        count += 1
                if self.store.generation() == generation:
                    return count, generation, index_bytes
        return None

    def install(
        self, index: vectors.VectorIndex, rows: Iterable[Exported], changed: list[int]
    ) -> int:
        """Replace every thread and the index with a snapshot's, then re-encode the keys
        ``rows`` put in ``changed`` while it was read (their text no longer matches the
        snapshot's vector) and save; the new generation."""
        with self.lock:
            generation = self.store.replace_all(rows)
            self.index, self.generation = index, generation
            self.reencode(changed)
            self.save()
            return generation

    def get(self, thread_id: str) -> StoredThread | None:
        return self.store.get(thread_id)

    def count(self) -> int:
        return self.store.count()

    def count_at_generation(self) -> tuple[int, int]:
        """(store generation, thread count): the count is re-read only when the generation
        moved, so frequent readiness probes cost one key read at any store size."""
        generation = self.store.generation()
        cached = self._counted
        if cached is None or cached[0] != generation:
            cached = self._counted = (generation, self.store.count())
        return cached

    def verify(self, sample: int = 100, seed: int = 0) -> Verification:
        """Check the index against the store: the same keys, each once, and for up to
        ``sample`` random threads their own stored vector ranks first."""
        with self.lock:
            stored = self.store.pks()
            ids = self.index.ids()
            store_set, index_set = set(stored.tolist()), set(ids.tolist())
            rng = random.Random(seed)
            both = sorted(store_set & index_set)
            picked = rng.sample(both, min(sample, len(both)))
            misranked = []
            for pk, (space, vec) in self.store.embeddings_for(picked).items():
                if space != self.space:
                    misranked.append(pk)
                    continue
                hits = self.index.search(vec, 10)
                top = hits[0][1] if hits else float("-inf")
                # a thread ties with exact duplicates of its own text; any of them may be first
                if not any(p == pk and s >= top - 1e-5 for p, s in hits):
                    misranked.append(pk)
            return Verification(
                threads=len(stored),
                indexed=len(ids),
                missing=sorted(store_set - index_set)[:20],
                extra=sorted(index_set - store_set)[:20],
                duplicated=len(ids) - len(index_set),
                sampled=len(picked),
                misranked=misranked[:20],
            )

    def fast_scan_state(self) -> Literal["off", "building", "ready"]:
        with self.lock:
            return vectors.fast_scan_state(self.index)

    def indexed(self) -> int:
        """Vectors in the in-memory index (equals ``count()`` when the index is current)."""
        with self.lock:
            return self.index.count
