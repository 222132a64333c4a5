import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from index.errors import ValidationFailed
from index.ingest import read_threads
from service.cli.root import app
from tests.support import TEST_POLICY, TRIAGE_TRAIN

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, triage_dir: Path) -> Path:
    monkeypatch.setenv("UNSOURCE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("UNSOURCE_TRIAGE_MODEL_DIR", str(triage_dir))
    monkeypatch.setenv("UNSOURCE_TRIAGE_POLICY", str(TEST_POLICY))
    monkeypatch.setenv("UNSOURCE_MODEL", "hash:64")
    monkeypatch.setenv("UNSOURCE_MIN_SIMILARITY", "0.2")
    return tmp_path


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GOOD = [
    {"id": "a", "title": "Reset hub to factory settings", "answer": "Hold 15 s", "split": "x"},
    {"id": "b", "title": "Bulb flickers on dimmer", "answer": "Use a switch"},
]


def test_ingest_suggest_delete_reindex(env: Path) -> None:
    f = _write_jsonl(env / "t.jsonl", GOOD)
    r = runner.invoke(app, ["ingest", str(f)])
    assert r.exit_code == 0, r.output
    assert "2 created" in r.output and "ignored columns" in r.output
    r = runner.invoke(app, ["ingest", str(f)])  # idempotent
    assert r.exit_code == 0 and "0 created" in r.output and "2 with unchanged text" in r.output
    r = runner.invoke(app, ["suggest", "Reset hub to factory settings", "--json", "-k", "1"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["suggestions"][0]["thread_id"] == "a"
    assert runner.invoke(app, ["delete", "a"]).exit_code == 0
    r = runner.invoke(app, ["suggest", "Reset hub to factory settings", "--json"])
    assert "a" not in {s["thread_id"] for s in json.loads(r.stdout)["suggestions"]}
    assert runner.invoke(app, ["delete", "a"]).exit_code == 1
    r = runner.invoke(app, ["reindex"])
    assert r.exit_code == 0 and "1 vectors" in r.output


def test_bad_rows_refuse_the_file_with_line_and_field(env: Path) -> None:
    bad = env / "bad.jsonl"
    bad.write_text(
        json.dumps(GOOD[0]) + "\n"
        + json.dumps({"id": "c", "title": ""}) + "\n"
        + "{broken\n"
        + json.dumps({"id": "a", "title": "again"}) + "\n"
    )  # fmt: skip
    r = runner.invoke(app, ["ingest", str(bad)])
    assert r.exit_code == 2
    assert "line 2: field 'title'" in r.output
    assert "line 3" in r.output and "invalid JSON" in r.output
    assert "line 4: field 'id'" in r.output and "nothing was loaded" in r.output
    r = runner.invoke(app, ["suggest", "Reset hub", "--json"])
    assert json.loads(r.stdout)["suggestions"] == []


def test_missing_file_and_empty_question_exit_2(env: Path) -> None:
    assert runner.invoke(app, ["ingest", str(env / "nope.jsonl")]).exit_code == 2
    assert runner.invoke(app, ["suggest", "  "]).exit_code == 2
    assert runner.invoke(app, ["suggest", "x", "-k", "0"]).exit_code == 2


def test_csv_ingest_with_tags(env: Path) -> None:
    f = env / "t.csv"
    f.write_text('id,title,answer,tags,language\nc1,Camera on microSD,Yes,"camera,storage",en\n')
    loaded = read_threads(f)
    assert loaded.threads[0].tags == ["camera", "storage"]
    assert runner.invoke(app, ["ingest", str(f)]).exit_code == 0


def test_csv_bad_row_reports_line(env: Path) -> None:
    f = env / "t.csv"
    f.write_text("id,title,answer_votes\nc1,ok,3\nc2,ok,lots\n")
    with pytest.raises(ValidationFailed) as err:
        read_threads(f)
    assert err.value.problems == [("line 3", "answer_votes", err.value.problems[0][2])]


def test_demo_load_if_empty(env: Path) -> None:
    r = runner.invoke(app, ["demo", "load", "--if-empty"])
    assert r.exit_code == 0 and "66 created" in r.output
    r = runner.invoke(app, ["demo", "load", "--if-empty"])
    assert r.exit_code == 0 and "already holds 66" in r.output


def test_triage_command(env: Path) -> None:
    r = runner.invoke(app, ["triage", "My card 4111 1111 1111 1111 was stolen", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["route"] == "staff" and "4111" not in r.stdout
    r = runner.invoke(app, ["triage", "How do I reset my hub?"])
    assert r.exit_code == 0 and "community" in r.stdout
    assert runner.invoke(app, ["triage", "  "]).exit_code == 2


def test_suggest_command_says_staff(env: Path) -> None:
    r = runner.invoke(app, ["suggest", "Why was I charged twice on my bill?", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["decision"] == "staff" and out["queue"] == "billing" and out["suggestions"] == []


def test_triage_train_and_eval(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNSOURCE_TRIAGE_ENCODER", "hash:128")
    out = env / "model"
    r = runner.invoke(app, ["triage", "train", "--data", str(TRIAGE_TRAIN), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "CURRENT").is_file() and "trained triage-" in r.output
    monkeypatch.setenv("UNSOURCE_TRIAGE_MODEL_DIR", str(out))
    r = runner.invoke(app, ["eval", "triage", "--data", str(TRIAGE_TRAIN), "--out", str(env / "r")])
    assert r.exit_code == 0, r.output
    result = json.loads((env / "r" / "triage.json").read_text())
    assert result["staff"]["n"] == 20 and result["staff"]["staff_true"] == 9
    assert len(result["curve"]) == 99 and (env / "r" / "triage.png").stat().st_size > 10_000
    assert sum(map(sum, result["confusion"]["matrix"])) == 20


def test_triage_train_bad_input_exit_2(env: Path) -> None:
    bad = env / "bad.csv"
    bad.write_text("text,route,queue\nhello,staff,nowhere\n,community,\n")
    r = runner.invoke(app, ["triage", "train", "--data", str(bad), "--no-seed"])
    assert r.exit_code == 2
    assert "line 2: field 'queue'" in r.output and "line 3: field 'text'" in r.output
    r = runner.invoke(app, ["triage", "train", "--data", str(env / "missing.csv")])
    assert r.exit_code == 2 and "no such file" in r.output
    r = runner.invoke(app, ["eval", "triage", "--data", str(bad)])
    assert r.exit_code == 2


def test_verify_reports_the_index_against_the_store(env: Path) -> None:
    f = _write_jsonl(env / "t.jsonl", GOOD)
    assert runner.invoke(app, ["ingest", str(f)]).exit_code == 0
    r = runner.invoke(app, ["verify", "--sample", "2"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {
        "ok": True, "threads": 2, "indexed": 2, "missing": [], "extra": [], "duplicated": 0,
        "sampled": 2, "misranked": [],
    }  # fmt: skip


def test_a_bad_setting_is_one_line_naming_it_and_exit_2(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNSOURCE_FUSION", "bogus")
    for command in (["demo", "load"], ["serve", "--dev"], ["triage", "hello"]):
        r = runner.invoke(app, command)
        assert r.exit_code == 2, (command, r.output)
        lines = [line for line in r.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "UNSOURCE_FUSION" in lines[0], r.output
        assert "Traceback" not in r.output


def test_serve_with_a_bad_policy_value_exits_2_naming_the_field(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any port is opened or model served: not a traceback in the JSON log."""
    bad = env / "policy.toml"
    bad.write_text(TEST_POLICY.read_text().replace("threshold = ", "threshold = 3", 1))
    monkeypatch.setenv("UNSOURCE_TRIAGE_POLICY", str(bad))
    r = runner.invoke(app, ["serve", "--dev", "--port", "1"])
    assert r.exit_code == 2, r.output
    assert "classifier.threshold" in r.output and "Traceback" not in r.output


def test_index_publish_and_db_commands(env: Path) -> None:
    seed_dir = env / "seed"
    r = runner.invoke(app, ["index", "publish", str(seed_dir)])
    assert r.exit_code == 1 and "no saved index" in r.output  # nothing saved yet
    f = _write_jsonl(env / "t.jsonl", GOOD)
    assert runner.invoke(app, ["ingest", str(f)]).exit_code == 0  # saves the index on close
    r = runner.invoke(app, ["index", "publish", str(seed_dir)])
    assert r.exit_code == 0, r.output
    assert (seed_dir / "vectors.manifest.json").exists() and list(seed_dir.glob("*.faiss"))
    r = runner.invoke(app, ["db", "current"])
    assert r.exit_code == 0, r.output
    versions = json.loads(r.output)
    assert versions["up_to_date"] and versions["threads"]["up_to_date"], versions
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
