"""``make bench``'s import section: `unsource import stackexchange` end to end on a
synthetic Stack Exchange dump (Posts.xml + PostLinks.xml), encoding included.

The dump is written from SemEval-2016 threads varied word by word (eval/synth.py): each
question gets one to three answers (one of them accepted for half the questions) and one
question in 20 is closed as a duplicate of an earlier one, so that the staging, the
answer choice and the duplicate resolution all do their work. Posts count both questions
and answers, as the dump does. The command runs as a subprocess with the served default
settings on a fresh data dir (the encoder export is warmed first and not counted)."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from eval import synth


def write_dump(folder: Path, seeds: synth.Seeds, posts: int, seed: int = 5) -> int:
    """Write a dump of about ``posts`` posts; returns the number of questions."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    links = []
    questions = 0
    with (folder / "Posts.xml").open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        post_id = 0
        for thread, _ in synth.threads(seeds, posts, seed=seed):
            if post_id >= posts:
                break
            post_id += 1
            qid = post_id
            answers = rng.randint(1, 3)
            accepted = qid + rng.randint(1, answers) if rng.random() < 0.5 else None
            attrs = f'Id="{qid}" PostTypeId="1" Score="{rng.randint(0, 20)}"'
            if accepted:
                attrs += f' AcceptedAnswerId="{accepted}"'
            out.write(
                f'  <row {attrs} CreationDate="2024-01-01T00:00:00.000"'
                f" Title={quoteattr(thread.title)} Body={quoteattr('<p>' + thread.body + '</p>')}"
                f' Tags="&lt;{thread.tags[0]}&gt;" />\n'
            )
            questions += 1
            if questions > 20 and rng.random() < 0.05:
                links.append((qid, rng.randint(1, qid - 1)))
            for _ in range(answers):
                post_id += 1
                text = synth._vary(thread.body or thread.title, rng, seeds.words, 0.5)
                out.write(
                    f'  <row Id="{post_id}" PostTypeId="2" ParentId="{qid}"'
                    f' Score="{rng.randint(-1, 30)}" OwnerUserId="{rng.randint(1, 500)}"'
                    f" Body={quoteattr('<p>' + text + '</p>')} />\n"
                )
        out.write("</posts>\n")
    with (folder / "PostLinks.xml").open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<postlinks>\n')
        for n, (dup, original) in enumerate(links, start=1):
            out.write(
                f'  <row Id="{n}" PostId="{dup}" RelatedPostId="{original}" LinkTypeId="3" />\n'
            )
        out.write("</postlinks>\n")
    return questions


def import_throughput(work: Path, seeds: synth.Seeds, posts: int) -> dict[str, Any]:
    dump = work / "se-dump"
    questions = write_dump(dump, seeds, posts)
    unsource = str(Path(sys.executable).with_name("unsource"))
    env_dir = work / "import-data"
    # warm the encoder export on a tiny import into another data dir (not counted)
    warm = work / "warm-dump"
    write_dump(warm, seeds, 20, seed=6)
    cache = ["env", f"UNSOURCE_ENCODER_CACHE={work / 'encoders'}"]
    subprocess.run([*cache, f"UNSOURCE_DATA_DIR={work / 'warm-data'}", unsource, "import",
                    "stackexchange", str(warm)], check=True, capture_output=True)  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(
        [*cache, f"UNSOURCE_DATA_DIR={env_dir}", unsource, "import", "stackexchange", str(dump)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    summary = next(line for line in done.stdout.splitlines() if line.startswith("imported"))
    imported = int(summary.split()[1])
    return {
        "posts": posts,
        "questions": questions,
        "threads": imported,
        "seconds": round(seconds, 1),
        "threads_per_s": round(imported / seconds, 1),
        "posts_per_s": round(posts / seconds, 1),
        "summary": summary,
    }


def markdown(result: dict[str, Any] | None) -> str:
    if not result:
        return "(not run)"
    return (
        f"{result['posts']:,} posts ({result['questions']:,} questions): "
        f"{result['threads']:,} threads imported in {result['seconds']} s, "
        f"**{result['threads_per_s']} threads/s** ({result['posts_per_s']} posts/s), "
        "end to end: XML parsing, staging, HTML to text, both encoders, store and index."
    )
