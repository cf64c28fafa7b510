"""A small Python client of the optplan service (``optplan serve``), over httpx.

    from optplan.client import Client
    c = Client("http://127.0.0.1:8765", token)
    ds = c.upload("instances/demo", kind="instance")
    run = c.submit("solve", ds["id"], options={"time_limit": 60}, changes={"budgets.total": 5000})
    run = c.wait(run["id"])
    c.output(run["id"], "applicants.csv", format="json")["rows"][:3]
    c.decide(run["id"], "approved", comment="as discussed on Monday")

Every error of the service (one line per problem) is raised as ``ServiceError`` with its HTTP
status and ``problems``.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import httpx

TERMINAL = ("finished", "failed", "cancelled")


class ServiceError(RuntimeError):
    def __init__(self, status: int, problems: list[str]):
        super().__init__(f"HTTP {status}: " + "; ".join(problems))
        self.status, self.problems = status, problems


def zip_folder(folder: Path) -> bytes:
    """A folder's files as a zip (paths relative to it, sorted: the same folder, the same bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file():
                info = zipfile.ZipInfo(p.relative_to(folder).as_posix(), date_time=(2000, 1, 1, 0, 0, 0))
                info.external_attr = 0o100644 << 16
                z.writestr(info, p.read_bytes(), zipfile.ZIP_DEFLATED)
    return buf.getvalue()


class Client:
    def __init__(self, url: str, token: str | None, timeout: float = 60.0):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url.rstrip("/") + "/api/v1", headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _do(self, method: str, path: str, **kw):
        r = self.http.request(method, path, **kw)
        if r.status_code >= 400:
            try:
                problems = r.json().get("problems") or [r.text]
            except ValueError:
                problems = [r.text or r.reason_phrase]
            raise ServiceError(r.status_code, problems)
        return r

    def _json(self, method: str, path: str, **kw):
        return self._do(method, path, **kw).json()

    # -- datasets
    def upload(self, path: str | Path, kind: str, name: str = "") -> dict:
        """Upload a folder (zipped here), an archive, or one file as a dataset of ``kind``."""
        path = Path(path)
        if path.is_dir():
            files = [("files", (f"{path.name}.zip", zip_folder(path), "application/zip"))]
        else:
            files = [("files", (path.name, path.read_bytes(), "application/octet-stream"))]
        return self._json("POST", "/datasets", data={"kind": kind, "name": name or path.name}, files=files)

    def datasets(self, **filters) -> dict:
        return self._json("GET", "/datasets", params=filters)

    # -- runs
    def submit(self, kind: str, dataset_id: str, options: dict | None = None, changes: dict | None = None,
               parent_id: str | None = None, idempotency_key: str | None = None, max_attempts: int = 3) -> dict:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = {"kind": kind, "dataset_id": dataset_id, "options": options or {}, "changes": changes or {},
                "parent_id": parent_id, "max_attempts": max_attempts}
        return self._json("POST", "/runs", json=body, headers=headers)

    def run(self, run_id: str) -> dict:
        return self._json("GET", f"/runs/{run_id}")

    def runs(self, **filters) -> dict:
        return self._json("GET", "/runs", params={k: v for k, v in filters.items() if v is not None})

    def wait(self, run_id: str, timeout: float | None = None, poll: float = 0.5) -> dict:
        """The run once finished, failed or cancelled (polls; TimeoutError after ``timeout`` s)."""
        t0 = time.monotonic()
        while True:
            run = self.run(run_id)
            if run["state"] in TERMINAL:
                return run
            if timeout is not None and time.monotonic() - t0 > timeout:
                raise TimeoutError(f"run {run_id} is still {run['state']} after {timeout:g} s")
            time.sleep(poll)

    def log(self, run_id: str) -> str:
        return self._do("GET", f"/runs/{run_id}/log").text

    def outputs(self, run_id: str) -> list[str]:
        return self._json("GET", f"/runs/{run_id}/outputs")["files"]

    def output(self, run_id: str, name: str, format: str | None = None):
        r = self._do("GET", f"/runs/{run_id}/outputs/{name}", params={"format": format} if format else None)
        return r.json() if format == "json" else r.content

    def cancel(self, run_id: str) -> dict:
        return self._json("POST", f"/runs/{run_id}/cancel")

    def compare(self, a: str, b: str) -> dict:
        return self._json("GET", "/compare", params={"a": a, "b": b})

    # -- decisions and schedules
    def decide(self, run_id: str, verdict: str, comment: str = "", scope: str = "network", scope_key: str = "",
               week: str | None = None) -> dict:
        return self._json("POST", f"/runs/{run_id}/decisions", json={
            "verdict": verdict, "comment": comment, "scope": scope, "scope_key": scope_key, "week": week})

    def in_force(self, week: str, scope: str = "network", key: str = "") -> dict:
        return self._json("GET", "/plans/in-force", params={"week": week, "scope": scope, "key": key})

    def orders_in_force(self, week: str, scope: str = "network", key: str = "", channel: str | None = None) -> dict:
        """The whole orders of the plan approved for ``scope`` in the week (rows with applicants > 0)."""
        params = {"week": week, "scope": scope, "key": key, **({"channel": channel} if channel else {})}
        return self._json("GET", "/plans/in-force/orders", params=params)

    def schedule(self, name: str, cron: str, kind: str, dataset_id: str, timezone: str = "UTC",
                 options: dict | None = None, changes: dict | None = None) -> dict:
        return self._json("POST", "/schedules", json={"name": name, "cron": cron, "timezone": timezone, "kind": kind,
                                                       "dataset_id": dataset_id, "options": options or {},
                                                       "changes": changes or {}})

    def create_token(self, name: str, role: str, countries: list[str] | None = None) -> dict:
        return self._json("POST", "/tokens", json={"name": name, "role": role, "countries": countries or []})
