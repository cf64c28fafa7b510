"""A worker: claims runs from the database queue with a lease, runs each as a child process
(optplan.service.jobs), renews the lease with a heartbeat, and records the outcome once.

Claiming is a compare-and-set ``UPDATE ... WHERE state = <seen> AND attempts = <seen>``: of
two workers that saw the same queued run, one updates a row and the other none, on SQLite and
PostgreSQL alike (no dialect-specific locking). A run is claimable when queued, or running
with its lease expired (its worker died or hung): the claim counts an attempt, and a run whose
attempts reach ``max_attempts`` is failed with the reason instead. Every write of a running
run names the worker and attempt that hold it (a fencing token), so a worker that lost its
lease can no longer change the run; the completion row (``run_completions``, keyed by run)
makes a second completion impossible. Cancel: the heartbeat reads ``cancel_requested`` and
kills the child's process group. A worker started by ``optplan serve`` exits (killing its
child) when its parent dies; its runs are then retried after their lease expires.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from optplan.service.db import Database
from optplan.service.jobs import command_line
from optplan.service.models import Dataset, Run, RunCompletion, Worker, utcnow
from optplan.service.storage import Store

log = logging.getLogger("optplan.service.worker")

#: Seconds a claim holds a run without a heartbeat.
LEASE_SECONDS = 30.0
#: Heartbeats per lease (the lease is renewed every LEASE_SECONDS / HEARTBEATS_PER_LEASE s).
HEARTBEATS_PER_LEASE = 6
#: Characters of a run's log kept in the database (the whole log stays in its attempt folder).
LOG_CHARS = 200_000
#: Exit statuses of a command that still made its outputs (0: done; 3: a plan not proven optimal).
FINISHED_STATUSES = (0, 3)
#: Niceness added to a run's process (solves are batch work; the HTTP API is interactive).
RUN_NICENESS = 10
#: Seconds between SIGTERM and SIGKILL when a run is cancelled.
CANCEL_GRACE = 3.0


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the worker dies (Linux prctl PR_SET_PDEATHSIG), so
    a worker killed with -9 leaves no solve running that nobody will record; and a lower CPU
    priority (RUN_NICENESS), so that on a busy machine the API answers before batch solves."""
    os.nice(RUN_NICENESS)
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


def _tail(path: Path, chars: int = LOG_CHARS) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - chars))
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _last_line(text: str) -> str:
    lines = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


class WorkerLoop:
    def __init__(self, db_url: str, data_dir: Path, lease_seconds: float = LEASE_SECONDS, poll: float = 0.5,
                 scheduler: str | None = None, parent_pid: int | None = None):
        self.db = Database(db_url)
        self.store = Store(data_dir)
        self.lease = float(lease_seconds)
        self.beat = self.lease / HEARTBEATS_PER_LEASE
        self.poll = poll
        self.scheduler = scheduler
        self.parent_pid = parent_pid
        self.stopping = False
        with self.db.session() as s:
            w = Worker(host=socket.gethostname(), pid=os.getpid())
            s.add(w)
            s.flush()
            self.id = w.id

    # ------------------------------------------------------------------ the loop
    def orphaned(self) -> bool:
        return self.parent_pid is not None and os.getppid() != self.parent_pid

    def run_forever(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        while not self.stopping and not self.orphaned():
            run = self.claim()
            if run is None:
                self._beat_worker(None)
                time.sleep(self.poll)
                continue
            self.execute(run)
        self.db.dispose()

    def _beat_worker(self, run_id: str | None) -> None:
        with self.db.session() as s:
            s.execute(update(Worker).where(Worker.id == self.id).values(heartbeat_at=utcnow(), run_id=run_id))

    # ------------------------------------------------------------------ claiming
    def claim(self) -> Run | None:
        now = utcnow()
        with self.db.session() as s:
            candidates = s.scalars(
                select(Run).where(or_(Run.state == "queued", and_(Run.state == "running", Run.lease_until < now)))
                .order_by(Run.created_at, Run.id).limit(10)).all()
            for run in candidates:
                seen = dict(state=run.state, attempts=run.attempts)
                same = and_(Run.id == run.id, Run.state == seen["state"], Run.attempts == seen["attempts"])
                if run.state == "running" and run.attempts >= run.max_attempts:
                    reason = (f"the worker running it was lost {run.attempts} times (a crash or a hang past its "
                              f"{self.lease:g} s lease); not retried again")
                    if s.execute(update(Run).where(same).values(state="failed", error=reason, finished_at=now,
                                                                  lease_until=None)).rowcount == 1:
                        s.add(RunCompletion(run_id=run.id, attempt=run.attempts, worker_id=self.id, state="failed"))
                        s.commit()
                    continue
                values = dict(state="running", attempts=seen["attempts"] + 1, worker_id=self.id,
                              lease_until=now + timedelta(seconds=self.lease), progress="claimed by a worker")
                if run.started_at is None:
                    values["started_at"] = now
                if s.execute(update(Run).where(same).values(**values)).rowcount == 1:
                    s.commit()
                    s.refresh(run)
                    return run
                s.rollback()
        return None

    def _held(self, run: Run):
        return and_(Run.id == run.id, Run.worker_id == self.id, Run.attempts == run.attempts, Run.state == "running")

    # ------------------------------------------------------------------ running
    def execute(self, run: Run) -> None:
        with self.db.session() as s:
            dataset = s.get(Dataset, run.dataset_id)
            sha = dataset.sha256
        attempt = self.store.attempt_dir(run.id, run.attempts)
        out = attempt / "out"
        log_path = attempt / "log.txt"
        # the child runs in the attempt folder and writes "out" there: its lines name no server path but the dataset's
        argv = command_line(run.kind, self.store.dataset_dir(sha), Path("out"), run.options, run.changes, self.scheduler)
        env = dict(os.environ, PYTHONUNBUFFERED="1", OPTPLAN_RUN_ID=run.id)
        t0 = time.monotonic()
        self._beat_worker(run.id)
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=attempt, env=env, start_new_session=True, preexec_fn=_die_with_parent)
        outcome = "running"
        while True:
            try:
                code = proc.wait(timeout=self.beat)
                break
            except subprocess.TimeoutExpired:
                pass
            if self.orphaned() or self.stopping:
                self._kill(proc)
                return  # the lease expires and another worker retries the run
            text = _tail(log_path)
            with self.db.session() as s:
                held = s.execute(update(Run).where(self._held(run)).values(
                    lease_until=utcnow() + timedelta(seconds=self.lease), progress=_last_line(text), log=text)).rowcount
                cancel = s.scalar(select(Run.cancel_requested).where(Run.id == run.id))
            self._beat_worker(run.id)
            if not held:  # the lease was lost (this worker hung): someone else runs it now
                self._kill(proc)
                log.warning("run %s: lease lost; abandoned", run.id)
                return
            if cancel:
                self._kill(proc)
                outcome = "cancelled"
                code = proc.returncode
                break
        seconds = time.monotonic() - t0
        self._complete(run, attempt, out, log_path, code, outcome, seconds)

    def _kill(self, proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=CANCEL_GRACE)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        except ProcessLookupError:
            pass

    def _complete(self, run: Run, attempt: Path, out: Path, log_path: Path, code, outcome: str, seconds: float) -> None:
        text = _tail(log_path)
        if outcome == "cancelled":
            state, error = "cancelled", "cancelled on request"
        elif code in FINISHED_STATUSES:
            state, error = "finished", ""
        else:
            state = "failed"
            errors = [ln for ln in text.splitlines() if ln.startswith(("error:", "internal error:"))]
            error = "\n".join(errors[-50:]) or f"the command exited with status {code}: {_last_line(text)}"
        outputs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) if out.is_dir() else []
        summary = {}
        for name in ("summary.json", "monitor.json", "monitor/monitor.json"):  # a plan's; a watch's (its alerts)
            if (out / name).is_file():
                try:
                    summary = json.loads((out / name).read_text())
                except ValueError:
                    summary = {}
                break
        with self.db.session() as s:
            values = dict(state=state, error=error, exit_status=code, seconds=round(seconds, 3), finished_at=utcnow(),
                          lease_until=None, log=text, progress=_last_line(text), outputs=outputs, summary=summary,
                          output_dir=out.relative_to(self.store.root).as_posix() if out.is_dir() else "")
            try:
                if s.execute(update(Run).where(self._held(run)).values(**values)).rowcount != 1:
                    s.rollback()
                    log.warning("run %s: lease lost before completion; outcome discarded", run.id)
                    return
                s.add(RunCompletion(run_id=run.id, attempt=run.attempts, worker_id=self.id, state=state))
                s.flush()
            except IntegrityError:
                s.rollback()
                log.warning("run %s: already completed; outcome discarded", run.id)
                return
        self._beat_worker(None)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m optplan.service.worker", description="an optplan service worker")
    p.add_argument("--db", required=True)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--lease", type=float, default=LEASE_SECONDS)
    p.add_argument("--poll", type=float, default=0.5)
    p.add_argument("--scheduler", default=None)
    p.add_argument("--parent-pid", type=int, default=None)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(process)d %(levelname)s %(message)s",
                        stream=sys.stderr)
    WorkerLoop(a.db, a.data_dir, a.lease, a.poll, a.scheduler, a.parent_pid).run_forever()


if __name__ == "__main__":
    main()
