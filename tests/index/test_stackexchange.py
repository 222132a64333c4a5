"""Stack Exchange dump import (index/sources/stackexchange.py, `unsource import`) on a real
public dump sample: cstheory.meta.stackexchange.com, CC BY-SA
(tests/data/stackexchange/SOURCE.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import py7zr
import pytest
from typer.testing import CliRunner

from index.sources.html_text import html_to_text
from index.sources.stackexchange import Dump, DumpError
from service.cli.root import app

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "stackexchange"
BOMB = """<?xml version="1.0"?>
<!DOCTYPE posts [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<posts><row Id="1" PostTypeId="1" Title="&b;" Body="x" /></posts>
"""


def _threads(dump: Dump) -> dict[str, object]:
    return {t.id: t for batch in dump.threads(site_url="https://x.example") for t in batch}


def test_a_real_dump_imports_accepted_answers_and_drops_duplicates() -> None:
    with Dump.open(SAMPLE) as dump:
        threads = _threads(dump)
        report = dump.report
    assert report.questions == 136 and len(threads) == 112
    assert report.skipped == {
        "closed as a duplicate of an imported question": 11,
        "no answer with text (none, or only images)": 13,
    }
    latex = threads["se-3"]
    assert latex.title == "LaTeX math support ?" and latex.accepted  # type: ignore[attr-defined]
    assert latex.answer.startswith("Alright, community support")  # type: ignore[attr-defined]
    assert latex.url == "https://x.example/questions/3"  # type: ignore[attr-defined]
    assert "math" in latex.tags  # type: ignore[attr-defined]
    # a chain of duplicates (1157 -> 1448 -> 1619 -> 2745 -> 2875) ends at its original
    assert report.duplicates["se-1157"] == "se-2875" and "se-2875" in threads
    assert set(report.duplicates.values()) <= set(threads)
    # 3022 is closed as a duplicate of 3016, which has no answer: 3022 is a thread itself
    assert "se-3022" not in report.duplicates
    assert report.duplicate_text["se-1"].startswith("What should our site/domain name be?")


def test_display_names_come_from_users_xml(tmp_path: Path) -> None:
    folder = tmp_path / "dump"
    shutil.copytree(SAMPLE, folder)
    (folder / "Users.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<users>\n'
        '  <row Id="4" DisplayName="Geoff Dalgas" />\n</users>\n'
    )
    with Dump.open(folder) as dump:
        assert _threads(dump)["se-3"].answer_author == "Geoff Dalgas"  # type: ignore[attr-defined]


def test_a_7z_archive_imports_and_a_truncated_one_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "cstheory.meta.stackexchange.com.7z"
    with py7zr.SevenZipFile(archive, "w") as z:
        z.write(SAMPLE / "Posts.xml", "Posts.xml")
        z.write(SAMPLE / "PostLinks.xml", "PostLinks.xml")
    with Dump.open(archive) as dump:
        assert len(_threads(dump)) == 112
    cut = tmp_path / "cut.7z"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DumpError, match=r"cut\.7z"):
        Dump.open(cut)


@pytest.mark.parametrize(
    "text,message",
    [(BOMB, "unsafe XML"), ('<?xml version="1.0"?><posts><row Id="1" PostTy', "not well-formed")],
)
def test_unsafe_or_truncated_xml_is_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "Posts.xml").write_text(text)
    with pytest.raises(DumpError, match=message):
        Dump.open(tmp_path)


def test_html_becomes_text() -> None:
    html = "<p>Use <code>reset</code> &amp; wait.</p><ul><li>one</li><li>two</li></ul>"
    html += "<script>x()</script>"
    assert html_to_text(html) == "Use reset & wait.\n\none\n\ntwo"


def _cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {"UNSOURCE_DATA_DIR": str(tmp_path / "data"), "UNSOURCE_MODEL": "hash:64"}
    r = CliRunner().invoke(app, ["import", *args], env=env)
    return r.exit_code, r.output


def test_cli_imports_a_dump_idempotently_and_refuses_bad_input(tmp_path: Path) -> None:
    code, out = _cli(tmp_path, "stackexchange", str(SAMPLE))
    assert code == 0, out
    assert "imported 112 threads" in out and "112 created" in out and "skipped 11" in out
    code, out = _cli(tmp_path, "stackexchange", str(SAMPLE))
    assert code == 0 and "112 unchanged" in out
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "Posts.xml").write_text(BOMB)
    code, out = _cli(tmp_path / "other", "stackexchange", str(bad))
    assert code == 2 and "unsafe XML" in out
    assert not (tmp_path / "other" / "data" / "unsource.db").exists()  # nothing written
    code, out = _cli(tmp_path, "stackexchange", str(tmp_path / "missing"))
    assert code == 2 and "no such file" in out


def test_cli_imports_jsonl_and_csv_with_a_column_map(tmp_path: Path) -> None:
    rows = [
        {"key": "faq-1", "question": "How do I reset?", "reply": "Hold the button.", "x": 1},
        {"key": "faq-2", "question": "Where is the manual?", "reply": "On the website."},
    ]
    jsonl = tmp_path / "faq.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = "id=key,title=question,answer=reply"
    code, out = _cli(tmp_path, "jsonl", str(jsonl), "--map", spec)
    assert code == 0 and "imported 2 threads" in out and "column x" in out, out
    csv = tmp_path / "faq.csv"
    csv.write_text("key,question,reply\nfaq-3,Is there an app?,Yes.\n")
    code, out = _cli(tmp_path, "csv", str(csv), "--map", spec)
    assert code == 0 and "imported 1 threads" in out, out
    code, out = _cli(tmp_path, "jsonl", str(jsonl), "--map", "title")
    assert code == 2 and "--map" in out
    code, out = _cli(tmp_path, "jsonl", str(jsonl), "--map", "heading=question")
    assert code == 2 and "heading" in out
    code, out = _cli(tmp_path, "jsonl", str(jsonl))  # no id or title without the map
    assert code == 2 and "field" in out
