"""Command line: a thin layer over the Python API (Calliope's pattern).

``main`` is the ``optplan`` command; its subcommands live in ``commands.py`` and
``forecast.py`` and load their heavy libraries only when they run, so ``optplan --version``
and ``optplan --help`` start fast. Errors and exit statuses: ``common.py``.
"""

from __future__ import annotations

import click

from optplan.cli import commands, forecast, service
from optplan.cli.common import guarded

__all__ = ["guarded", "main"]


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

if __name__ == "__main__":  # pragma: no cover
    main()
