"""Plugin modules: ``OPTPLAN_PLUGINS=pkg.module,other.module`` names modules that are imported
when the CLI starts (and by ``optplan serve`` and its workers' runs), so that an engine they
register (``optplan.solvers.register_engine``) can be chosen by name like a shipped one.
"""

from __future__ import annotations

import importlib
import os

from optplan.errors import OptionError

ENV = "OPTPLAN_PLUGINS"


def load_plugins(names: str | None = None) -> list[str]:
    """Import the plugin modules named (default: $OPTPLAN_PLUGINS); OptionError naming one
    that cannot be imported."""
    names = os.environ.get(ENV, "") if names is None else names
    loaded = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise OptionError(ENV, "importable plugin modules, comma-separated", f"{name} ({exc})") from None
        loaded.append(name)
    return loaded
