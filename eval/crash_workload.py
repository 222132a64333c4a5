"""What the crash harness's writers send (eval/crash.py), and what each thread may look
like in the store after writes that did or did not get an answer."""

from __future__ import annotations

import random
import threading

WORDS = [
    f"{a}{b}{c}"
    for a in ("br", "cl", "dr", "fl", "gr", "pl", "st", "tr", "v", "z")
    for b in ("a", "e", "i", "o", "u", "ai", "ou")
    for c in ("n", "m", "x", "rk", "lt", "sp")
]
Absent = None  # a thread's state: its version number, or absent


def thread_body(tid: str, version: int, rng: random.Random) -> dict[str, object]:
    words = rng.choices(WORDS, k=18)
    return {
        "id": tid,
        "title": f"{tid} " + " ".join(words[:6]),
        "body": " ".join(words[6:]),
        "answer": f"answer to {tid}, version {version}",
    }


class Workload:
    """What the writers send, and what each thread may look like in the store.

    ``possible[id]`` holds the states a thread may be in: one after an acknowledged write,
    more after a write that got no answer. A check collapses it to what was found."""

    def __init__(self, seed: int, threads: int, batch: int) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.batch = batch
        self.pending = [
            [f"c{seed}-{i:05d}" for i in range(j, min(j + batch, threads))]
            for j in range(0, threads, batch)
        ]
        self.updates_left = max(1, len(self.pending) // 5)
        self.deletes_left = max(1, len(self.pending) // 10)
        self.possible: dict[str, set[int | None]] = {}
        self.version: dict[str, int] = {}
        self.busy: set[str] = set()  # in flight, or unanswered since the last check
        self.created: set[str] = set()
        self.deleted: set[str] = set()  # a delete was sent, answered or not

    def settled(self) -> list[str]:
        return [t for t, p in self.possible.items() if len(p) == 1 and t not in self.busy]

    def next_op(self) -> tuple[str, list[str]] | None:
        with self.lock:
            settled = self.settled()
            choices = []
            if self.pending:
                choices += ["create"] * 6
            if settled and self.updates_left:
                choices.append("update")
            if settled and self.deletes_left:
                choices.append("delete")
            if not choices:
                return None if self._finished() else ("wait", [])
            kind = self.rng.choice(choices)
            if kind == "create":
                ids = self.pending.pop(0)
            else:
                live = [t for t in settled if Absent not in self.possible[t]]
                if not live:
                    return ("wait", [])
                n = min(len(live), 20 if kind == "update" else 5)
                ids = self.rng.sample(live, n)
                if kind == "update":
                    self.updates_left -= 1
                else:
                    self.deletes_left -= 1
                    self.deleted.update(ids)
            self.busy.update(ids)
            return kind, ids

    def target(self, kind: str, tid: str) -> int | None:
        if kind == "delete":
            return Absent
        return self.version.get(tid, 0) + (1 if kind == "update" else 0)

    def done(self, kind: str, ids: list[str], answered: bool) -> None:
        with self.lock:
            for tid in ids:
                new = self.target(kind, tid)
                if answered:
                    self.possible[tid] = {new}
                    self.busy.discard(tid)
                else:
                    self.possible.setdefault(tid, {Absent}).add(new)
                if new is not Absent:
                    self.version[tid] = new
                    self.created.add(tid)

    def retry_creates(self, ids: list[str]) -> None:
        """A create that got no answer goes again after the restart (upsert is idempotent)."""
        with self.lock:
            self.pending.append(ids)

    def _finished(self) -> bool:
        return not self.pending and not self.updates_left and not self.deletes_left

    def finished(self) -> bool:
        with self.lock:
            return self._finished() and not self.busy
