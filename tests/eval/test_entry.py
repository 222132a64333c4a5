"""``python -m eval.*`` scripts follow the CLI convention: one line and exit 2 for a refused
input, exit 1 for a failure, no traceback."""

from __future__ import annotations

import pytest

from eval.entry import run
from index.errors import StoreError, ValidationFailed


def _raises(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize(
    "exc,code,says",
    [
        (ValidationFailed([("line 3", "text", "empty")]), 2, "line 3: field 'text': empty"),
        (FileNotFoundError(2, "No such file", "gone.csv"), 2, "no such file: gone.csv"),
        (StoreError("database is locked"), 1, "database is locked"),
    ],
)
def test_refused_input_and_failures_are_one_line(
    exc: BaseException, code: int, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        run(lambda: _raises(exc))
    assert done.value.code == code
    out = capsys.readouterr()
    assert says in out.err and "Traceback" not in out.err + out.out


def test_the_script_exit_code_is_kept() -> None:
    for returned, code in ((None, 0), (0, 0), (3, 3)):
        with pytest.raises(SystemExit) as done:
            run(lambda r=returned: r)  # type: ignore[misc]
        assert done.value.code == code
