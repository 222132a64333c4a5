"""``make bench``: encoder backends, unsource beside txtai and a plain sentence-transformers
+ faiss script, and /suggest over HTTP at 10k, 100k and 1M threads; written to
docs/benchmarks.md with the machine and the command.

Encoders: SemEval-2016 corpus (1,170 threads) and its 117 train+dev questions.
Side by side: the same synthetic corpus and questions through all three systems, each
encoding for real. Scale: synthetic corpora (eval/synth.py) served by a real
``unsource serve`` (triage included), driven by eval/loadgen.py in another process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from eval import side_by_side, synth
from eval.bench_import import import_throughput
from eval.bench_relevance import relevance_cost
from eval.bench_report import SECTIONS, markdown
from eval.datasets import load_semeval
from eval.entry import run
from eval.harness import corpus_threads
from eval.launcher import ServerProcess
from eval.retrieval import evaluate
from index import seed
from index.store.factory import open_store
from index.vectors import layered as vectors
from retrieval.encoders.base import DEFAULT_MODEL, Encoder, Precision
from retrieval.encoders.factory import load_encoder
from retrieval.text import question_text, thread_text
from service.config import Settings
from service.runtime import build_engine, load_encoder_for, query_form_for, space_for

DEFAULT_DATA = synth.DEFAULT_DATA
BACKENDS = ("torch", "torch-bf16", "openvino", "openvino-int8")
RATES = json.dumps({r: "10000000/minute" for r in ("public", "agent", "admin")})


def _ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def _semeval_map(encoder: Encoder, work: Path, data_dir: Path) -> float:
    dev = load_semeval(data_dir, "dev")
    # one English encoder: no word vectors for the relevance stage, which MAP (a ranking
    # measure over the given candidates) does not read anyway
    settings = Settings(data_dir=work, relevance="off")
    with build_engine(settings, encoder=encoder, with_triage=False) as engine:
        engine.ingest(corpus_threads(dev))
        result = evaluate("final", engine.searcher, dev, "candidates").scores["map"]
    return round(result, 4)


def _json_from(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module args`` in a fresh process; its last stdout line, as JSON."""
    out = subprocess.run(
        [sys.executable, "-m", module, *args], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def encode_one(backend: str, data_dir: Path, work: Path) -> dict[str, Any]:
    """One backend in this process: load, best of 3 batch passes, single-query latency,
    the vectors (saved for the quality comparison) and SemEval dev MAP."""
    dev = load_semeval(data_dir, "dev")
    texts = [thread_text(t) for t in corpus_threads(dev)]
    queries = [
        question_text(q.title, q.body)
        for s in ("train", "dev")
        for q in load_semeval(data_dir, s).queries
    ]
    precision: Precision = "int8" if backend.endswith("-int8") else "auto"
    encoder, load_s = _timed(
        partial(load_encoder, precision=precision),
        DEFAULT_MODEL,
        64,
        backend.removesuffix("-int8"),
        work / "encoders",
        None,
    )
    encoder.encode(texts[:64])  # warm-up
    passes = [_timed(encoder.encode, texts) for _ in range(3)]
    docs, seconds = passes[0][0], min(p[1] for p in passes)
    single, qvecs = [], []
    for q in queries:
        vec, s = _timed(encoder.encode, [q])
        single.append(s * 1000)
        qvecs.append(vec[0])
    np.savez(work / f"vectors-{backend}.npz", docs=docs, queries=np.stack(qvecs))
    return {
        "backend": backend,
        "load_s": round(load_s, 2),
        "texts_per_s": round(len(texts) / seconds, 1),
        "single_query_p50_ms": _ms(single, 50),
        "semeval_dev_map": _semeval_map(encoder, work / f"map-{backend}", data_dir),
    }


def encoders(data_dir: Path, work: Path) -> list[dict[str, Any]]:
    """Each backend in a fresh process (no other runtime's threads about), then quality
    against torch fp32: mean cosine, top-10 overlap per question."""
    rows: list[dict[str, Any]] = []
    for backend in BACKENDS:
        rows.append(
            _json_from(
                "eval.bench",
                "--encoder-only",
                backend,
                "--data",
                str(data_dir),
                "--work",
                str(work),
            )
        )
    ref = np.load(work / "vectors-torch.npz")
    ref_top = np.argsort(-(ref["queries"] @ ref["docs"].T), axis=1)[:, :10]
    for row in rows:
        got = np.load(work / f"vectors-{row['backend']}.npz")
        top = np.argsort(-(got["queries"] @ got["docs"].T), axis=1)[:, :10]
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, ref_top, strict=True)])
        row["mean_cosine_to_fp32"] = round(float((got["docs"] * ref["docs"]).sum(axis=1).mean()), 5)
        row["top10_overlap"] = round(float(overlap), 4)
        row["speedup"] = round(row["texts_per_s"] / rows[0]["texts_per_s"], 2)
        print(json.dumps(row), flush=True)
    return rows


class Server(ServerProcess):
    """A real ``unsource serve`` on loopback (dev mode, the bench's rate limits), started
    on construction; ``start_s`` is how long it took to be ready."""

    def __init__(self, data: Path, triage: Path, log: Path, **env: str) -> None:
        environ = {
            **os.environ,
            "UNSOURCE_DATA_DIR": str(data),
            "UNSOURCE_TRIAGE_MODEL_DIR": str(triage),
            "UNSOURCE_RATE_LIMITS": RATES,
            **env,
        }
        super().__init__(environ, log, args=["--dev"])
        t0 = time.perf_counter()
        self.start(timeout=3600, poll=0.5)  # a million threads take minutes to load
        self.start_s = round(time.perf_counter() - t0, 1)
        self.url = self.base

    def fast_scan_s(self, timeout: float = 600.0) -> float:
        """Seconds from now until /readyz no longer says the IVF fast-scan codes are
        being built (they build in the background after a start; searches meanwhile use
        the 8-bit scan, and the build takes a core) nor that the replica's caches are
        being filled (``warm_up``: the store's pages, term counts, word vectors; done
        well within the fast-scan build at 1M)."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            ready = httpx.get(self.url + "/readyz", timeout=5).json()
            if ready.get("fast_scan") != "building" and ready.get("warm_up") != "running":
                return round(time.perf_counter() - t0, 1)
            time.sleep(0.5)
        raise RuntimeError(f"the fast-scan codes were not built in {timeout:.0f} s")

    def memory_mib(self) -> dict[str, float]:
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in status if ":" in line)
        return {k: round(int(fields[k].split()[0]) / 1024, 1) for k in ("VmRSS", "VmHWM")}

    def cpu_s(self) -> float:
        """CPU seconds the server process has used (all its threads, user + system)."""
        assert self.proc is not None
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")

    def load(self, questions: Path, clients: int, tags: str = "") -> dict[str, Any]:
        """The load generator's figures, and the server's CPU over its run: per request,
        and in cores (of the run's seconds): a server below the machine's cores while
        clients wait is held up by something other than CPU (docs/deployment.md)."""
        before = self.cpu_s()
        result = _json_from(
            "eval.loadgen",
            "--url",
            self.url,
            "--questions",
            str(questions),
            "--clients",
            str(clients),
            "--tags",
            tags,
        )
        used = self.cpu_s() - before
        result["server_cpu_ms_per_request"] = round(used * 1000 / max(1, result["requests"]), 2)
        result["server_cores"] = round(used / max(result["seconds"], 1e-9), 2)
        return result


def _recall(data: Settings, queries: np.ndarray) -> float | None:
    """recall@10 of the saved index, searched as a replica serves it (with its IVF parts'
    fast-scan companions), against exact search over the stored vectors."""
    _, index = vectors.read(data.index_dir, nprobe=data.ivf_nprobe)
    if index.kind == "flat":
        return None
    vectors.prepare_fast(index, background=False)
    store = open_store(None, data.database_path)
    exact = vectors.FlatIndex(index.dimension)
    for pks, _, vecs in store.iter_embeddings():
        exact.add(pks, np.stack(vecs))
    store.close()
    return recall_at_10(index, exact, queries)


def _encoder_probe(encoder: Encoder, questions: list[str]) -> float:
    """p50 ms of the served encoder (pair) encoding each of ``questions`` alone, in this
    process: a fixed piece of work that says how fast the machine runs at this moment."""
    return _ms([_timed(encoder.encode, [q])[1] * 1000 for q in questions], 50)


def _query_vectors(encoder: Encoder, questions: list[str]) -> np.ndarray:
    """The vectors a replica searches with for ``questions``: an encoder pair's query form
    (docs: retrieval/encoders/pair.py), not the document vectors threads are stored as."""
    docs = encoder.encode(questions)
    form = query_form_for(Settings(), encoder)
    return docs if form is None else np.stack([form(d) for d in docs])


def recall_at_10(
    index: vectors.VectorIndex, exact: vectors.VectorIndex, queries: np.ndarray
) -> float | None:
    """The share of each question's exact 10 nearest threads that ``index`` returns in its
    own 10. Only threads of positive cosine count as neighbours: a vector that is zero in
    every block the corpus holds threads in (a document vector of a Portuguese question over
    an English-only corpus) has none, and ranking its zero scores would compare ties. None
    if no question has a neighbour."""
    found = wanted = 0
    for q in queries:
        truth = {i for i, score in exact.search(q, 10) if score > 0}
        if truth:
            wanted += len(truth)
            found += len(truth & {i for i, _ in index.search(q, 10)})
    return round(found / wanted, 4) if wanted else None


def _seeded_start(work: Path, data: Settings, triage: Path, log: Path) -> float:
    """A new replica (empty data dir) on the same store, seeded from the index the first
    one published (`unsource index publish`): seconds until /readyz answers 200. Its
    model exports come with it (the first replica's encoder cache, as in a replica image)."""
    seed_dir = work / "seed"
    seed.publish(data.index_dir, seed_dir)
    replica = work / "replica"
    server = Server(
        replica,
        triage,
        log,
        UNSOURCE_DATABASE_URL=f"sqlite:///{data.database_path}",
        UNSOURCE_INDEX_SEED_DIR=str(seed_dir),
        UNSOURCE_ENCODER_CACHE=str(data.encoder_cache_dir),
    )
    started = server.start_s
    server.stop()
    if "seeded from" not in log.read_text(errors="replace"):
        raise RuntimeError(f"the new replica did not start from the seed; see {log}")
    shutil.rmtree(replica)
    shutil.rmtree(seed_dir)
    return started


def _question_files(work: Path, questions: list[str]) -> tuple[Path, Path, Path]:
    """The questions of the 1-client, 16-client and filtered runs, none in two of them (the
    filtered run's would otherwise come from the query cache)."""
    runs = {"q1": questions[:320], "q16": questions[320:1940], "q1f": questions[2200:2520]}
    for name, asked in runs.items():
        (work / f"{name}.json").write_text(json.dumps(asked))
    return work / "q1.json", work / "q16.json", work / "q1f.json"


def _batching_gain(row: dict[str, Any], unbatched: Server, many: Path) -> dict[str, Any]:
    """16 clients on a replica that encodes one question at a time, against the batched
    replica's figures in ``row`` (as served, and with every encode a cache hit)."""
    alone = unbatched.load(many, 16)
    unbatched.stop()
    rps = alone["throughput_rps"]
    return {
        "sixteen_clients_unbatched": alone,
        "batching_gain": round(row["sixteen_clients"]["throughput_rps"] / rps, 2),
        "encode_free_gain": round(row["sixteen_clients_encoded"]["throughput_rps"] / rps, 2),
    }


def scale(
    work: Path,
    seeds: synth.Seeds,
    sizes: list[int],
    triage: Path,
    questions: list[str],
    encoder: Encoder,
) -> list[dict[str, Any]]:
    one, many, filtered = _question_files(work, questions)
    qvecs = _query_vectors(encoder, questions[:200])
    probe = questions[1940:2040]  # asked in no load run
    rows = []
    for size in sizes:
        data = Settings(data_dir=work / f"scale-{size}")
        data.data_dir.mkdir(parents=True)
        store = open_store(None, data.database_path)
        _, fill_s = _timed(synth.fill, store, seeds, size, space_for(data, encoder))
        store.close()
        log = work / f"server-{size}.log"
        server = Server(data.data_dir, triage, log)
        row: dict[str, Any] = {
            "threads": size,
            "fill_store_s": round(fill_s, 1),
            "first_start_s": server.start_s,
            "first_start_fast_scan_s": server.fast_scan_s(),
        }
        # straight after the first start's index build, whose memory peak pushed the
        # store's pages out of the page cache: kept apart from the serving numbers below,
        # which come from a restarted replica as it runs from then on
        row["one_client_after_build"] = server.load(one, 1)
        row["first_start_memory_mib"] = server.memory_mib()
        server.stop()
        server = Server(data.data_dir, triage, log)
        row["restart_s"] = server.start_s
        # the serving numbers are those of a replica whose fast-scan codes are built
        row["restart_fast_scan_s"] = server.fast_scan_s()
        # the machine's phase right before the serving runs: this host's speed drifts by up
        # to 40 % within an hour, and runs are comparable only alongside it
        row["encoder_probe_p50_ms"] = _encoder_probe(encoder, probe)
        row["one_client"] = server.load(one, 1)
        # a tag filter matching 1 thread in 20 (50,000 at 1M): pushed into both searches
        row["one_client_filtered"] = server.load(filtered, 1, tags=synth.FILTER_TAG)
        row["filtered_questions"] = "distinct"
        row["sixteen_clients"] = server.load(many, 16)
        # the same questions again: every encode is a cache hit, the bound on what any
        # encoder batching could give
        row["sixteen_clients_encoded"] = server.load(many, 16)
        row["memory_mib"] = server.memory_mib()
        server.stop()
        manifest = json.loads((data.index_dir / vectors.MANIFEST_FILE).read_text())
        row["index"] = manifest["kind"]
        row["index_file_mib"] = round((data.index_dir / manifest["file"]).stat().st_size / 2**20, 1)
        row.update(
            _batching_gain(
                row, Server(data.data_dir, triage, log, UNSOURCE_MICRO_BATCH_SIZE="1"), many
            )
        )
        row["new_replica_from_seed_s"] = _seeded_start(work, data, triage, log)
        row["recall_at_10_vs_flat"] = _recall(data, qvecs)
        print(json.dumps(row), flush=True)
        rows.append(row)
        shutil.rmtree(data.data_dir)
    return rows


def machine() -> str:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().split()[1]
    return (
        f"{cpu}, {os.cpu_count()} cores, {int(mem) / 2**20:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def merge_rows(earlier: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scale rows by corpus size: a re-run size replaces its earlier row, the rest stay."""
    by_size = {row["threads"]: row for row in earlier} | {row["threads"]: row for row in new}
    return [by_size[size] for size in sorted(by_size)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--triage-dir", type=Path, default=Path("data/triage"))
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--side-by-side", type=int, default=10_000, help="corpus size")
    parser.add_argument(
        "--side-by-side-repeats", type=int, default=3, help="runs of each system and job"
    )
    parser.add_argument("--import-posts", type=int, default=100_000, help="dump size, posts")
    parser.add_argument("--work", type=Path, default=None, help="scratch dir (default: temp)")
    parser.add_argument("--encoder-only", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated subset",
    )
    parser.add_argument("--merge", type=Path, help="earlier JSON result to keep other sections of")
    return parser


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    if args.encoder_only:  # the child process of ``encoders``
        print(json.dumps(encode_one(args.encoder_only, args.data, args.work)))
        return
    if not (args.triage_dir / "CURRENT").exists():
        parser.error(f"--triage-dir: no triage model in {args.triage_dir} (make triage-model)")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    started = time.perf_counter()
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        result: dict[str, Any] = json.loads(args.merge.read_text()) if args.merge else {}
        result.update(
            machine=machine(),
            date=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            command=" ".join(["python -m eval.bench", *sys.argv[1:]]),
        )
        sections = set(args.sections.split(","))
        if "encoders" in sections:
            result["encoders"] = encoders(args.data, work)
        # the served default (make serve): the encoder pair on openvino
        encoder = load_encoder_for(Settings(data_dir=work / "served"))
        seeds = synth.Seeds.from_semeval(args.data, encoder)
        questions = synth.questions(seeds, 2520, seed=11)
        if "side_by_side" in sections:
            result["side_by_side"] = side_by_side.run(
                args.data, args.side_by_side, args.side_by_side_repeats
            )
        if "relevance" in sections:
            result["relevance"] = relevance_cost(work, args.triage_dir.resolve())
        if "import" in sections:
            result["import"] = import_throughput(work, seeds, args.import_posts)
        if "scale" in sections:
            rows = scale(work, seeds, sizes, args.triage_dir.resolve(), questions, encoder)
            result["scale"] = merge_rows(result.get("scale", []), rows)
    result["minutes"] = round((time.perf_counter() - started) / 60, 1)
    # where each section's numbers come from: this run, or (merged) the run that made them
    made = sorted(sections - {"scale"}) + [f"scale {n}" for n in sizes if "scale" in sections]
    provenance = dict(result.get("provenance", {}))
    provenance.update({s: f"{result['date']} on {result['machine']}" for s in made})
    result["provenance"] = provenance
    result["sections"] = made
    if args.merge:
        result["merged"] = f"{args.sections} re-run, other sections from the earlier run"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(result))
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out} in {result['minutes']} min")


if __name__ == "__main__":
    run(main)
