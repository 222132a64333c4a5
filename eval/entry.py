"""The ``python -m eval.<script>`` entry points follow the ``unsource`` CLI convention
(service/cli/output.py): argparse refuses bad options with exit 2; a refused input (a bad
row or field, a missing file) is named in one line with exit 2, and a failure unsource
raised on purpose is one line with exit 1; never a traceback for either."""

from __future__ import annotations

import sys
from collections.abc import Callable

from index.errors import UnsourceError, ValidationFailed
from service.cli.output import BAD_INPUT, FAILED, err


def run(main: Callable[[], int | None]) -> None:
    try:
        code = main()
    except ValidationFailed as exc:
        for loc, field, msg in exc.problems[:30]:
            err.print(f"{loc}: field '{field}': {msg}", highlight=False)
        sys.exit(BAD_INPUT)
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] no such file: {exc.filename}", highlight=False)
        sys.exit(BAD_INPUT)
    except UnsourceError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(FAILED)
    sys.exit(code or 0)
