"""MLflow tracking: where runs go, how cells are found again, how metrics are batched.

One MLflow experiment per suite, one run per cell (method x dataset x IPC x seed) and a
nested run per evaluation architecture. Every tag dd-bench writes starts with ``ddb.``.

The default store is the embedded SQLite database ``mlflow.db`` in the working directory,
with artifacts beside it in ``mlartifacts/``; any tracking server works by URI
(``http://host:5000``). ``mlflow`` is imported only when a function here is called.
"""

from __future__ import annotations

import logging
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError, ServiceError

DEFAULT_DB = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
TAG = "ddb."
SCHEMES = ("sqlite", "http", "https")
ALLOWED = (
    "use sqlite:///path/to/mlflow.db or http(s)://host:port of an MLflow tracking server (schemes: sqlite, http, https)"
)
CHECK_TIMEOUT = 3.0
"""Seconds a tracking server has to answer before a command gives up on it."""

# Status values of the ``ddb.status`` tag of a cell run.
RUNNING, DISTILLED, DONE, FAILED, INTERRUPTED = "running", "distilled", "done", "failed", "interrupted"
SAVED = "saved"
"""Value of a cell run's ``ddb.synthetic`` tag once its set is stored whole. A copy into the
artifact store that a kill cut short never carries it, so a resumed cell distils again
rather than reading half a file."""


def default_uri(cwd: str | Path | None = None) -> str:
    """``sqlite:///<cwd>/mlflow.db`` (absolute, so Ray workers and the UI find the same file)."""
    return f"sqlite:///{(Path(cwd) if cwd else Path.cwd()).resolve() / DEFAULT_DB}"


def normalise_uri(uri: str | None) -> str:
    """The default store for ``None``; a relative SQLite path made absolute; any other scheme refused.

    dd-bench writes to a SQLite file (it places the artifacts beside it) or to an MLflow
    tracking server, which may itself keep its runs in PostgreSQL, MySQL or anywhere else.
    """
    if not uri:
        return default_uri()
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ConfigError(f"tracking URI {uri!r} is not supported: {ALLOWED}")
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else ""
        if not path.strip("/"):
            raise ConfigError(f"tracking URI {uri!r} names no database file: {ALLOWED}")
        return uri if path.startswith("/") else f"sqlite:///{Path(path).resolve()}"
    if not urllib.parse.urlsplit(uri).hostname:
        raise ConfigError(f"tracking URI {uri!r} names no host: {ALLOWED}")
    return uri


def check_reachable(uri: str, timeout: float = CHECK_TIMEOUT) -> None:
    """Fail in one line, before any work, when the tracking server of ``uri`` does not answer.

    Any HTTP answer within ``timeout`` seconds counts (a proxy or a login in front of the
    server is still a live server). Without this check MLflow retries for minutes and ends in
    a traceback. A SQLite store needs no check here (see :func:`client`).
    """
    if sqlite_path(uri) is not None:
        return
    context = ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":  # as MLflow itself will
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout, context=context).close()
    except urllib.error.HTTPError:
        return
    except OSError as exc:  # URLError, refused connections and timeouts are all OSErrors
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            reason = f"no answer within {timeout:g} s"
        raise ServiceError(
            f"tracking server {uri} is not reachable ({reason}); start it, e.g. `mlflow server --host 127.0.0.1"
            " --port 5000`, or pass another --tracking-uri"
        ) from None


SQLITE_HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file (an empty file is a new database too)."""


def _first_bytes(path: Path, n: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a SQLite store live beside the database; a server decides its own."""
    db = sqlite_path(uri)
    if db is None:
        return None
    return (db.parent / ARTIFACT_DIR / experiment).resolve().as_uri()


def ui_command(uri: str) -> str:
    """The command that shows these runs in the MLflow UI."""
    if sqlite_path(uri) is not None:
        return f"mlflow ui --backend-store-uri {uri}"
    return f"open {uri} in a browser"


def _quiet_mlflow() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # stdout is for results
    for name in ("mlflow", "alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)


def client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri`` (no global state is touched)."""
    _quiet_mlflow()
    from mlflow.tracking import MlflowClient

    db = sqlite_path(uri)
    if db is not None:
        if db.is_dir():
            raise ConfigError(f"tracking URI {uri!r}: {db} is a folder; name a database file, e.g. {db / DEFAULT_DB}")
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"tracking URI {uri!r}: cannot create the folder {db.parent} ({exc.strerror})") from None
        if not db.exists() and not os.access(db.parent, os.W_OK):
            raise ConfigError(f"tracking URI {uri!r}: cannot create {db} ({db.parent} is not writable)")
        if db.is_file() and db.stat().st_size and _first_bytes(db, len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise ConfigError(
                f"tracking URI {uri!r}: {db} is not an SQLite database; name a new file or an MLflow store"
            )
    return MlflowClient(tracking_uri=uri)


def experiment_id(mlflow_client: Any, name: str, uri: str, create: bool = True) -> str | None:
    """The id of experiment ``name``, created (artifacts beside a SQLite store) if missing."""
    exp = mlflow_client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    if not create:
        return None
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.create_experiment(
            name, artifact_location=artifact_location(uri, name), tags={f"{TAG}suite": name}
        )
    except MlflowException:  # another worker created it first
        exp = mlflow_client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def search(mlflow_client: Any, exp_id: str, filter_string: str = "") -> list[Any]:
    """Every run that matches (all pages), newest first."""
    runs: list[Any] = []
    token = None
    while True:
        page = mlflow_client.search_runs(
            [exp_id],
            filter_string=filter_string,
            max_results=1000,
            page_token=token,
            order_by=["attributes.start_time DESC"],
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def tag_filter(**tags: str) -> str:
    return " and ".join(f"tags.`{TAG}{k}` = '{v}'" for k, v in tags.items())


def flat_params(prefix: str, values: Mapping[str, Any]) -> dict[str, str]:
    """Nested mappings as ``prefix.key`` strings (MLflow params are strings, <= 6000 chars)."""
    out: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flat_params(name, value))
        else:
            out[name] = (str(list(value)) if isinstance(value, tuple) else str(value))[:6000]
    return out


def log_params(mlflow_client: Any, run_id: str, params: Mapping[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), 100):
        mlflow_client.log_batch(run_id, params=items[i : i + 100])


def set_tags(mlflow_client: Any, run_id: str, tags: Mapping[str, Any]) -> None:
    from mlflow.entities import RunTag

    items = [RunTag(k, str(v)[:5000]) for k, v in tags.items() if v is not None]
    for i in range(0, len(items), 100):
        mlflow_client.log_batch(run_id, tags=items[i : i + 100])


class MetricBuffer:
    """``log(name, value, step)`` batched into ``log_batch`` calls (one per ``size`` metrics)."""

    def __init__(self, mlflow_client: Any, run_id: str, size: int = 500):
        self.client, self.run_id, self.size = mlflow_client, run_id, size
        self.pending: list[Any] = []

    def log(self, name: str, value: float, step: int = 0) -> None:
        import math
        import time

        from mlflow.entities import Metric

        value = float(value)
        if math.isfinite(value):
            self.pending.append(Metric(name, value, int(time.time() * 1000), int(step)))
        if len(self.pending) >= self.size:
            self.flush()

    def log_many(self, values: Mapping[str, float], step: int = 0) -> None:
        for k, v in values.items():
            self.log(k, v, step)

    def flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending[:1000], self.pending[1000:]
            self.client.log_batch(self.run_id, metrics=batch)


def log_text(mlflow_client: Any, run_id: str, text: str, artifact_file: str) -> None:
    mlflow_client.log_text(run_id, text, artifact_file)


def list_artifacts(mlflow_client: Any, run_id: str, path: str | None = None) -> set[str]:
    try:
        return {f.path for f in mlflow_client.list_artifacts(run_id, path)}
    except Exception:  # a missing folder reads as empty on every artifact store
        return set()


def tags_of(run: Any) -> dict[str, str]:
    """A run's ``ddb.`` tags without the prefix."""
    return {k[len(TAG) :]: v for k, v in run.data.tags.items() if k.startswith(TAG)}


def runs_table(uri: str, experiment: str) -> tuple[list[Any], list[Any]]:
    """(cell runs, eval runs) of a suite's experiment; empty if it was never run."""
    db = sqlite_path(uri)
    if db is not None and not db.exists():  # reading must not create an empty store
        return [], []
    c = client(uri)
    exp = experiment_id(c, experiment, uri, create=False)
    if exp is None:
        return [], []
    runs = search(c, exp)
    cells = [r for r in runs if r.data.tags.get(f"{TAG}kind") == "cell"]
    evals = [r for r in runs if r.data.tags.get(f"{TAG}kind") == "eval"]
    return cells, evals


def metric_history(uri: str, run_ids: Iterable[str], key: str) -> dict[str, list[tuple[int, float]]]:
    c = client(uri)
    return {rid: [(m.step, m.value) for m in c.get_metric_history(rid, key)] for rid in run_ids}
