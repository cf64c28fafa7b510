"""``optplan serve``: migrate the database, start the workers and the scheduler, serve HTTP.

The web process only books work; runs execute in ``--workers`` worker processes
(optplan.service.worker) that this process starts, watches and replaces: a worker that
exits is started again, and one whose heartbeat is older than two leases (hung) is killed
and replaced (its run is retried by another after its lease expires). Schedules are ticked
every ``SCHEDULE_TICK`` seconds. Killing this process (even with SIGKILL) loses nothing: the
queue is in the database, the workers exit when they see their parent gone, and their runs
are claimed again after a restart.

On the first start (no token in the database) an admin token is written to
``<data dir>/admin-token`` (mode 600) and its path, never the token, is printed.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import uvicorn
from sqlalchemy import delete, func, select

from optplan.service import auth
from optplan.service.app import Settings, create_app
from optplan.service.db import Database, migrate, sqlite_url
from optplan.service.models import Token, Worker, utcnow
from optplan.service.scheduler import tick
from optplan.service.storage import Limits
from optplan.service.worker import LEASE_SECONDS

log = logging.getLogger("optplan.service")

#: Seconds between two looks for due schedules.
SCHEDULE_TICK = 10.0
#: Seconds between two looks at the workers.
WATCH_EVERY = 1.0


def bootstrap_admin(db: Database, data_dir: Path) -> Path | None:
    """An admin token on first start, written to a file only the owner can read."""
    with db.session() as s:
        if s.scalar(select(func.count(Token.id))):
            return None
        _, secret = auth.create_token(s, "admin (first start)", "admin")
    path = Path(data_dir) / "admin-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return path


class Supervisor:
    def __init__(self, db_url: str, data_dir: Path, workers: int, lease: float, scheduler: str | None,
                 schedule_tick: float = SCHEDULE_TICK):
        self.db_url, self.data_dir, self.n, self.lease = db_url, Path(data_dir), workers, lease
        self.scheduler, self.schedule_tick = scheduler, schedule_tick
        self.db = Database(db_url)
        self.procs: list[subprocess.Popen] = []
        self.stop = threading.Event()

    def _start_worker(self) -> subprocess.Popen:
        argv = [sys.executable, "-m", "optplan.service.worker", "--db", self.db_url, "--data-dir", str(self.data_dir),
                "--lease", str(self.lease), "--parent-pid", str(os.getpid())]
        if self.scheduler:
            argv += ["--scheduler", self.scheduler]
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL)

    def start(self) -> None:
        with self.db.session() as s:  # workers of a previous life of this data dir are gone
            s.execute(delete(Worker).where(Worker.heartbeat_at < utcnow() - timedelta(seconds=4 * self.lease)))
        self.procs = [self._start_worker() for _ in range(self.n)]
        threading.Thread(target=self._watch, name="watch", daemon=True).start()

    def _watch(self) -> None:
        last_tick = 0.0
        while not self.stop.is_set():
            for i, p in enumerate(self.procs):
                if p.poll() is not None:
                    log.warning("worker pid %d exited with status %s; starting another", p.pid, p.returncode)
                    self.procs[i] = self._start_worker()
            self._replace_hung()
            if time.monotonic() - last_tick >= self.schedule_tick:
                last_tick = time.monotonic()
                try:
                    made = tick(self.db)
                    if made:
                        log.info("schedules submitted %d run(s): %s", len(made), ", ".join(made))
                except Exception as exc:  # noqa: BLE001 - the watcher must keep watching
                    log.error("schedule tick failed: %s: %s", type(exc).__name__, exc)
            self.stop.wait(WATCH_EVERY)

    def _replace_hung(self) -> None:
        stale = utcnow() - timedelta(seconds=2 * self.lease)
        with self.db.session() as s:
            hung = s.scalars(select(Worker).where(Worker.heartbeat_at < stale)).all()
            pids = {p.pid: p for p in self.procs}
            for w in hung:
                if w.pid in pids and pids[w.pid].poll() is None:
                    log.warning("worker pid %d has not beaten for %.0f s; killing it", w.pid,
                                (utcnow() - w.heartbeat_at).total_seconds())
                    os.kill(w.pid, signal.SIGKILL)
                s.delete(w)

    def shutdown(self) -> None:
        self.stop.set()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def serve(data_dir: Path, db_url: str | None, host: str, port: int, workers: int, scheduler: str | None,
          lease: float = LEASE_SECONDS, max_upload_mb: int = 512, schedule_tick: float = SCHEDULE_TICK,
          say=print) -> None:
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if not log.handlers:  # what the supervisor does (schedules submitted, workers replaced), on stderr
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s serve %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    url = db_url or sqlite_url(data_dir)
    migrate(url)
    db = Database(url)
    token_file = bootstrap_admin(db, data_dir)
    if token_file is not None:
        say(f"first start: an admin token was written to {token_file} (readable by you only)")
    sup = Supervisor(url, data_dir, workers, lease, scheduler, schedule_tick)
    sup.start()
    app = create_app(Settings(url, data_dir, Limits(bytes=max_upload_mb * 1024 * 1024)))
    shown = url if url.startswith("sqlite") else url.split("@")[-1]  # no password in the output
    line = (f"optplan serve: http://{host}:{port}/api/v1 (OpenAPI: /api/v1/openapi.json), database {shown}, "
            f"{workers} worker(s), data in {data_dir}")
    try:
        Announcing(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False),
                   lambda: say(line)).run()
    finally:
        sup.shutdown()


class Announcing(uvicorn.Server):
    """A uvicorn server that says it serves only once its socket listens: a supervisor (or a
    test) that waits for the line can connect at once, without polling."""

    def __init__(self, config: uvicorn.Config, announce):
        super().__init__(config)
        self.announce = announce

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self.announce()
