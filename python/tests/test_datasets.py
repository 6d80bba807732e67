"""gorch.dataset: the splits a run spec trains and evaluates on, built by
gorch, checked against the dataset files read here with numpy."""

import gzip

import numpy as np
import pytest

import gorch
from gorch import _lib

BASE = {"optimizer": {"name": "adam", "lr": 0.001}, "steps": 10, "batch_size": 8}


def idx(path):
    """An IDX file (the MNIST format), read with numpy."""
    with gzip.open(path, "rb") as f:
        b = f.read()
    ndim = b[3]
    shape = tuple(int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(b, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@pytest.mark.parametrize("model, shape", [("mlp", (10000, 784)), ("cnn", (10000, 1, 28, 28))])
def test_fashion_mnist_is_normalised_as_gorch_trains_on_it(fmnist, model, shape):
    x, y = gorch.dataset({"model": {"name": model}, "dataset": {"name": "fashion-mnist", "dir": str(fmnist)}, **BASE})
    assert x.shape == shape and x.dtype == np.float32 and y.dtype == np.int64
    pixels = idx(fmnist / "t10k-images-idx3-ubyte.gz").reshape(shape).astype(np.float32)
    # pkg/train: (v/255 - 0.2860) / 0.3530, in float32.
    want = (pixels / np.float32(255) - np.float32(0.2860)) * (np.float32(1) / np.float32(0.3530))
    assert np.allclose(x, want, rtol=0, atol=1e-6)
    assert (y == idx(fmnist / "t10k-labels-idx1-ubyte.gz")).all()


def test_train_split_and_train_limit(fmnist):
    spec = {"model": {"name": "mlp"}, "dataset": {"name": "fashion-mnist", "dir": str(fmnist)}, **BASE}
    x, y = gorch.dataset(spec, "train")
    assert x.shape == (60000, 784) and np.bincount(y).tolist() == [6000] * 10
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-3  # normalised by the train statistics
    xl, yl = gorch.dataset({**spec, "train_limit": 500}, "train")
    assert xl.shape == (500, 784) and (xl == x[:500]).all() and (yl == y[:500]).all()


def test_synthetic_sets_follow_the_seed():
    spec = {"model": {"name": "mlp"}, "dataset": {"name": "blobs", "size": 400}, "seed": 7, **BASE}
    x, y = gorch.dataset(spec, "train")
    xt, yt = gorch.dataset(spec, "test")
    assert x.shape == (400, 8) and xt.shape == (100, 8) and set(np.unique(y)) == {0, 1, 2, 3}
    again, _ = gorch.dataset(spec, "train")
    other, _ = gorch.dataset({**spec, "seed": 8}, "train")
    assert (again == x).all() and not np.allclose(other, x)


def test_grammar_windows_are_token_ids():
    spec = {"model": {"name": "gpt", "context": 16}, "dataset": {"name": "grammar", "size": 64}, "seed": 3, **BASE}
    x, y = gorch.dataset(spec, "train")
    assert x.shape == y.shape == (64, 16) and x.dtype == np.int64
    assert (x[:, 1:] == y[:, :-1]).all()  # next-token targets
    assert (x[1:, 0] == y[:-1, -1]).all()  # windows follow one another in the text


@pytest.mark.parametrize("args, kind, message", [
    (({"model": {"name": "mlp"}, **BASE},), gorch.ConfigError, r'field "dataset.name": missing'),
    (({"model": {"name": "mlp"}, "dataset": {"name": "blobs"}, **BASE}, "val"), gorch.ArgumentError,
     r'split "val": want train or test'),
    (({"model": {"name": "mlp"}, "dataset": {"name": "fashion-mnist", "dir": "/nonexistent"}, **BASE},),
     gorch.NotFoundError, r"/nonexistent/train-images-idx3-ubyte"),
    (("/nonexistent/spec.yaml",), gorch.ArgumentError, r"spec file '/nonexistent/spec.yaml': No such file"),
    ((3,), gorch.ArgumentError, r"want a dict .* got int"),
])
def test_bad_input_raises_one_line_error(args, kind, message):
    before = _lib.live_handles()
    with pytest.raises(kind, match=message) as e:
        gorch.dataset(*args)
    assert "\n" not in str(e.value)
    assert _lib.live_handles() == before


def test_spec_file(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("model: {name: mlp}\ndataset: {name: moons, size: 40}\noptimizer: {name: sgd, lr: 0.1}\n"
                    "steps: 5\nbatch_size: 4\nseed: 2\n")
    x, y = gorch.dataset(path, "train")
    assert x.shape == (40, 2) and set(np.unique(y)) == {0, 1}
    same, _ = gorch.dataset({"model": {"name": "mlp"}, "dataset": {"name": "moons", "size": 40},
                             "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 5, "batch_size": 4, "seed": 2}, "train")
    assert (same == x).all()
