"""Loading libgorch.so and calling it (ctypes; the ABI is cmd/libgorch/gorch.h)."""

from __future__ import annotations

import ctypes
import os
import threading
from ctypes import POINTER, byref, c_char_p, c_double, c_int, c_int32, c_int64, c_uint64, c_void_p
from pathlib import Path
from typing import Any, Optional, Union

from . import errors

ABI_VERSION = 2
_EFORK = 100

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_loaded_pid: Optional[int] = None
_forked = False


def _after_fork_in_child() -> None:
    global _forked
    if _lib is not None:
        _forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)

_P = POINTER
_S = POINTER(c_void_p)  # char** outputs: read with take() and freed
_SIGS = {
    "gorch_free": (None, [c_void_p]),
    "gorch_abi_version": (c_int, []),
    "gorch_version": (c_int, [_S, _S]),
    "gorch_close": (c_int, [c_uint64, _S]),
    "gorch_live_handles": (c_int, []),
    "gorch_ckpt_open": (c_int, [c_char_p, _P(c_uint64), _S, _P(c_void_p), _P(c_int64), _S]),
    "gorch_ckpt_save": (c_int, [c_char_p, c_char_p, c_int64, _P(c_void_p), _S]),
    "gorch_store_open": (c_int, [c_char_p, _P(c_uint64), _S]),
    "gorch_store_runs": (c_int, [c_uint64, _S, _S]),
    "gorch_store_run": (c_int, [c_uint64, c_char_p, _S, _S]),
    "gorch_store_checkpoints": (c_int, [c_uint64, c_char_p, _S, _S]),
    "gorch_store_checkpoint": (c_int, [c_uint64, c_char_p, c_int64, _P(c_uint64), _S, _P(c_void_p), _P(c_int64), _S]),
    "gorch_metrics_open": (c_int, [c_uint64, c_char_p, c_char_p, _P(c_uint64), _S]),
    "gorch_metrics_next": (c_int, [c_uint64, c_int64, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p,
                                   _P(c_int64), _S, _S]),
    "gorch_telemetry_open": (c_int, [c_uint64, c_char_p, _P(c_uint64), _S]),
    "gorch_iter_next_json": (c_int, [c_uint64, c_int64, c_int64, _P(c_int32), _S, _S]),
    "gorch_client_open": (c_int, [c_char_p, c_char_p, _P(c_uint64), _S]),
    "gorch_client_submit": (c_int, [c_uint64, c_char_p, c_int64, c_char_p, _S, _S]),
    "gorch_client_sweep": (c_int, [c_uint64, c_char_p, c_int64, _S, _S]),
    "gorch_client_status": (c_int, [c_uint64, c_char_p, _S, _S]),
    "gorch_client_cancel": (c_int, [c_uint64, c_char_p, _S]),
    "gorch_client_wait": (c_int, [c_uint64, c_char_p, c_int64, _P(c_int32), _S, _S]),
    "gorch_client_follow": (c_int, [c_uint64, c_char_p, c_int32, _P(c_uint64), _S]),
    "gorch_plan_ops": (c_int, [_S, _S]),
    "gorch_plan_check": (c_int, [c_char_p, _S, _S]),
    "gorch_plan_compile": (c_int, [c_char_p, _P(c_uint64), _S, _S]),
    "gorch_plan_run": (c_int, [c_uint64, c_void_p, c_int64, c_uint64, _S]),
    "gorch_set_num_threads": (c_int, [c_int32, _S]),
    "gorch_dataset_open": (c_int, [c_char_p, c_char_p, _P(c_uint64), _S, _S]),
    "gorch_dataset_read": (c_int, [c_uint64, c_void_p, c_int64, c_void_p, c_int64, _S]),
}


def library_path() -> Path:
    """Where the library is loaded from: $GORCH_LIB, else next to this file."""
    env = os.environ.get("GORCH_LIB")
    return Path(env) if env else Path(__file__).with_name("libgorch.so")


def lib() -> ctypes.CDLL:
    """The loaded library; loads it on first use. Raises ForkError in a
    process forked after the load."""
    global _lib, _loaded_pid
    if _forked or (_loaded_pid is not None and _loaded_pid != os.getpid()):
        raise errors.ForkError(
            f"gorch was loaded in process {_loaded_pid} and called in forked child {os.getpid()}; "
            "the Go runtime does not survive fork: use the 'spawn' or 'forkserver' start method",
            op="gorch")
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            path = library_path()
            if not path.is_file():
                raise errors.NotFoundError(
                    f"libgorch not found at {path}: install the package with pip (it builds the library "
                    "with Go), or set GORCH_LIB", kind="io", op="gorch")
            try:
                l = ctypes.CDLL(str(path))
            except OSError as e:
                raise errors.StorageError(f"loading {path}: {e}", op="gorch") from None
            # The version first: a library of another ABI may lack a symbol.
            l.gorch_abi_version.restype, l.gorch_abi_version.argtypes = c_int, []
            if l.gorch_abi_version() != ABI_VERSION:
                raise errors.InternalError(
                    f"{path} has ABI version {l.gorch_abi_version()}, this package needs {ABI_VERSION}: "
                    "rebuild it (go build -buildmode=c-shared -o libgorch.so ./cmd/libgorch)", op="gorch")
            for name, (res, args) in _SIGS.items():
                f = getattr(l, name)
                f.restype, f.argtypes = res, args
            _loaded_pid = os.getpid()
            _lib = l
    return _lib


def take(p: c_void_p) -> Optional[str]:
    """Reads and frees a string the library returned."""
    if not p.value:
        return None
    try:
        return ctypes.string_at(p.value).decode("utf-8")
    finally:
        lib().gorch_free(p)
        p.value = None


def call(name: str, *args: Any) -> None:
    """Calls export name with args plus the error out-argument, raising the
    GorchError subclass its error names."""
    err = c_void_p()
    rc = getattr(lib(), name)(*args, byref(err))
    if rc == 0:
        return
    text = take(err)
    if text is None:
        raise errors.InternalError(f"{name} failed with status {rc} and no message", op=name)
    raise errors.from_json(text)


def call_json(name: str, *args: Any) -> Any:
    """call() for exports whose last output is a JSON string; returns it decoded."""
    import json

    out = c_void_p()
    try:
        call(name, *args, byref(out))
    finally:
        text = take(out)
    return None if text is None else json.loads(text)


def close(handle: int) -> None:
    """Frees a library handle; a no-op after fork (the child owns none)."""
    if handle and _lib is not None and not _forked:
        try:
            call("gorch_close", c_uint64(handle))
        except errors.GorchError:
            pass


def cstr(value: Any, what: str, *, path: bool = False) -> bytes:
    """Encodes a string argument, rejecting anything else with ArgumentError."""
    if path and isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise errors.ArgumentError(f"{what} must be a str{' or path' if path else ''}, not {type(value).__name__}")
    if "\x00" in value:
        raise errors.ArgumentError(f"{what} contains a NUL character")
    return value.encode("utf-8")


def version() -> dict:
    """The library's version and ABI version."""
    return call_json("gorch_version")


def live_handles() -> int:
    """Objects the library holds for this process (for leak tests)."""
    return int(lib().gorch_live_handles())


PathLike = Union[str, "os.PathLike[str]"]
__all__ = ["lib", "call", "call_json", "take", "close", "cstr", "version", "live_handles", "library_path",
           "c_double", "c_int32", "c_int64", "c_uint64", "c_void_p", "byref"]
