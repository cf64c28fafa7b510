"""Errors a user can act on, and the CLI exit status of each.

Two families, kept apart so that the CLI maps only what is the user's to fix:

    OptplanError
      InputError                 exit 2  the input is wrong (nothing was solved or written)
        InstanceError                    instance files: every problem, one line each
        OptionError                      an option or argument (also a ValueError)
      SolveError                         the solve ended without a plan to return
        NoSolutionError          exit 4  stopped (e.g. at the time limit) before any feasible plan
        InfeasibleError          exit 5  the instance has no feasible plan (never falls back)
        SolverError              exit 6  the engine failed or is not installed

Anything else is a bug: the CLI prints one line and exit 1, the traceback with --debug.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: A problem's 'found' is cut to this many characters when printed.
MAX_FOUND_CHARS = 200


@dataclass(frozen=True, order=True)
class Problem:
    """One problem in the input: where it is, what was expected, what was found."""

    file: str
    line: int | None  # 1-based line in the file (header = 1); None: the whole file
    field: str | None
    expected: str
    found: str
    more: int = field(default=0, compare=False)  # this line stands for that many more of its kind too

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = f" field '{self.field}'" if self.field else ""
        found = " ".join(str(self.found).splitlines())  # one line, whatever a library's message held
        if len(found) > MAX_FOUND_CHARS:  # an oversized cell is named, not echoed
            found = f"{found[:MAX_FOUND_CHARS]}... ({len(found):,} characters)"
        return f"{where}:{what} expected {self.expected}, found {found}"


class OptplanError(Exception):
    """Base of the errors optplan reports without a traceback. ``written``: what the command
    had written before it stopped, in words (None: nothing)."""

    exit_status = 1
    written: str | None = None


class InputError(OptplanError):
    """The user's input is wrong; ``problems`` lists every one found."""

    exit_status = 2

    def __init__(self, problems: list[Problem], omitted: int = 0, what: str = "the input"):
        self.problems = list(problems)
        self.omitted = omitted
        lines = [str(p) for p in self.problems]
        if omitted:
            lines.append(f"... and {omitted} more problems of the kinds above")
        super().__init__(f"{self.count} problem(s) in {what}:\n" + "\n".join(f"- {x}" for x in lines))

    @property
    def count(self) -> int:
        """Every problem found: those listed, those a listed line stands for, those left out."""
        return len(self.problems) + sum(p.more for p in self.problems) + self.omitted


class InstanceError(InputError):
    """The instance has problems; ``problems`` lists every one found."""

    def __init__(self, problems: list[Problem], omitted: int = 0):
        super().__init__(problems, omitted, what="the instance")


class OptionError(InputError, ValueError):
    """An option or argument has a value optplan cannot use (``name``: the option)."""

    def __init__(self, name: str, expected: str, found):
        self.name = name
        super().__init__([Problem(name, None, None, expected, found if isinstance(found, str) else repr(found))],
                         what="the options")

    def __str__(self) -> str:
        return str(self.problems[0])


class SolveError(OptplanError):
    """The solve ended without a plan to return; ``status`` (a SolverStatus, when an engine
    ran) says why the engine stopped and what it had."""

    def __init__(self, message: str, status=None):
        self.status = status
        super().__init__(message)


class NoSolutionError(SolveError):
    """The engine stopped (time limit, iteration limit, interrupt) before any feasible plan."""

    exit_status = 4


class InfeasibleError(SolveError):
    """The instance has no feasible plan; ``families`` names the constraint families whose
    removal makes it feasible, ``rows`` the rows where known. Never retried by a fallback."""

    exit_status = 5

    def __init__(self, message: str, families: list[str], status=None, rows: list[str] | None = None):
        self.families = families
        self.rows = rows or []
        super().__init__(message, status)


class SolverError(SolveError):
    """The engine failed (an error status) or is not available."""

    exit_status = 6


class EngineUnavailableError(SolverError):
    """The engine's library cannot be imported on this machine."""
