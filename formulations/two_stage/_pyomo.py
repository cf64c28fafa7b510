"""``pyo``: pyomo.environ, imported on first use, so that the numpy kernels and the array
build of this package load without Pyomo (importing pyomo.environ takes ~0.5-1 s)."""

from __future__ import annotations

import importlib


class _LazyPyomo:
    def __getattr__(self, name: str):
        module = importlib.import_module("pyomo.environ")
        return getattr(module, name)


pyo = _LazyPyomo()
