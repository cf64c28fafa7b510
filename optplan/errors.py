"""Errors a user can act on, and the CLI exit status of each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One problem in the input: where it is, what was expected, what was found."""

    file: str
    line: int | None  # 1-based line in the file (header = 1); None: the whole file
    field: str | None
    expected: str
    found: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = f" field '{self.field}'" if self.field else ""
        return f"{where}:{what} expected {self.expected}, found {self.found}"


class OptplanError(Exception):
    """Base of the errors optplan reports without a traceback."""

    exit_status = 1


class InstanceError(OptplanError):
    """The instance has problems; ``problems`` lists every one found."""

    exit_status = 2

    def __init__(self, problems: list[Problem], omitted: int = 0):
        self.problems = list(problems)
        self.omitted = omitted
        lines = [str(p) for p in self.problems]
        if omitted:
            lines.append(f"... and {omitted} more problems of the kinds above")
        super().__init__(f"{len(self.problems) + omitted} problem(s) in the instance:\n" + "\n".join(f"- {x}" for x in lines))


class NoSolutionError(OptplanError):
    """The solver stopped without a usable plan (``status`` says why)."""

    exit_status = 4

    def __init__(self, message: str, status=None):
        self.status = status
        super().__init__(message)


class InfeasibleError(NoSolutionError):
    """The instance has no feasible plan; ``families`` names the constraint families
    whose removal makes it feasible."""

    exit_status = 5

    def __init__(self, message: str, families: list[str], status=None, rows: list[str] | None = None):
        self.families = families
        self.rows = rows or []
        super().__init__(message, status)


class SolverError(OptplanError):
    """The solver failed (HiGHS reported an error, or is not installed)."""

    exit_status = 6
