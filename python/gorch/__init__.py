"""gorch for Python: checkpoints, run records and the cluster client.

Three uses, one library (``libgorch.so``, gorch's Go code behind a small
C ABI):

* **Checkpoints** — :func:`load_checkpoint` reads and validates RTCH files
  (``.params`` are numpy views of the mapped file; ``.to_torch()`` gives a
  PyTorch state dict); :func:`save_checkpoint` writes one from a torch or
  numpy state dict, for ``gorch train --init``.
* **Records** — :class:`Store` over a local ``--data-dir`` or an S3
  bucket: ``store.runs()`` (one row per run, like ``mlflow.search_runs``),
  ``store.run(id).metrics()`` (indexed by step), telemetry, checkpoints.
* **Data** — :func:`dataset` gives the train or test split a run spec
  trains on (``run.dataset("test")`` for a stored run), built by gorch, so
  a checkpoint can be scored in PyTorch on exactly gorch's held-out data.
* **Cluster** — :class:`Client`: submit, sweep, status, wait, cancel,
  follow.
* **torch.compile** — ``torch.compile(model, backend="gorch")`` trains a
  PyTorch model's forward and backward graphs on gorch's engine;
  :mod:`gorch.compile` (imported on first use, it needs PyTorch) documents it
  and has ``gorch.compile.explain``.

Every error is a :class:`GorchError` subclass named after its kind.

The Go runtime inside does not survive ``fork()``: in a forked child every
call raises :class:`ForkError`; use the ``spawn`` or ``forkserver`` start
method for worker processes.
"""

from ._lib import version
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .client import Client, ClusterRun
from .datasets import dataset
from .errors import (ArgumentError, CheckpointError, ClusterError, ConfigError, CorruptCheckpointError, DataError,
                     ExperimentError, ForkError, GorchError, InternalError, LayoutError, NotFoundError, ShapeError,
                     StorageError, TrainingError, UnsupportedError, WaitTimeout)
from .records import Run, Store

__version__ = "0.1.0"

__all__ = [
    "version", "dataset", "Checkpoint", "load_checkpoint", "save_checkpoint", "Store", "Run", "Client", "ClusterRun",
    "GorchError", "ArgumentError", "CheckpointError", "ClusterError", "ConfigError", "CorruptCheckpointError",
    "DataError", "ExperimentError", "ForkError", "InternalError", "LayoutError", "NotFoundError", "ShapeError",
    "StorageError", "TrainingError", "UnsupportedError", "WaitTimeout",
]


def __getattr__(name: str):
    # gorch.compile needs PyTorch: import it only when asked for.
    if name == "compile":
        import importlib

        return importlib.import_module(".compile", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
