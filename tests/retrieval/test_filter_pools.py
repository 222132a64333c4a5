"""Round-2 security finding 7 (partly closed): the filter cache was keyed by the exact tag
set, so one random tag per public request missed it and re-read every matching key
(0.6 s at 250k threads). Pools are cached per tag now, and bounded by bytes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrieval.pools import FilterPools

TAGGED = {"hub": list(range(0, 200_000, 2)), "bulb": list(range(1, 200_000, 2)), "cam": [5, 7]}


class CountingStore:
    def __init__(self) -> None:
        self.keys_read = 0
        self.calls: list[tuple[tuple[str, ...] | None, str | None]] = []

    def filter_pks(self, tags: Sequence[str] | None, language: str | None) -> list[int]:
        self.calls.append((tuple(tags) if tags else None, language))
        if not tags:
            keys = sorted({k for v in TAGGED.values() for k in v})
        else:
            keys = sorted({k for t in tags for k in TAGGED.get(t, [])})
        self.keys_read += len(keys)
        return keys


def test_a_random_extra_tag_does_not_reread_the_popular_ones() -> None:
    store = CountingStore()
    pools = FilterPools(store.filter_pks)
    first = pools.keys(["hub", "bulb"], "en", generation=1)
    assert len(first) == 200_000 and np.all(np.diff(first) > 0)
    read = store.keys_read
    for i in range(50):  # what the public did: one random tag per request
        again = pools.keys(["bulb", "hub", f"zz-{i}"], "en", generation=1)
        assert again is first or np.array_equal(again, first)
    assert store.keys_read == read  # only the unknown tags were asked: they hold nothing
    assert all(len(tags or ()) == 1 for tags, _ in store.calls)
    assert list(pools.keys(["CAM", "nothing"], "en", generation=1)) == [5, 7]
    assert len(pools.keys(None, "en", generation=1)) == 200_000


def test_a_new_generation_rereads_and_the_cache_is_bounded_by_bytes() -> None:
    store = CountingStore()
    pools = FilterPools(store.filter_pks, budget=1_000_000)  # ~one 100k-key pool
    pools.keys(["hub"], None, generation=1)
    pools.keys(["hub"], None, generation=2)
    assert store.keys_read == 200_000
    pools.keys(["bulb"], None, generation=2)
    assert pools._bytes <= 1_000_000 or len(pools._cache) == 1
    pools.keys(["hub"], None, generation=2)  # evicted by bulb: read again
    assert store.keys_read == 400_000
