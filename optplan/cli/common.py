"""What every command shares: one-line errors with distinct exit statuses, progress lines.

Exit status: 0 success (for solve: the plan asked for, optimal or within the --mip-gap
allowed); 2 bad input or options (every problem listed, one line each; nothing written); 3 a
plan was written but NOT PROVEN OPTIMAL (a time or iteration limit, a stalled CVaR cut loop,
the DP heuristic after a fallback); 4 no plan (e.g. the time limit passed before any feasible
plan); 5 infeasible instance (the constraint family and rows are named); 6 solver failure;
1 an unexpected error (a bug: one line, and the traceback with --debug).
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from pathlib import Path

import click

EXIT_NOT_OPTIMAL = 3
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2


def _fail(lines: list[str], status: int) -> None:
    for line in lines:
        click.secho(line, fg="red", err=True)
    sys.exit(status)


#: Keyword arguments of commands that name outputs (every other Path argument is an input).
OUTPUT_ARGS = ("out", "save_mps")


#: Seeds go to numpy and scikit-learn, which take 0 .. 2^32 - 1.
SEED_MAX = 2**32 - 1
#: The largest log-sd of the weekly demand noise --noise takes (optplan.evaluation.sampling):
#: one standard deviation then moves a week's demand by a factor of 20 either way, past any
#: forecast's error; far beyond it the paths' numbers overflow instead of meaning anything.
MAX_NOISE_SD = 3.0


def _option_name(key: str) -> str:
    """The option as the user typed it (the command's own flag for parameter ``key``)."""
    ctx = click.get_current_context(silent=True)
    for param in ctx.command.params if ctx is not None else ():
        if param.name == key and param.opts:
            return max(param.opts, key=len)
    return f"--{key.replace('_', '-')}"


def check_numbers(kwargs: dict) -> None:
    """Every number option is finite (nan and inf pass click's ranges: comparisons with nan
    are false) and every seed within 0 .. SEED_MAX; the first offender is an OptionError."""
    import math

    from optplan.errors import OptionError

    for key, value in kwargs.items():
        values = value if isinstance(value, (tuple, list)) else (value,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise OptionError(_option_name(key), "a finite number", str(v))
        if key == "seed" and isinstance(value, int) and not 0 <= value <= SEED_MAX:
            raise OptionError("--seed", f"a whole number from 0 to {SEED_MAX:,}", str(value))


#: Commands whose --out names a file (every other command's names a folder).
FILE_OUT_COMMANDS = ("schema",)


def _command_name() -> str | None:
    ctx = click.get_current_context(silent=True)
    return None if ctx is None else ctx.command.name


def _refuse_out_over_inputs(kwargs: dict) -> None:
    """--out may not be, or contain, an input (inputs are never modified or overwritten):
    writing a plan into the instance's folder would replace its CSVs. --out names a folder:
    an existing file there is refused (nothing is overwritten); --save-mps names a file:
    an existing folder there, or a file where its folder should be, is refused."""
    from pathlib import Path

    from optplan.errors import OptionError
    from optplan.io.inputs import input_under

    inputs = [v for k, v in kwargs.items() if k not in OUTPUT_ARGS and isinstance(v, Path) and v.exists()]
    for name in OUTPUT_ARGS:
        out = kwargs.get(name)
        if not isinstance(out, Path):
            continue
        try:
            out.resolve()
        except (RuntimeError, OSError):  # a symbolic link to itself, or a loop of them
            raise OptionError(_option_name(name), "a folder, or a path where one can be made",
                              f"{out} (a symbolic link that loops back on itself)") from None
        names_file = name == "save_mps" or _command_name() in FILE_OUT_COMMANDS
        if not names_file and out.exists() and not out.is_dir():
            raise OptionError("--out", "a folder, or a path where one can be made", f"{out} (an existing file)")
        if names_file and out.is_dir():
            raise OptionError(_option_name(name), "a file path", f"{out} (an existing folder)")
        blocking = next((a for a in out.parents if a.exists() and not a.is_dir()), None)
        if blocking is not None:
            raise OptionError(_option_name(name), "a path whose parents are folders", f"{out} ({blocking} is a file)")
        source = input_under(out, inputs)
        if source is not None:
            raise OptionError(f"--{name.replace('_', '-')}",
                              f"a path that is not, and does not contain, an input ({source})", str(out))


def guarded(func):
    """Turn optplan's errors into red lines and their exit status. Only input errors (and a
    missing or unreadable input path) are exit 2; solve errors keep theirs; anything else
    is a bug: one line, exit 1, the traceback with --debug."""

    @functools.wraps(func)
    def wrapper(*args, debug: bool = False, **kwargs):
        from optplan.errors import InputError, OptplanError

        try:
            check_numbers(kwargs)
            _refuse_out_over_inputs(kwargs)
            try:
                return func(*args, **kwargs)
            finally:
                flush_progress()
        except InputError as exc:
            if debug:
                raise
            lines = [f"error: {p}" for p in exc.problems]
            if exc.omitted:
                lines.append(f"error: ... and {exc.omitted} more problems of the kinds above")
            lines.append(f"{exc.count} problem(s) found; {exc.written or 'nothing was written'}")
            _fail(lines, exc.exit_status)
        except OptplanError as exc:
            if debug:
                raise
            _fail([f"error: {exc}", *([exc.written] if exc.written else [])], exc.exit_status)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
            if debug:
                raise
            _fail([f"error: {exc.filename or ''}: {exc.strerror or exc}"], EXIT_BAD_INPUT)
        except Exception as exc:  # noqa: BLE001 - the CLI promises no traceback
            if debug:
                raise
            _fail([f"internal error: {type(exc).__name__}: {exc} (run again with --debug for the traceback)"],
                  EXIT_UNEXPECTED)

    return click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")(wrapper)


class FoldingHandler(logging.StreamHandler):
    """Progress lines on stderr, a run of lines alike but for their numbers folded into one.

    A sweep solves dozens of nearly identical LPs ("HiGHS stopped after 0.00 s: Optimal", 84
    times in one report): the first line of a run is shown, the rest are counted and said once
    ("... and 83 more like it") when a different line comes or the command ends."""

    _NUMBER = re.compile(r"[-+]?\d[\d,.]*(e[-+]?\d+)?")

    def __init__(self, stream=None):
        super().__init__(stream)
        self._key: str | None = None
        self._folded = 0
        self._last = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:  # a warning is never folded away: said as it comes
            self.flush_folded()
            super().emit(record)
            return
        key = self._NUMBER.sub("#", record.getMessage())
        if key == self._key:
            self._folded += 1
            self._last = self.format(record)
            return
        self.flush_folded()
        self._key = key
        super().emit(record)

    def flush_folded(self) -> None:
        if self._folded == 1:
            self.stream.write(self._last + "\n")
        elif self._folded:
            self.stream.write(f"[optplan]   ... {self._folded - 1} more like it, the last:\n{self._last}\n")
        self.stream.flush()
        self._folded, self._key = 0, None



def flush_progress() -> None:
    """Say what the progress handler folded (at the end of every command)."""
    for handler in logging.getLogger("optplan").handlers:
        if isinstance(handler, FoldingHandler):
            handler.flush_folded()


def progress_to_stderr(quiet: bool) -> None:
    """Progress lines of the optplan logger on stderr as "[optplan] ..." (none if quiet);
    runs of lines alike but for their numbers are folded (FoldingHandler)."""
    logger = logging.getLogger("optplan")
    if quiet:  # silent, also after an earlier command in this process turned the lines on
        logger.handlers[:] = [logging.NullHandler()]
        logger.propagate = False
        return
    handler = FoldingHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[optplan] %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def set_option(command):
    """The --set and --decisions options shared by the commands that read an instance."""
    command = click.option(
        "--decisions", "decisions", type=click.Path(path_type=Path, dir_okay=False), default=None,
        metavar="CSV", help="The planner's committed decisions to plan with, in place of the instance's "
        "decisions.csv (same columns; docs/instance-format.md, 'Committed decisions'); an empty table removes "
        "them.")(command)
    return click.option(
        "--set", "sets", multiple=True, metavar="PATH=VALUE",
        help="Change the instance before use, validated like the files (repeatable): budgets.total=5000, "
             "channels[agency].cost_per_applicant=120, demand.blocks=*1.1 (scale), budgets.weekly=null "
             "(docs/api.md, 'What-if').")(command)


def load_instance_with(instance, sets: tuple[str, ...], decisions: Path | None = None):
    """Load INSTANCE, take the --decisions file in place of its decisions.csv, and apply the
    --set changes (optplan.io.whatif); every problem is an InstanceError (exit 2, one line each)."""
    import optplan
    from optplan.errors import InstanceError
    from optplan.io.whatif import parse_assignment

    inst = optplan.load_instance(instance)
    if decisions is not None:
        inst = inst.with_decisions(decisions)
        click.echo(f"decisions: {decisions} ({len(inst.tables['decisions'])} rows)", err=True)
    if not sets:
        return inst
    changes, problems = {}, []
    for text in sets:
        try:
            path, value = parse_assignment(text)
            changes[path] = value
        except InstanceError as exc:
            problems += list(exc.problems)
    try:
        changed = inst.with_changes(changes)
    except InstanceError as exc:
        problems += list(exc.problems)
    if problems:
        raise InstanceError(problems)
    click.echo(f"changed: {', '.join(sets)}", err=True)
    return changed


class EngineChoice(click.ParamType):
    """--engine: a name in the engine registry (optplan.solvers.engine_names), read when the
    option is parsed, so that an engine registered by a plug-in or a test can be chosen like
    the shipped ones. The registry is imported when a value is parsed or completed, not at the
    top nor for --help: it loads Pyomo's status types, and commands that never solve (validate,
    --help) should not pay for that."""

    name = "engine"

    def _names(self) -> tuple[str, ...]:
        from optplan.solvers import engine_names  # lazy: see the class docstring

        return engine_names()

    def get_metavar(self, param, ctx=None) -> str:
        return "ENGINE"  # --help stays free of the registry (and Pyomo); the option's help names the engines

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(name) for name in self._names() if name.startswith(incomplete)]

    def convert(self, value, param, ctx):
        names = self._names()
        if value in names:
            return value
        self.fail(f"{value!r} is not an engine: one of {', '.join(names)}", param, ctx)
