"""gorch's exceptions: one class per kind of the Go error taxonomy (pkg/errs).

Every failure inside the library arrives as a :class:`GorchError` subclass
chosen by the Go error's kind, so ``except gorch.ShapeError`` works as
``errors.Is(err, errs.Shape)`` does in Go. Bad arguments are rejected the
same way (:class:`ArgumentError`), before any call into the library.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Type


class GorchError(Exception):
    """Base class of every gorch error.

    Attributes:
        kind: the Go error kind ("shape", "checkpoint", "io", ...).
        op: the operation that failed, e.g. "experiment.DecodeCheckpoint".
        message: the one-line message.
    """

    kind = "other"

    def __init__(self, message: str, *, kind: Optional[str] = None, op: str = "") -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind
        self.op = op


class LayoutError(GorchError):
    """A tensor's shape, strides or offset do not describe valid memory."""

    kind = "layout"


class ShapeError(GorchError):
    """Operand shapes are incompatible, e.g. a state dict that does not fit a model."""

    kind = "shape"


class ArgumentError(GorchError, ValueError):
    """An argument is out of range, of the wrong type, or otherwise invalid."""

    kind = "argument"


class CheckpointError(GorchError):
    """A checkpoint is incompatible or cannot be used."""

    kind = "checkpoint"


class CorruptCheckpointError(CheckpointError):
    """A checkpoint failed validation; ``reason`` says why ("truncated",
    "tensor checksum mismatch", "missing footer", ...)."""

    def __init__(self, message: str, *, reason: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reason = reason


class TrainingError(GorchError):
    """Training diverged or could not proceed."""

    kind = "training"


class ExperimentError(GorchError):
    """A run record is missing or inconsistent."""

    kind = "experiment"


class NotFoundError(GorchError, LookupError):
    """A run, checkpoint, file or object does not exist (``kind`` says
    which layer looked: "experiment", "io", ...)."""

    kind = "experiment"


class ConfigError(GorchError, ValueError):
    """A spec, sweep or store configuration is invalid."""

    kind = "config"


class StorageError(GorchError, OSError):
    """Reading or writing storage (a file, S3) failed."""

    kind = "io"


class ClusterError(GorchError):
    """Messaging, scheduling or the coordinator failed."""

    kind = "cluster"


class WaitTimeout(ClusterError, TimeoutError):
    """``Run.wait`` ran out of time before the run's records were final."""


class DataError(GorchError):
    """A dataset is missing, truncated or corrupt."""

    kind = "data"


class InternalError(GorchError):
    """An invariant inside gorch broke (a recovered Go panic, for one)."""

    kind = "internal"


class UnsupportedError(GorchError):
    """A format, version, dtype or operator this build of gorch does not
    support (the torch.compile backend with ``fallback="error"`` raises it
    for operators it would otherwise run in eager PyTorch)."""

    kind = "unsupported"


class ForkError(GorchError):
    """The library was called in a process forked after it was loaded.

    The Go runtime does not survive ``fork()``; start workers with the
    ``spawn`` or ``forkserver`` start method instead (multiprocessing,
    ``DataLoader(multiprocessing_context="spawn")``).
    """

    kind = "fork"


_BY_KIND: Dict[str, Type[GorchError]] = {
    cls.kind: cls
    for cls in (LayoutError, ShapeError, ArgumentError, CheckpointError, TrainingError, ExperimentError,
                ConfigError, StorageError, ClusterError, DataError, InternalError, UnsupportedError, ForkError)
}


def from_json(text: str) -> GorchError:
    """Builds the exception for a library error object (see gorch.h)."""
    try:
        e = json.loads(text)
        kind, op, msg = str(e.get("kind", "other")), str(e.get("op", "")), str(e.get("message", text))
    except (ValueError, AttributeError):
        return InternalError(f"libgorch: unreadable error {text!r}")
    if e.get("reason"):
        return CorruptCheckpointError(msg, reason=str(e["reason"]), kind=kind, op=op)
    if e.get("not_found"):
        return NotFoundError(msg, kind=kind, op=op)
    return _BY_KIND.get(kind, GorchError)(msg, kind=kind, op=op)
