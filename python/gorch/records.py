"""Run records in a store (a local ``--data-dir`` or an S3 bucket), read
through the Go store and reader code."""

from __future__ import annotations

import ctypes
import json
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

from . import _lib, errors
from .checkpoint import Checkpoint, _open
from .datasets import dataset as _dataset

_PAGE = 65536


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise errors.ConfigError("this needs pandas: pip install 'gorch[pandas]'", op="pandas") from None
    return pandas


def _flatten(prefix: str, v: Any, out: Dict[str, Any]) -> None:
    if isinstance(v, dict):
        for k, x in v.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), x, out)
    else:
        out[prefix] = v


def _time(s: Optional[str]) -> Any:
    """An RFC 3339 time from a record as a pandas Timestamp (UTC); NaT for none."""
    pd = _pandas()
    if not s or s.startswith("0001-01-01"):
        return pd.NaT
    return pd.Timestamp(s).tz_convert("UTC")


class Store:
    """A record store: ``Store("./gorch-data")`` or ``Store("s3://bucket",
    endpoint="host:port", ...)``; ``s3://bucket/prefix`` keeps every key
    under ``prefix/`` (as the services' ``--s3-prefix``).

    For S3, unset arguments come from the environment as for the CLI:
    ``GORCH_S3_ENDPOINT``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_REGION``. ``insecure=True`` talks plain HTTP.
    """

    def __init__(self, location: "_lib.PathLike", *, endpoint: Optional[str] = None,
                 access_key: Optional[str] = None, secret_key: Optional[str] = None,
                 region: Optional[str] = None, insecure: bool = False, create_bucket: bool = False) -> None:
        loc = _lib.cstr(location, "location", path=True).decode()
        if loc.startswith("s3://"):
            bucket, _, prefix = loc[len("s3://"):].partition("/")
            cfg: Dict[str, Any] = {"s3": {
                "endpoint": endpoint or os.environ.get("GORCH_S3_ENDPOINT", ""), "bucket": bucket, "prefix": prefix,
                "access_key": access_key or os.environ.get("AWS_ACCESS_KEY_ID", ""),
                "secret_key": secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
                "region": region or os.environ.get("AWS_REGION", ""),
                "insecure": bool(insecure), "create_bucket": bool(create_bucket)}}
            for k in ("endpoint", "access_key", "secret_key", "region"):
                if not isinstance(cfg["s3"][k], str):
                    raise errors.ArgumentError(f"{k} must be a str")
        else:
            cfg = {"path": loc}
        h = ctypes.c_uint64()
        _lib.call("gorch_store_open", json.dumps(cfg).encode(), ctypes.byref(h))
        self._h = h.value
        self._finalizer = __import__("weakref").finalize(self, _lib.close, self._h)
        self.location = loc

    def __repr__(self) -> str:
        return f"<gorch.Store {self.location!r}>"

    def close(self) -> None:
        """Releases the store (also done when it is garbage collected)."""
        self._finalizer()

    def summaries(self) -> List[Dict[str, Any]]:
        """Every run's summary (run_summary.json, or run.json before the
        first summary), oldest first, as dicts. Reads one object per run."""
        return _lib.call_json("gorch_store_runs", ctypes.c_uint64(self._h)) or []

    def runs(self) -> Any:
        """One row per run, oldest first, like ``mlflow.search_runs``: a
        ``pandas.DataFrame`` with ``run_id``, ``name``, ``status``,
        ``complete``, ``attempt``, ``created``/``started``/``finished``
        (UTC datetimes), ``duration_s``, the spec as ``config.*`` columns
        (``config.optimizer.lr``), the last value of each metric as
        ``metrics.*`` (``metrics.eval/accuracy``) and ``tags.*``."""
        pd = _pandas()
        rows = [_summary_row(s) for s in self.summaries()]
        cols = ["run_id", "name", "status", "complete", "attempt", "created", "started", "finished", "duration_s"]
        df = pd.DataFrame(rows)
        if df.empty:
            return pd.DataFrame(columns=cols)
        rest = sorted(c for c in df.columns if c not in cols)
        return df[cols + rest]

    def run(self, run_id: str) -> "Run":
        """The run with this id (:class:`NotFoundError` if there is none)."""
        return Run(self, run_id)


def _summary_row(s: Dict[str, Any]) -> Dict[str, Any]:
    r = s.get("run") or {}
    row: Dict[str, Any] = {"run_id": r.get("id"), "name": r.get("name", ""), "status": s.get("status"),
                           "complete": bool(s.get("complete")), "attempt": r.get("attempt", 0),
                           "created": _time(r.get("created")), "started": _time(r.get("started")),
                           "finished": _time(r.get("finished"))}
    d = row["finished"] - row["started"]
    row["duration_s"] = d.total_seconds() if d is not _pandas().NaT else float("nan")
    cfg: Dict[str, Any] = {}
    _flatten("", r.get("config") or {}, cfg)
    for k, v in cfg.items():
        row["config." + k] = json.dumps(v) if isinstance(v, list) else v
    for k, m in (s.get("metrics") or {}).items():
        row["metrics." + k] = m.get("last") if m.get("count", 0) > m.get("nonfinite", 0) else float("nan")
    for k, v in (r.get("tags") or {}).items():
        row["tags." + k] = v
    return row


class Run:
    """One run's records in a :class:`Store`.

    Attributes:
        id, name, status, attempt: from run.json / the summary.
        config: the run spec (a dict).
        summary: run_summary.json (rollups per metric, ``complete``, ...).
        complete: True only when the run succeeded and every record arrived.
        artifacts: artifacts.json entries.
    """

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.id = _lib.cstr(run_id, "run_id").decode()
        self.refresh()

    def refresh(self) -> None:
        """Re-reads the run's summary and artifacts."""
        d = _lib.call_json("gorch_store_run", ctypes.c_uint64(self.store._h), self.id.encode())
        s = d["summary"]
        r = s.get("run") or {}
        self.summary: Dict[str, Any] = s
        self.has_summary: bool = d["has_summary"]
        self.name: str = r.get("name", "")
        self.status: str = s.get("status", "")
        self.complete: bool = bool(s.get("complete"))
        self.attempt: int = int(r.get("attempt", 0))
        self.config: Dict[str, Any] = r.get("config") or {}
        self.artifacts: List[Dict[str, Any]] = d.get("artifacts") or []
        self.record: Dict[str, Any] = r

    def __repr__(self) -> str:
        return f"<gorch.Run {self.id} {self.name!r} {self.status}>"

    def dataset(self, split: str = "test") -> Any:
        """``(x, y)`` numpy arrays of the run's train or test split, as it
        trained and evaluated on them (see :func:`gorch.dataset`)."""
        if not self.config:
            raise errors.NotFoundError(f"run {self.id} has no recorded spec")
        return _dataset(self.config, split)

    def _metric_pages(self, names: Optional[Sequence[str]]) -> Iterator[tuple]:
        sel = None
        if names is not None:
            if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)) \
                    or not all(isinstance(n, str) for n in names):
                raise errors.ArgumentError("names must be a list of metric names")
            sel = json.dumps(list(names)).encode()
        it = ctypes.c_uint64()
        _lib.call("gorch_metrics_open", ctypes.c_uint64(self.store._h), self.id.encode(), sel, ctypes.byref(it))
        try:
            cols = (np.empty(_PAGE, np.int64), np.empty(_PAGE, np.int32), np.empty(_PAGE, np.float64),
                    np.empty(_PAGE, np.int64), np.empty(_PAGE, np.int32))
            while True:
                n = ctypes.c_int64()
                table = _lib.call_json("gorch_metrics_next", it, _PAGE, *[c.ctypes.data for c in cols], ctypes.byref(n))
                if n.value == 0:
                    return
                yield table, tuple(c[:n.value].copy() for c in cols)
        finally:
            _lib.close(it.value)

    def metric_history(self, names: Optional[Sequence[str]] = None) -> Any:
        """Every metric point in long format: a DataFrame with ``attempt``,
        ``step``, ``name``, ``value``, ``time`` (UTC datetimes), as the
        store's reader returns them (one value per step and name across
        attempts), read page by page."""
        pd = _pandas()
        frames = []
        for table, (step, name, value, tns, attempt) in self._metric_pages(names):
            frames.append(pd.DataFrame({"attempt": attempt, "step": step,
                                        "name": pd.Categorical.from_codes(name, categories=table),
                                        "value": value, "time": pd.to_datetime(tns, unit="ns", utc=True)}))
        if not frames:
            return pd.DataFrame({"attempt": pd.Series(dtype="int32"), "step": pd.Series(dtype="int64"),
                                 "name": pd.Series(dtype="object"), "value": pd.Series(dtype="float64"),
                                 "time": pd.Series(dtype="datetime64[ns, UTC]")})
        df = pd.concat(frames, ignore_index=True)
        df["name"] = df["name"].astype(str)
        return df

    def metrics(self, names: Optional[Sequence[str]] = None) -> Any:
        """The run's metrics as a DataFrame indexed by ``step`` with one
        column per metric (``train/loss``, ``eval/accuracy``, ...) and a
        ``time`` column: when the step's last value was logged (UTC). A
        step without a metric holds NaN there."""
        pd = _pandas()
        long = self.metric_history(names)
        if long.empty:
            return pd.DataFrame(index=pd.Index([], name="step", dtype="int64"))
        if long.duplicated(["step", "name"]).any():
            raise errors.ExperimentError(
                f"run {self.id}: the store returned more than one value for a (step, name); "
                "this gorch's reader predates one value per step across attempts", op="gorch.Run.metrics")
        wide = long.pivot(index="step", columns="name", values="value")
        wide.columns.name = None
        wide["time"] = long.groupby("step")["time"].max()
        return wide.sort_index()

    def telemetry(self) -> Any:
        """The run's telemetry events: a DataFrame with ``name``, ``start``
        (UTC), ``duration_s`` and ``tags``, read page by page."""
        pd = _pandas()
        it = ctypes.c_uint64()
        _lib.call("gorch_telemetry_open", ctypes.c_uint64(self.store._h), self.id.encode(), ctypes.byref(it))
        rows: List[Dict[str, Any]] = []
        try:
            while True:
                done = ctypes.c_int32()
                page = _lib.call_json("gorch_iter_next_json", it, 4096, 0, ctypes.byref(done))
                rows += [{"name": e["name"], "start": e["start"], "duration_s": e["duration_ns"] / 1e9,
                          "tags": e.get("tags") or {}} for e in page]
                if done.value:
                    break
        finally:
            _lib.close(it.value)
        df = pd.DataFrame(rows, columns=["name", "start", "duration_s", "tags"])
        df["start"] = pd.to_datetime(df["start"], utc=True, format="ISO8601")
        return df

    def checkpoints(self) -> List[Dict[str, Any]]:
        """The run's checkpoint objects in the store, oldest first:
        ``[{"step": 500, "key": "runs/<id>/checkpoints/step-...rtch"}, ...]``."""
        return _lib.call_json("gorch_store_checkpoints", ctypes.c_uint64(self.store._h), self.id.encode())

    def checkpoint(self, step: Optional[int] = None) -> Checkpoint:
        """Loads the checkpoint taken after ``step`` (default: the newest,
        as ``LATEST`` names it), verified like :func:`gorch.load_checkpoint`."""
        if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
            raise errors.ArgumentError(f"step must be a non-negative int or None, not {step!r}")
        return _open("gorch_store_checkpoint", ctypes.c_uint64(self.store._h), self.id.encode(),
                     -1 if step is None else step)
