"""The cluster client: the Go coordinator client (services/coordinator)
through the library, so Python speaks exactly the CLI's wire contract."""

from __future__ import annotations

import ctypes
import json
import math
import os
import time
import weakref
from typing import Any, Dict, Iterator, List, Mapping, Optional, Union

from . import _lib, errors
from .records import Run, Store

Spec = Union[Mapping[str, Any], str, "os.PathLike[str]"]


def _spec_bytes(spec: Spec, what: str) -> bytes:
    """A spec as bytes: a dict as JSON (YAML's subset), a path's contents."""
    if isinstance(spec, Mapping):
        try:
            return json.dumps(dict(spec), allow_nan=False).encode()
        except (TypeError, ValueError) as e:
            raise errors.ArgumentError(f"{what} is not JSON-serialisable: {e}") from None
    p = _lib.cstr(spec, what, path=True).decode()
    try:
        with open(p, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise errors.NotFoundError(f"{what} file {p!r} does not exist", kind="config", op="gorch.Client") from None
    except OSError as e:
        raise errors.StorageError(f"{what} file {p!r}: {e}", op="gorch.Client") from None


class Client:
    """A connection to a gorch cluster (``gorch up``, or the services).

    ``Client("nats://127.0.0.1:4222", creds="client.creds")``, as the CLI's
    ``--creds``; or ``nkey`` (a seed file), or ``user`` with
    ``password_file``; TLS with ``tls_ca``, ``tls_cert``, ``tls_key``. ``store`` (a :class:`Store` or a
    location for one) is where the cluster's collector writes records:
    :meth:`ClusterRun.wait` reads it to tell when the records are final,
    and :meth:`ClusterRun.records` opens them.
    """

    def __init__(self, url: str = "nats://127.0.0.1:4222", creds: Optional["_lib.PathLike"] = None, *,
                 nkey: Optional[str] = None, user: Optional[str] = None, password_file: Optional[str] = None,
                 tls_ca: Optional[str] = None, tls_cert: Optional[str] = None, tls_key: Optional[str] = None,
                 timeout: float = 5.0, store: Union[Store, "_lib.PathLike", None] = None) -> None:
        u = _lib.cstr(url, "url")
        opts: Dict[str, Any] = {}
        for k, v in (("creds", creds), ("nkey", nkey), ("user", user), ("password_file", password_file),
                     ("tls_ca", tls_ca), ("tls_cert", tls_cert), ("tls_key", tls_key)):
            if v is not None:
                opts[k] = _lib.cstr(v, k, path=True).decode()
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
            raise errors.ArgumentError(f"timeout must be a positive number of seconds, not {timeout!r}")
        opts["timeout_s"] = float(timeout)
        self.store = store if isinstance(store, Store) or store is None else Store(store)
        h = ctypes.c_uint64()
        _lib.call("gorch_client_open", u, json.dumps(opts).encode(), ctypes.byref(h))
        self._h = h.value
        self._finalizer = weakref.finalize(self, _lib.close, self._h)
        self.url = url

    def __repr__(self) -> str:
        return f"<gorch.Client {self.url}>"

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection (also done when garbage collected)."""
        self._finalizer()

    def submit(self, spec: Spec, priority: str = "normal") -> "ClusterRun":
        """Queues a run: ``spec`` is a dict (as ``gorch train --config``
        reads) or the path of a YAML/JSON spec file. Returns the run."""
        b = _spec_bytes(spec, "spec")
        ids = _lib.call_json("gorch_client_submit", ctypes.c_uint64(self._h), b, len(b),
                             _lib.cstr(priority, "priority"))
        return ClusterRun(self, ids[0])

    def sweep(self, sweep: Spec) -> List["ClusterRun"]:
        """Queues a sweep (a dict or the path of a sweep file, as ``gorch
        sweep`` reads); returns its runs in expansion order."""
        b = _spec_bytes(sweep, "sweep")
        return [ClusterRun(self, i) for i in _lib.call_json("gorch_client_sweep", ctypes.c_uint64(self._h), b, len(b))]

    def status(self, run_id: Optional[str] = None) -> Union[List[Dict[str, Any]], Dict[str, Any]]:
        """Every run's state (a list, oldest first), or one run's (a dict)
        — as ``gorch status --json`` prints them."""
        rid = None if run_id is None else _lib.cstr(run_id, "run_id")
        return _lib.call_json("gorch_client_status", ctypes.c_uint64(self._h), rid)

    def run(self, run_id: str) -> "ClusterRun":
        """A handle on a run the cluster knows (checked with a status call)."""
        r = ClusterRun(self, _lib.cstr(run_id, "run_id").decode())
        r.state()
        return r


class ClusterRun:
    """A run on the cluster, as :meth:`Client.submit` returns it."""

    def __init__(self, client: Client, run_id: str) -> None:
        self.client = client
        self.id = run_id

    def __repr__(self) -> str:
        return f"<gorch.ClusterRun {self.id}>"

    def state(self) -> Dict[str, Any]:
        """The run's state: ``status``, ``attempt``, ``step``, ``worker``, ..."""
        return self.client.status(self.id)  # type: ignore[return-value]

    def cancel(self) -> None:
        """Cancels the run (queued: at once; running: its worker stops it)."""
        _lib.call("gorch_client_cancel", ctypes.c_uint64(self.client._h), self.id.encode())

    def wait(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Blocks until the run has ended *and* its records are final (the
        collector wrote its last records; the state's ``records_final``),
        then returns its state. Raises :class:`WaitTimeout` after
        ``timeout`` seconds. Ctrl-C interrupts it."""
        if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
                                    or math.isnan(timeout) or timeout < 0):
            raise errors.ArgumentError(f"timeout must be None or seconds >= 0, not {timeout!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            done = ctypes.c_int32()
            st = _lib.call_json("gorch_client_wait", ctypes.c_uint64(self.client._h), self.id.encode(),
                                int(left * 1000), ctypes.byref(done))
            if done.value:
                return st
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.WaitTimeout(
                    f"run {self.id} is {st.get('status')} after {timeout} s (records not final yet)", op="gorch.Run.wait")

    def follow(self, *, until_end: bool = True) -> Iterator[Dict[str, Any]]:
        """Yields the run's metric points as workers publish them —
        ``{"attempt", "step", "name", "value", "time"}`` — from the first,
        until the run ends (``until_end=False``: until the newest point so
        far). Stop early by breaking out of the loop."""
        it = ctypes.c_uint64()
        _lib.call("gorch_client_follow", ctypes.c_uint64(self.client._h), self.id.encode(), int(bool(until_end)),
                  ctypes.byref(it))
        try:
            while True:
                done = ctypes.c_int32()
                page = _lib.call_json("gorch_iter_next_json", it, 1024, 250, ctypes.byref(done))
                yield from page
                if done.value:
                    return
        finally:
            _lib.close(it.value)

    def records(self) -> Run:
        """The run's records in the client's store (see :class:`Run`)."""
        if self.client.store is None:
            raise errors.ConfigError("the client has no store: Client(..., store=Store(...))", op="gorch.Run.records")
        return self.client.store.run(self.id)
