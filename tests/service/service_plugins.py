"""A plugin module for the service tests (loaded through $OPTPLAN_PLUGINS by the server, its
workers and their runs): the engine "hold", which writes a marker when it starts, then waits
until the test writes a release file (or its time budget ends), then solves with HiGHS. It
makes "a run is mid-solve" a state the test controls, not a race against the machine's speed.

    $OPTPLAN_HOLD_DIR/started-<run id>-<attempt pid>   written when the engine starts
    $OPTPLAN_HOLD_DIR/release                           the test writes it: every hold solves
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from optplan.solvers.base import engine_capabilities, get_engine, register_engine

HOLD_POLL = 0.05


class HoldEngine:
    name = "hold"
    capabilities = engine_capabilities("highs")

    def available(self):
        return None

    def solve(self, data, options, deadline):
        folder = Path(os.environ["OPTPLAN_HOLD_DIR"])
        (folder / f"started-{os.environ.get('OPTPLAN_RUN_ID', 'none')}-{os.getpid()}").write_text(str(os.getppid()))
        while not (folder / "release").exists() and not deadline.expired():
            time.sleep(HOLD_POLL)
        return get_engine("highs").solve(data, options, deadline)


register_engine("hold", HoldEngine, HoldEngine.capabilities)
