"""Command line: a thin layer over the Python API (Calliope's pattern).

``main`` is the ``optplan`` command (``run`` starts it); its subcommands live in
``commands.py`` and ``forecast.py`` and load their heavy libraries only when they run, so
``optplan --version`` and ``optplan --help`` start fast. Errors and exit statuses: ``common.py``.
"""

from __future__ import annotations

import click

from optplan.cli import commands, forecast, service
from optplan.cli.common import guarded

__all__ = ["guarded", "main", "run"]

#: Commands whose process ends as soon as their output is flushed (``run``).
FAST_EXIT = frozenset({"solve", "validate"})


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="optplan")
def main() -> None:
    """optplan: plan driver recruiting and incentives for delivery depots under uncertain demand."""
    from optplan.errors import OptionError
    from optplan.plugins import load_plugins

    try:
        load_plugins()  # $OPTPLAN_PLUGINS: modules that register engines (docs/engines.md)
    except OptionError as exc:
        raise click.ClickException(str(exc)) from None


for _command in (
    commands.validate, commands.solve, commands.report, commands.estimate, commands.generate_logs,
    commands.build_instance_cmd, commands.generate, commands.schema, commands.policy, commands.simulate,
    commands.replan, commands.state_template, commands.pipeline, commands.orders, commands.monitor_cmd,
    forecast.forecast, forecast.backtest,
    service.serve, service.tokens, service.datasets, service.runs,
):
    main.add_command(_command)



def run() -> None:
    """The ``optplan`` console script and ``python -m optplan``: ``main``. For the short batch
    commands of FAST_EXIT the process then ends with ``os._exit`` once stdout, stderr and the
    log handlers are flushed, instead of the interpreter's teardown, which frees every object
    of the run one by one (0.2 s of a 3 s `optplan solve` at 50 x 52 x 20, issue #34 part 4).
    Safe for them: their files are written atomically and closed, a solve's worker pools are
    shut down in its own ``finally``, and they start no server; the exit status is click's."""
    import sys

    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    if command not in FAST_EXIT:
        main()
        return
    import logging
    import os

    try:
        main()
        code = 0
    except SystemExit as exc:  # click ends every run with sys.exit(status)
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`optplan solve ... | head`): nothing left to say
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
