"""A plugin module for the service tests (loaded through $OPTPLAN_PLUGINS by the server, its
workers and their runs): the engine "hold", which writes a marker when it starts, then waits
until the test writes a release file (or its time budget ends), then solves with HiGHS. It
makes "a run is mid-solve" a state the test controls, not a race against the machine's speed.

    $OPTPLAN_HOLD_DIR/started-<run id>-<attempt pid>   written when the engine starts (and a byte
                                                        into started.fifo, which wakes a waiting test)
    $OPTPLAN_HOLD_DIR/release, release.fifo             the test writes the file and opens the FIFO
                                                        for writing: every hold solves
"""

from __future__ import annotations

import math
import os
import select
from pathlib import Path

from optplan.solvers.base import engine_capabilities, get_engine, register_engine


class HoldEngine:
    name = "hold"
    capabilities = engine_capabilities("highs")

    def available(self):
        return None

    def solve(self, data, options, deadline):
        folder = Path(os.environ["OPTPLAN_HOLD_DIR"])
        (folder / f"started-{os.environ.get('OPTPLAN_RUN_ID', 'none')}-{os.getpid()}").write_text(str(os.getppid()))
        try:  # wake a test waiting for this start (it holds started.fifo open for reading)
            ping = os.open(folder / "started.fifo", os.O_WRONLY | os.O_NONBLOCK)
            os.write(ping, b"s")
            os.close(ping)
        except OSError:  # nobody waiting
            pass
        # block (no polling) until the test releases: it writes "release", then opens and closes the
        # FIFO, which wakes every reader; one that opens the FIFO after that finds the file
        fd = os.open(folder / "release.fifo", os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not (folder / "release").exists():
                left = deadline.remaining()
                select.select([fd], [], [], None if math.isinf(left) else left)
        finally:
            os.close(fd)
        return get_engine("highs").solve(data, options, deadline)


register_engine("hold", HoldEngine, HoldEngine.capabilities)
