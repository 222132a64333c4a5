"""``make bench``: encode throughput, index build time, suggest latency and memory on the
SemEval-2016 corpus, written to docs/benchmarks.md with the machine and the command."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from eval.datasets import load_semeval
from eval.harness import corpus_threads
from retrieval.text import question_text, thread_text
from service.config import Settings
from service.runtime import build_engine

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "semeval2016"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(data_dir: Path, repeats: int) -> dict[str, object]:
    data = load_semeval(data_dir, "dev")
    threads = corpus_threads(data)
    queries = [q for split in ("train", "dev") for q in load_semeval(data_dir, split).queries]
    with tempfile.TemporaryDirectory() as work:
        settings = Settings(data_dir=Path(work))
        t0 = time.perf_counter()
        engine = build_engine(settings, with_triage=False)
        load_s = time.perf_counter() - t0
        texts = [thread_text(t) for t in threads]
        engine.encoder.encode(texts[:64])  # warm-up
        t0 = time.perf_counter()
        engine.encoder.encode(texts)
        encode_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        engine.ingest(threads)
        engine.catalog.save()
        build_s = time.perf_counter() - t0
        latencies = []
        for _ in range(repeats):
            for q in queries:
                t0 = time.perf_counter()
                engine.searcher.search(q.title, q.body, k=5)
                latencies.append((time.perf_counter() - t0) * 1000)
        single = []
        for q in queries:
            t0 = time.perf_counter()
            engine.encoder.encode([question_text(q.title, q.body)])
            single.append((time.perf_counter() - t0) * 1000)
        engine.close()
    return {
        "threads": len(threads),
        "model_load_s": round(load_s, 2),
        "encode_texts_per_s": round(len(texts) / encode_s, 1),
        "encode_single_query_ms_p50": round(statistics.median(single), 2),
        "ingest_and_index_s": round(build_s, 2),
        "suggest_ms_p50": round(_pct(latencies, 0.5), 2),
        "suggest_ms_p99": round(_pct(latencies, 0.99), 2),
        "suggest_calls": len(latencies),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = run(args.data, args.repeats)
    machine = f"{_cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    rows = "\n".join(f"| {k} | {v} |" for k, v in result.items())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        "# Benchmarks\n\n"
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}.\n"
        "Command: `make bench` (`python -m eval.bench --out docs/benchmarks.md`).\n\n"
        "SemEval-2016 corpus (all splits), default model and settings, library calls in one\n"
        "process (no HTTP); suggest latency over every train+dev query, "
        f"{args.repeats} passes, encoding included.\n\n"
        "| measure | value |\n|---|---|\n" + rows + "\n"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
