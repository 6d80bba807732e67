"""The cluster client against a real `gorch up` whose records go to a real
versitygw bucket: submit -> follow -> wait -> records (Done-when 3 and 4)."""

import pytest

import gorch
from conftest import eventually

SPEC = {"model": {"name": "mlp"}, "dataset": {"name": "fashion-mnist"}, "optimizer": {"name": "adam", "lr": 0.001},
        "batch_size": 64, "checkpoint_every": 500, "eval_every": 500, "seed": 5}


@pytest.fixture(scope="module")
def client(cluster):
    s3 = cluster["s3"]
    store = gorch.Store("s3://records/team-a", endpoint=s3["endpoint"], access_key=s3["access_key"],
                        secret_key=s3["secret_key"], insecure=True)
    with gorch.Client(cluster["url"], store=store) as c:
        c._s3 = s3
        yield c


def test_submit_follow_wait_records(client):
    run = client.submit({**SPEC, "name": "py-follow", "steps": 2000})
    points, running_at_first = [], None
    for p in run.follow():
        if running_at_first is None:
            running_at_first = run.state()["status"]
        points.append(p)
    assert running_at_first == "running"  # points arrive while it trains
    assert {"attempt", "step", "name", "value", "time"} <= set(points[0])
    assert max(p["step"] for p in points if p["name"] == "train/loss") == 2000
    st = run.wait(timeout=600)
    assert st["status"] == "succeeded" and st["records_final"]
    # wait() returned only once the records are final: everything is there now.
    rec = run.records()
    assert rec.complete and rec.status == "succeeded"
    m = rec.metrics()
    assert m["train/loss"].count() == 2000 and m.index.is_unique
    assert m["eval/accuracy"].dropna().iloc[-1] > 0.7
    assert [c["step"] for c in rec.checkpoints()] == [1000, 1500, 2000]
    s3 = client.store.location
    root = gorch.Store("s3://records", endpoint=client._s3["endpoint"], access_key=client._s3["access_key"],
                       secret_key=client._s3["secret_key"], insecure=True)
    assert root.summaries() == [], f"records outside the prefix of {s3}"
    assert rec.checkpoint().train_state["step"] == 2000


def test_status_cancel_sweep_and_runs_table(client):
    long = client.submit({**SPEC, "name": "py-cancel", "steps": 100000}, priority="high")
    eventually(lambda: long.state()["status"] == "running", "the long run to start")
    queued = client.submit({**SPEC, "name": "py-queued", "steps": 10}, priority="low")  # the one slot is busy
    sweep = client.sweep({"name": "py-sweep", "base": {**SPEC, "steps": 40}, "grid": {"optimizer.lr": [0.001, 0.003]}})
    assert len(sweep) == 2
    assert {r["run"] for r in client.status()} >= {long.id, queued.id, *[r.id for r in sweep]}
    queued.cancel()
    assert queued.wait(timeout=60)["status"] == "cancelled"  # never started: no records to wait for
    long.cancel()
    assert long.wait(timeout=300)["status"] == "cancelled"
    assert long.records().status == "cancelled"
    for r in sweep:
        assert r.wait(timeout=300)["status"] == "succeeded"
    by = client.store.runs().set_index("run_id")
    assert by.loc[sweep[1].id, "config.optimizer.lr"] == 0.003
    assert by.loc[long.id, "status"] == "cancelled"
    assert by.loc[sweep[0].id, "metrics.train/loss"] > 0


def test_client_errors(client, cluster):
    with pytest.raises(gorch.ConfigError):
        client.submit({"model": {"name": "resnet"}})
    with pytest.raises(gorch.ExperimentError):
        client.status("20990101T000000000000Z-00000000")
    with pytest.raises(gorch.NotFoundError):
        client.submit("/no/such/spec.yaml")
    with pytest.raises(gorch.ClusterError):
        gorch.Client("nats://127.0.0.1:1")
    with pytest.raises(gorch.WaitTimeout):
        client.submit({**SPEC, "steps": 100000, "name": "py-timeout"}).wait(timeout=0.2)
