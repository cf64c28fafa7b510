"""Where independent tasks run: in this process, in local processes, or on a Dask cluster.

A backend maps a module-level function over a list of picklable items and returns the
results in order (``map``; ``imap`` yields them as they finish, for progress bars;
``map_pinned`` sends item i to worker i mod workers). The depot decomposition sends its
per-depot subproblems through one, the report its tornado cases. Backends:

    serial   this process (tests, debugging, 1 core)
    local    a pool of local processes (default: one per core)
    dask     a dask.distributed cluster: ``scheduler`` is its address (``tcp://host:8786``),
             or None to start a local cluster of ``workers`` processes on this machine

Dask is used through ``distributed.Client.map``/``gather`` only; tasks carry their data, so
workers need nothing but optplan installed (docs/scale.md shows a multi-machine cluster).
Workers keep per-process caches between tasks (e.g. the decomposition's HiGHS models),
which any backend whose workers live across calls (local, dask) benefits from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from optplan.errors import EngineUnavailableError, OptionError

BACKENDS = ("serial", "local", "dask")


class SerialBackend:
    name = "serial"

    def __init__(self):
        self.workers = 1

    def map(self, fn: Callable, items: Sequence[Any]) -> list:
        return [fn(item) for item in items]

    def map_pinned(self, fn: Callable, items: Sequence[Any]) -> list:
        """Like map, with item i always on worker i mod workers (so per-worker caches stay warm)."""
        return self.map(fn, items)

    def imap(self, fn: Callable, items: Sequence[Any]):
        """Results in order, each as soon as it and those before it are done (for progress bars)."""
        for item in items:
            yield fn(item)

    def close(self) -> None:
        pass


class LocalBackend:
    """A pool of local processes, kept for the backend's life (so worker caches persist)."""

    name = "local"

    def __init__(self, workers: int | None = None):
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        self.workers = workers or os.cpu_count() or 1
        # one single-process pool per worker, so that map_pinned can send item i to worker i;
        # spawn: no fork of a process that holds solver threads
        self._pools = [ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) for _ in range(self.workers)]

    def map(self, fn: Callable, items: Sequence[Any]) -> list:
        return self.map_pinned(fn, items)

    def map_pinned(self, fn: Callable, items: Sequence[Any]) -> list:
        return list(self.imap(fn, items))

    def imap(self, fn: Callable, items: Sequence[Any]):
        futures = [self._pools[i % self.workers].submit(fn, item) for i, item in enumerate(items)]
        for f in futures:
            yield f.result()

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(wait=True, cancel_futures=True)


#: How long to try reaching a given Dask scheduler before calling its address wrong.
CONNECT_TIMEOUT = "20s"


#: A local cluster without a dashboard whose HTTP endpoint takes a free port: with
#: ``dashboard_address=None`` alone the scheduler still binds 8787 and warns (a UserWarning;
#: an error under the tests' filter) when another cluster on the machine holds it.
QUIET_CLUSTER = {"dashboard_address": None, "scheduler_kwargs": {"dashboard": False, "dashboard_address": ":0"}}


class DaskBackend:
    """A dask.distributed client: to ``scheduler``, or to a local cluster it starts."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - distributed is a declared dependency
            raise EngineUnavailableError(f"the dask backend needs dask.distributed ({exc})") from exc
        self._cluster = None
        if scheduler is None:
            self._cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                         processes=True, **QUIET_CLUSTER)
            self.client = Client(self._cluster)
        else:
            try:
                self.client = Client(scheduler, timeout=CONNECT_TIMEOUT)
            except OSError as exc:
                raise OptionError("--scheduler", "the address of a running Dask scheduler (tcp://host:port)",
                                  f"{scheduler} ({exc})") from None
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))

    def map(self, fn: Callable, items: Sequence[Any]) -> list:
        futures = self.client.map(fn, list(items), pure=False)
        return self.client.gather(futures)

    def imap(self, fn: Callable, items: Sequence[Any]):
        for future in self.client.map(fn, list(items), pure=False):
            yield future.result()

    def map_pinned(self, fn: Callable, items: Sequence[Any]) -> list:
        addresses = sorted(self.client.scheduler_info().get("workers", {}))
        if not addresses:
            return self.map(fn, items)
        futures = [self.client.submit(fn, item, pure=False, workers=[addresses[i % len(addresses)]],
                                      allow_other_workers=True) for i, item in enumerate(items)]
        return self.client.gather(futures)

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def get_backend(name: str = "local", scheduler: str | None = None, workers: int | None = None):
    """A backend by name (see the module docstring); close() it when done."""
    if name == "serial":
        return SerialBackend()
    if name == "local":
        return LocalBackend(workers)
    if name == "dask":
        return DaskBackend(scheduler, workers)
    raise OptionError("--backend", f"one of {', '.join(BACKENDS)}", name)
