"""Records in a local store: runs() like mlflow.search_runs, metrics()
indexed by step, telemetry, checkpoints, paging, and a resumed run."""

import os
import signal

import numpy as np
import pandas as pd
import pytest

import gorch
from conftest import Proc, eventually, run_gorch


def test_runs_table(trained):
    df = gorch.Store(trained["data"]).runs()
    assert list(df["run_id"]) == sorted([trained["mlp"], trained["cnn"]])  # ids sort by creation
    assert (df["status"] == "succeeded").all() and df["complete"].all()
    for col in ("created", "started", "finished"):
        assert str(df[col].dtype) in ("datetime64[ns, UTC]", "datetime64[us, UTC]"), (col, df[col].dtype)
    assert (df["duration_s"] > 0).all()
    by = df.set_index("run_id")
    assert by.loc[trained["cnn"], "config.model.name"] == "cnn"
    assert by.loc[trained["mlp"], "config.optimizer.lr"] == 0.001
    assert by.loc[trained["mlp"], "config.batch_size"] == 64
    assert 0.5 < by.loc[trained["mlp"], "metrics.eval/accuracy"] <= 1


def test_run_metrics(trained):
    run = gorch.Store(trained["data"]).run(trained["mlp"])
    assert run.status == "succeeded" and run.complete and run.config["model"]["name"] == "mlp"
    m = run.metrics()
    steps = run.summary["metrics"]["train/loss"]["last_step"]
    assert m.index.name == "step" and m.index.is_unique and m.index.is_monotonic_increasing
    assert {"train/loss", "eval/loss", "eval/accuracy", "time"} <= set(m.columns)
    assert m["train/loss"].count() == run.summary["metrics"]["train/loss"]["count"] == steps
    assert str(m["time"].dtype).startswith("datetime64") and str(m["time"].dt.tz) == "UTC"
    assert m["eval/accuracy"].dropna().iloc[-1] == run.summary["metrics"]["eval/accuracy"]["last"]
    only = run.metrics(["eval/accuracy"])
    assert list(only.columns) == ["eval/accuracy", "time"] and len(only) == m["eval/accuracy"].count()


def test_metrics_page_through(trained, monkeypatch):
    run = gorch.Store(trained["data"]).run(trained["mlp"])
    whole = run.metric_history()
    monkeypatch.setattr(gorch.records, "_PAGE", 7)
    pd.testing.assert_frame_equal(run.metric_history(), whole)
    assert len(whole) > 1000


def test_telemetry_and_checkpoints(trained):
    run = gorch.Store(trained["data"]).run(trained["cnn"])
    t = run.telemetry()
    assert {"name", "start", "duration_s", "tags"} == set(t.columns) and len(t) > 0
    assert (t["duration_s"] >= 0).all() and str(t["start"].dt.tz) == "UTC"
    assert set(run.summary["telemetry"]) == set(t["name"])
    cks = run.checkpoints()
    assert [c["step"] for c in cks] == [100, 200]
    ck = run.checkpoint(step=100)
    assert ck.train_state["step"] == 100 and ck.source.endswith("step-000000000100.rtch")
    assert gorch.load_checkpoint(f"gorch://{run.id}@200", store=run.store).train_state["step"] == 200
    with pytest.raises(gorch.NotFoundError):
        run.checkpoint(step=150)


def test_not_found(trained, tmp_path):
    with pytest.raises(gorch.NotFoundError):
        gorch.Store(tmp_path / "absent")
    with pytest.raises(gorch.NotFoundError):
        gorch.Store(trained["data"]).run("20990101T000000000000Z-00000000")
    with pytest.raises(gorch.ExperimentError):
        gorch.Store(trained["data"]).run("../../etc")


def test_resumed_run_has_one_row_per_step(gorch_bin, fmnist, tmp_path):
    """A run killed after a checkpoint, with metrics of later steps already
    stored, resumes from that checkpoint: the steps after it exist in both
    attempts, and metrics() returns each once, attempt 2's."""
    data = tmp_path / "records"
    # Long enough not to finish before the kill: LeNet trains at ~150 steps/s
    # on one core now (600 steps took 5 s and ended before the poll saw a
    # checkpoint).
    steps = 3000
    proc = Proc([str(gorch_bin), "train", "--data-dir", str(data), "--model", "cnn", "--steps", str(steps),
                 "--batch-size", "32", "--checkpoint-every", "150"])
    store = eventually(lambda: (data / "runs").is_dir() and any((data / "runs").iterdir()) and gorch.Store(data),
                       "the run to be created")
    rid = eventually(lambda: store.summaries() and store.summaries()[0]["run"]["id"], "the run id")

    def past_checkpoint():
        if proc.p.poll() is not None:
            pytest.fail(f"gorch train ended before it was killed: {proc.output()}")
        cks = store.run(rid).checkpoints()
        h = store.run(rid).metric_history(["train/loss"])
        return cks and len(h) and h["step"].max() > cks[-1]["step"]

    eventually(past_checkpoint, "metrics past a checkpoint", timeout=300)
    os.kill(proc.p.pid, signal.SIGKILL)
    proc.p.wait()
    resumed_from = store.run(rid).checkpoints()[-1]["step"]  # a newer one may have landed before the kill
    run_gorch(gorch_bin, "train", "--data-dir", str(data), "--resume", rid)
    run = store.run(rid)
    assert run.status == "succeeded" and run.attempt == 2
    m = run.metrics(["train/loss"])
    assert list(m.index) == list(range(1, steps + 1))
    h = run.metric_history(["train/loss"])
    assert (h[h["step"] > resumed_from]["attempt"] == 2).all()
