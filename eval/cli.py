"""``unsource eval ...`` and ``unsource finetune``: evaluations driven through the same
library calls as the service.

They reach the ``unsource`` command as a plugin (entry point group ``unsource.cli`` in
pyproject.toml, loaded by ``service.cli.root``), so the service never imports eval: eval builds
on the service's library API, not the other way round.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from eval import harness
from eval import triage as triage_eval
from eval.datasets import RetrievalSet, load
from index.errors import UnsourceError, ValidationFailed
from service.cli.output import console, fail, load_settings, or_exit, problems, progress
from service.runtime import Engine, build_engine, load_triage
from triage.datasets import read_forum, read_labelled, read_routes

eval_app = typer.Typer(help="Score retrieval, abstention and triage on labelled question sets.")

DataOpt = Annotated[
    Path, typer.Option("--data", help="Data set folder (SemEval JSONL or BEIR layout).")
]
SplitOpt = Annotated[str, typer.Option("--split", help="Split of the queries, e.g. dev.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for the JSON, Markdown and PNG.")]
DevsetsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--devset",
        help="A product community's dev set (BEIR + unanswerable), each searched in its own "
        "corpus; repeat for several (default: eval/devsets/lumio, velora and lumio_blind "
        "1-4).",
    ),
]
WorkOpt = Annotated[
    Path | None,
    typer.Option("--work", help="Index folder to reuse between runs (default: a temp dir)."),
]


@contextmanager
def _prepared(
    data_dir: Path, split: str, work: Path | None
) -> Iterator[tuple[Engine, RetrievalSet]]:
    """An engine over the data set's threads (in ``work``, or a temp dir removed after);
    the engine is closed (pools, both stores) when the block leaves."""
    if not data_dir.is_dir():
        raise fail(f"--data: no such folder: {data_dir}")
    try:
        data = load(data_dir, split)
        threads = harness.corpus_threads(data)
    except ValidationFailed as exc:
        raise problems(exc, 20) from exc
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="unsource-eval-")))
        engine = stack.enter_context(build_engine(load_settings(data_dir=work), with_triage=False))
        with console.status(f"indexing {len(threads)} threads of {data.name}"):
            engine.ingest(threads)
        yield engine, data


@eval_app.command("retrieval")
def retrieval_cmd(
    data_dir: DataOpt,
    split: SplitOpt = "dev",
    protocol: Annotated[
        str,
        typer.Option("--protocol", help="candidates: re-rank the given lists; full: search all."),
    ] = "candidates",
    out: OutOpt = Path("out/retrieval"),
    work: WorkOpt = None,
) -> None:
    """MAP, MRR@10, nDCG@10, Recall@5, P@1 for BM25, dense, hybrids and the final ranker."""
    if protocol not in ("candidates", "full"):
        raise fail("--protocol: must be 'candidates' or 'full'")
    proto: Literal["candidates", "full"] = "candidates" if protocol == "candidates" else "full"
    with _prepared(data_dir, split, work) as (engine, data):
        if proto == "candidates" and not data.candidates:
            raise fail("--protocol: this data set has no candidate lists")
        result = harness.run_retrieval(engine, data, proto, split)
    table = Table("ranker", *harness.METRICS, title=f"{result['dataset']} ({proto})")
    for name, scores in result["runs"].items():
        table.add_row(name, *(f"{scores[m]:.4f}" for m in harness.METRICS))
    console.print(table)
    for label, value in result["reference"].items():
        console.print(f"published {label}: MAP {value:.4f}")
    paths = harness.write(
        out, "retrieval", result, harness.markdown_retrieval(result), harness.plot_retrieval
    )
    console.print(f"MAP {result['map']:.4f}; wrote " + ", ".join(str(p) for p in paths))


@eval_app.command("abstention")
def abstention_cmd(
    data_dir: DataOpt,
    split: SplitOpt = "dev",
    target_precision: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Precision the threshold must reach.")
    ] = 0.8,
    out: OutOpt = Path("out/abstention"),
    work: WorkOpt = None,
) -> None:
    """Precision of the top suggestion against coverage, over the similarity threshold."""
    with _prepared(data_dir, split, work) as (engine, data):
        result = harness.run_abstention(engine, data, split, target_precision)
    paths = harness.write(
        out, "abstention", result, harness.markdown_abstention(result), harness.plot_abstention
    )
    console.print(harness.markdown_abstention(result))
    console.print("wrote " + ", ".join(str(p) for p in paths))


@eval_app.command("triage")
def triage_cmd(
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="CSV: text + intent/category, or text + route/queue (optional language, "
            "domain columns). Repeat to pool several files (e.g. CLINC150 val.csv and "
            "oos_val.csv).",
        ),
    ] = None,
    routes: Annotated[
        Path | None, typer.Option("--routes", help="routes.csv mapping intents to routes.")
    ] = None,
    target_recall: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Staff recall the threshold must reach.")
    ] = 0.99,
    out: OutOpt = Path("out/triage"),
    forum: Annotated[
        list[Path] | None,
        typer.Option(
            "--forum",
            help="A forum export (SUMO/Kitsune CSV) scored as community questions: its false "
            "staff rate. Repeat for several.",
        ),
    ] = None,
) -> None:
    """Staff-route recall/precision/F1, false-staff rate per language and domain, queue
    confusion and the threshold curve."""
    try:
        table = read_routes(routes) if routes else None
        rows = [r for f in data or [] for r in read_labelled(f, table, f.parent.name or f.stem)]
        for path in forum or []:
            if not path.is_file():
                raise ValidationFailed([(str(path), "forum", "no such file")])
            rows += read_forum(path, None, "forum")
    except ValidationFailed as exc:
        raise problems(exc, 20) from exc
    if not rows:
        raise fail("--data: no rows")
    try:
        router = load_triage(load_settings())
    except UnsourceError as exc:
        raise or_exit(exc) from exc
    with console.status(f"routing {len(rows)} questions"):
        name = " + ".join(f"{f.parent.name}/{f.name}" for f in [*(data or []), *(forum or [])])
        result = triage_eval.evaluate(router, rows, name, target_recall)
    router.close()
    md = triage_eval.markdown(result)
    paths = harness.write(out, "triage", result, md, triage_eval.plot)
    console.print(md, soft_wrap=True)
    console.print("wrote " + ", ".join(str(p) for p in paths))


def finetune(
    data: Annotated[Path, typer.Option("--data", help="SemEval-layout or BEIR folder.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the fine-tuned model.")],
    split: Annotated[str, typer.Option(help="Split whose qrels train the model.")] = "train",
    base: Annotated[str, typer.Option(help="Model to start from.")] = "all-MiniLM-L6-v2",
    epochs: Annotated[int, typer.Option(min=1, max=50)] = 2,
    lr: Annotated[float, typer.Option(min=1e-7, max=1e-2)] = 2e-5,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Fine-tune the encoder on a split's question->thread judgements (contrastive loss);
    use the result with UNSOURCE_MODEL=OUT. Never train on the split you report."""
    from eval.finetune import finetune as run

    if not data.is_dir():
        raise fail(f"--data: no such folder: {data}")
    try:
        dataset = load(data, split)
    except ValidationFailed as exc:
        raise problems(exc, 10) from exc
    with progress() as bar:
        task = bar.add_task(f"fine-tune {base}", total=None)

        def tick(step: int, steps: int, loss: float) -> None:
            bar.update(task, completed=step, total=steps, description=f"loss {loss:.3f}")

        try:
            path = run(base, dataset, out, epochs=epochs, lr=lr, seed=seed, progress=tick)
        except UnsourceError as exc:
            raise fail(str(exc), 1) from exc
    console.print(f"saved {path}; use it with UNSOURCE_MODEL={path}")


def register(app: typer.Typer) -> None:
    """The ``unsource.cli`` entry point: add eval's commands to the ``unsource`` app."""
    app.add_typer(eval_app, name="eval")
    app.command("finetune")(finetune)


def _relevance_lists(devsets: list[Path], shared: Path) -> dict[str, list[Any]]:
    """Every question's first-stage list for ``tune`` and ``report``: each community
    searched in its own corpus (SUMO Firefox questions against the first), then SemEval."""
    from eval import relevance as rel

    lists: dict[str, list[Any]] = {"tune": [], "report": []}
    for corpus in [*devsets, None]:  # None: SemEval
        with tempfile.TemporaryDirectory(prefix="unsource-relevance-") as tmp:
            settings = load_settings(data_dir=Path(tmp), relevance="off")
            status = console.status(corpus.name if corpus else "semeval")
            with build_engine(settings, with_triage=False) as engine, status:
                if corpus is not None:
                    rel.load_lumio_corpus(engine, corpus)
                    sumo = shared if corpus == devsets[0] else None  # another forum, once
                    for split in lists:
                        lists[split] += rel.lumio_lists(engine, corpus, sumo, split)
                else:
                    rel.load_semeval_corpus(engine, shared / "semeval2016")
                    lists["tune"] += rel.semeval_lists(engine, shared / "semeval2016", "train")
                    lists["report"] += rel.semeval_lists(engine, shared / "semeval2016", "dev")
                engine.save_on_exit = False  # a temp dir: nothing to keep
    return lists


@eval_app.command("relevance")
def relevance_cmd(
    devsets: DevsetsOpt = None,
    shared: Annotated[
        Path, typer.Option("--shared", help="../shared/data (SemEval-2016, SUMO Firefox).")
    ] = Path("../shared/data"),
    train_model: Annotated[
        bool, typer.Option("--train", help="Fit on the tune splits and write --model.")
    ] = False,
    model_path: Annotated[
        Path | None, typer.Option("--model", help="Model file (default: the shipped one).")
    ] = None,
    out: OutOpt = Path("out/relevance"),
) -> None:
    """The relevance stage on questions kept apart: per language, answerable questions that
    get no_match, unanswerable and off-topic ones that get a suggestion, and the curve over
    the threshold; ``--train`` fits the model and its thresholds on the tune splits first."""
    from eval import relevance as rel
    from retrieval.relevance import BUNDLED, RelevanceModel

    devsets = devsets or [rel.DEVSETS / name for name in rel.DEFAULT_DEVSETS]
    for name, folder in (*(("--devset", d) for d in devsets), ("--shared", shared)):
        if not folder.is_dir():
            raise fail(f"{name}: no such folder: {folder}")
    path = model_path or BUNDLED
    lists = _relevance_lists(devsets, shared)
    text = ""
    if train_model:
        model, tune_report = rel.train(lists["tune"])
        model.save(path)
        console.print(f"wrote {path} ({model.version}); thresholds {model.thresholds}")
        text += rel.markdown(tune_report, "tune (out-of-fold probabilities)")
    else:
        try:
            model = RelevanceModel.load(path)
        except (OSError, ValueError, KeyError) as exc:
            raise fail(f"--model: cannot load {path}: {exc}") from exc
    rows = lists["report"]
    probs = [model.probabilities(r.features) for r in rows]
    report = rel.evaluate(rows, probs, model)
    text = rel.markdown(report, f"report ({model.version})") + "\n" + text
    result = {
        "model": model.to_json(),
        "report": report,
        "mistakes": rel.mistakes(rows, probs, model),
        "curve": rel.curve(rows, probs),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "relevance.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "relevance.md").write_text(text, encoding="utf-8")
    console.print(text)
    console.print(f"wrote {out / 'relevance.json'}, {out / 'relevance.md'}")


@eval_app.command("gaps")
def gaps_cmd(
    streams: Annotated[
        list[Path] | None,
        typer.Option(
            "--stream",
            help="A JSONL stream of questions with planted topics (default: "
            "eval/devsets/gaps/tune.jsonl, report.jsonl, blind.jsonl, blind2.jsonl and "
            "blind3.jsonl); repeat for several.",
        ),
    ] = None,
    distance: Annotated[
        float | None,
        typer.Option(min=0.05, max=1.0, help="Cut distance (default: the service's)."),
    ] = None,
    forum: Annotated[
        Path | None,
        typer.Option(
            help="The threads (JSONL or CSV) of the forum the streams ask about, whose "
            "words the gaps look past (default: the demo's).",
        ),
    ] = None,
    out: OutOpt = Path("out/gaps"),
) -> None:
    """Knowledge gaps on streams with planted unanswered topics: is each topic one gap,
    across languages, not merged with another?"""
    from eval import gaps as gaps_eval
    from retrieval.encoders.factory import load_encoder
    from service.insights import DISTANCE

    paths = streams or [gaps_eval.GAPS / f"{name}.jsonl" for name in gaps_eval.STREAMS]
    try:
        loaded = {p.stem: gaps_eval.load_stream(p) for p in paths}
    except OSError as exc:
        raise fail(f"--stream: cannot read {exc.filename}") from exc
    except ValueError as exc:  # also bad JSON
        raise fail(f"--stream: {exc}") from exc
    cut = DISTANCE if distance is None else distance
    encoder = load_encoder(load_settings().triage_encoder)
    try:
        encode = gaps_eval.served_encode(encoder.encode, forum or gaps_eval.FORUM)
    except OSError as exc:
        raise fail(f"--forum: cannot read {exc.filename}") from exc
    except ValidationFailed as exc:
        raise problems(exc, 20) from exc
    results = {name: gaps_eval.evaluate(rows, encode, cut) for name, rows in loaded.items()}
    text = gaps_eval.markdown(results, cut)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gaps.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "gaps.md").write_text(text, encoding="utf-8")
    console.print(text)
    console.print(f"wrote {out / 'gaps.json'}, {out / 'gaps.md'}")


@eval_app.command("served")
def served_cmd(
    url: Annotated[
        str, typer.Option("--url", help="The server, e.g. http://127.0.0.1:8000 (make serve).")
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="UNSOURCE_EVAL_API_KEY", help="A public-role key."),
    ] = None,
    devsets: Annotated[
        list[Path] | None,
        typer.Option(
            "--devset",
            help="A dev set whose corpus the server holds; repeat for several (default: "
            "eval/devsets/lumio and lumio_blind 1-4, on the demo corpus).",
        ),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="Suggestions asked for.")] = 5,
    out: OutOpt = Path("out/served"),
) -> None:
    """Dev questions through a running server's /v1/suggest, triage included, as held-out
    sets score it: per set and language, answerable questions shown an answering thread
    first, sent no_match or to staff, and unanswerable or off-topic ones shown a thread."""
    import httpx

    from eval import served

    devsets = devsets or [served.DEVSETS / name for name in served.DEFAULT_DEVSETS]
    for folder in devsets:
        if not (folder / "queries.jsonl").is_file():
            raise fail(f"--devset: no queries.jsonl in {folder}")
    if not url.startswith(("http://", "https://")):
        raise fail(f"--url: must start with http:// or https://, not {url!r}")
    headers = {"X-API-Key": api_key} if api_key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:

        def post(payload: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
            r = client.post("/v1/suggest", json=payload)
            body = (
                r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            )
            return r.status_code, body, served.retry_after(r.headers.get("retry-after"))

        try:
            outcomes = served.evaluate(post, devsets, k)
        except httpx.HTTPError as exc:
            raise fail(f"--url: cannot reach {url}: {exc}") from exc
        except (RuntimeError, ValidationFailed) as exc:
            raise fail(str(exc)) from exc
    summary = served.summarise(outcomes)
    text = served.markdown(summary, url)
    out.mkdir(parents=True, exist_ok=True)
    result = {"url": url, "k": k, "summary": summary, "outcomes": outcomes}
    (out / "served.json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out / "served.md").write_text(text, encoding="utf-8")
    console.print(text)
    console.print(f"wrote {out / 'served.json'}, {out / 'served.md'}")
