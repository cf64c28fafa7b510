"""python -m optplan: the same as the optplan command."""

from optplan.cli import run

run()
