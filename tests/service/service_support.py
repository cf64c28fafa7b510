"""Helpers of the service tests: a real ``optplan serve`` process on 127.0.0.1 with a real database (issue #27).

``Server`` starts the CLI's ``optplan serve`` in a subprocess (its own data dir, a free port,
short leases so that a lost worker's run is retried within seconds), waits for its health
endpoint and reads the admin token it writes on first start. The database is a SQLite file in
the data dir, or the PostgreSQL at $OPTPLAN_TEST_PG_URL (.ci/run starts one and sets it).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import REPO

HERE = Path(__file__).resolve().parent
#: Seconds a worker's lease lasts in these tests (a killed worker's run is retried after it).
TEST_LEASE = 3.0
#: The largest upload the test servers take (MB unpacked): a zip bomb stops there.
TEST_UPLOAD_MB = 16
#: Seconds the server gets to answer its health endpoint after starting.
START_TIMEOUT = 90.0
#: Seconds a test waits for a run to end (the demo solves in about 2 s; this is the bound).
RUN_TIMEOUT = 180.0
PG_ENV = "OPTPLAN_TEST_PG_URL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_database() -> str | None:
    """A fresh PostgreSQL database for one server, or None without $OPTPLAN_TEST_PG_URL."""
    base = os.environ.get(PG_ENV)
    if not base:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test against PostgreSQL: set {PG_ENV} (.ci/run starts one)")
        return None
    import sqlalchemy as sa

    name = f"optplan_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


class Server:
    def __init__(self, data_dir: Path, db_url: str | None = None, workers: int = 2, port: int | None = None):
        self.data_dir, self.db_url, self.workers = Path(data_dir), db_url, workers
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hold = self.data_dir.parent / f"{self.data_dir.name}-hold"
        self.hold.mkdir(parents=True, exist_ok=True)
        for fifo in ("release.fifo", "started.fifo"):
            if not (self.hold / fifo).exists():
                os.mkfifo(self.hold / fifo)
        # what wakes wait_for: a hold engine starting (a byte in started.fifo; a writer end kept
        # open here so that select blocks rather than seeing end-of-file) and every line the
        # server or its workers print (a byte in a pipe)
        self.started_r = os.open(self.hold / "started.fifo", os.O_RDONLY | os.O_NONBLOCK)
        self._started_w = os.open(self.hold / "started.fifo", os.O_WRONLY | os.O_NONBLOCK)
        self.said_r, self._said_w = os.pipe()
        os.set_blocking(self.said_r, False)
        os.set_blocking(self._said_w, False)
        self.proc: subprocess.Popen | None = None
        self.admin: str | None = None
        self.clients: list = []

    def start(self) -> Server:
        argv = [sys.executable, "-m", "optplan", "serve", "--data-dir", str(self.data_dir), "--port", str(self.port),
                "--workers", str(self.workers), "--lease", str(TEST_LEASE), "--schedule-tick", "0.5",
                "--max-upload-mb", str(TEST_UPLOAD_MB)]
        if self.db_url:
            argv += ["--db", self.db_url]
        env = dict(os.environ, OPTPLAN_PLUGINS="service_plugins", OPTPLAN_HOLD_DIR=str(self.hold),
                   PYTHONPATH=os.pathsep.join([str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")]))
        self.log = open(self.data_dir.parent / f"{self.data_dir.name}-server.log", "ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        ready = threading.Event()

        def drain():  # the server's output to its log file; "optplan serve:" once it listens
            for raw in self.proc.stdout:
                try:
                    self.log.write(raw)
                    self.log.flush()
                except ValueError:  # the log was closed: the test is done with this server
                    break
                if raw.startswith(b"optplan serve: http://"):
                    ready.set()
                try:
                    os.write(self._said_w, b".")
                except (BlockingIOError, OSError):  # a full pipe wakes the waiter anyway; a closed one: done
                    pass
            ready.set()  # the process ended: stop waiting

        self.drainer = threading.Thread(target=drain, daemon=True)
        self.drainer.start()
        if not ready.wait(START_TIMEOUT) or self.proc.poll() is not None:
            raise RuntimeError(f"the server did not start: {self.server_log()[-3000:]}")
        assert httpx.get(f"{self.url}/api/v1/health", timeout=30).status_code == 200
        token_file = self.data_dir / "admin-token"
        if token_file.exists():
            self.admin = token_file.read_text().strip()
        return self

    def _close_output(self) -> None:
        """After the process ended: the drain thread reaches EOF, then the pipe and log close."""
        if self.log.closed:
            return
        self.drainer.join(timeout=30)
        self.proc.stdout.close()
        self.log.close()
        for fd in (self.started_r, self._started_w, self.said_r, self._said_w):
            os.close(fd)

    def server_log(self) -> str:
        self.log.flush()
        return (self.data_dir.parent / f"{self.data_dir.name}-server.log").read_text(errors="replace")

    def client(self, token: str | None = None):
        from optplan.client import Client

        c = Client(self.url, token if token is not None else self.admin)
        self.clients.append(c)  # closed at stop()
        return c

    def kill(self) -> None:
        """SIGKILL the server process (the supervisor); its workers notice and exit."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for c in self.clients:
            c.close()
        self._close_output()

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_output()

    def release(self) -> None:
        """Let every held solve go (see service_plugins): the file for those yet to start, the
        FIFO's writer for those waiting on it."""
        (self.hold / "release").write_text("go")
        try:
            fd = os.open(self.hold / "release.fifo", os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: nobody is waiting
            return
        os.write(fd, b"go")
        os.close(fd)

    def started(self, run_id: str) -> list[Path]:
        return sorted(self.hold.glob(f"started-{run_id}-*"))


def wait_for(predicate, timeout: float, what: str, server: Server | None = None, pids=()):
    """``predicate()`` once it is true, checked again only when something happens that can make
    it so: a hold engine starts or the server prints a line (``server``), or one of ``pids``
    ends (a pidfd becomes readable). No polling on the clock; ``timeout`` only bounds the wait."""
    fds = [os.pidfd_open(pid) for pid in pids if alive(pid)]
    if server is not None:
        fds += [server.started_r, server.said_r]
    deadline = time.monotonic() + timeout
    try:
        while True:
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0 or not fds:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            ready, _, _ = select.select(fds, [], [], left)
            for fd in ready:
                if fd in (getattr(server, "started_r", None), getattr(server, "said_r", None)):
                    try:
                        os.read(fd, 4096)  # drain: the next select waits for the next event
                    except BlockingIOError:
                        pass
                else:
                    fds.remove(fd)  # a process ended: the predicate is checked once more
                    os.close(fd)
    finally:
        for fd in fds:
            if server is None or fd not in (server.started_r, server.said_r):
                os.close(fd)


#: PostgreSQL variants run with the slow tests (CI's second step, where .ci/run has started one).
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=DATABASES)
def server(request, tmp_path_factory):
    if request.param == "postgresql":
        url = pg_database()
        if url is None:
            pytest.skip(f"no PostgreSQL here (set {PG_ENV}; CI always does)")
    else:
        url = None
    s = Server(tmp_path_factory.mktemp("svc") / "data", url).start()
    yield s
    s.stop()


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return False
