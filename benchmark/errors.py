"""The one exception type for mistakes a user can fix, the exit codes of the CLI, and how
warnings reach the user."""

from __future__ import annotations

import contextlib
import difflib
import sys
import warnings
from collections.abc import Iterable, Iterator

#: Exit codes of ``python -m benchmark``; the README documents them.
EXIT_OK = 0
EXIT_CELLS_FAILED = 1
EXIT_USAGE = 2
EXIT_DATA = 3
EXIT_ENVIRONMENT = 4
#: Output to a closed pipe (``... | head``): the shell's code for a process ended by SIGPIPE.
EXIT_BROKEN_PIPE = 141


MAX_LISTED = 40


class UserError(Exception):
    """A mistake in the user's input, reported as one line without a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class DataError(UserError):
    """Missing or malformed data: a data root, a split file, an image."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_DATA)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): parser
    and unpickling errors span many lines, a user error is one."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UserError:
    """The error for a name that is not registered, with the closest match and the choices."""
    choices = sorted(valid)
    by_lower = {choice.lower(): choice for choice in choices}  # "CoOp" means "coop"
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    hint = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
    shown = ", ".join(choices[:MAX_LISTED])
    if len(choices) > MAX_LISTED:
        shown += f", ... ({len(choices) - MAX_LISTED} more)"
    return UserError(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {shown}")


@contextlib.contextmanager
def warning_lines(category: type[Warning] = Warning) -> Iterator[None]:
    """Each distinct warning of ``category`` raised inside, as one ``warning:`` line on stderr
    after the block; other warnings go on as usual."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", category)
        yield
    ours = [w for w in caught if issubclass(w.category, category)]
    for message in dict.fromkeys(str(w.message) for w in ours):
        print(f"warning: {message}", file=sys.stderr)
    for w in caught:
        if w not in ours:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
