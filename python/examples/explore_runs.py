# %% [markdown]
# # gorch runs in a notebook
#
# A notebook-style tour (cells separated by `# %%`; open it in Jupyter with
# jupytext, VS Code or PyCharm, or run it as a script). It reads the runs of
# a record store, looks at one run's metrics, and evaluates its checkpoint
# in PyTorch. Train something first:
#
#     ./bin/gorch train --model mlp --epochs 1
#
# and point `GORCH_DATA` at the store if it is not `./gorch-data`
# (`s3://bucket` works too, with `GORCH_S3_ENDPOINT` and the AWS_* keys).

# %%
import os

import torch

import gorch

store = gorch.Store(os.environ.get("GORCH_DATA", "./gorch-data"))
runs = store.runs()  # one row per run, like mlflow.search_runs
runs[["run_id", "name", "status", "config.model.name", "config.optimizer.lr", "metrics.eval/accuracy"]]

# %% The newest MLP run that succeeded, and its metrics by step
mlps = runs[(runs["status"] == "succeeded") & (runs["config.model.name"] == "mlp")]
run = store.run(mlps["run_id"].iloc[-1])
m = run.metrics()  # index: step; columns: train/loss, train/lr, eval/loss, eval/accuracy, time
smooth = m["train/loss"].rolling(50, min_periods=1).mean()
print(f"{run.id}: {len(m)} steps, loss {smooth.iloc[0]:.3f} -> {smooth.iloc[-1]:.3f}, "
      f"trained for {(m['time'].max() - m['time'].min()).total_seconds():.1f} s")

# %% Where the time went
run.telemetry().groupby("name")["duration_s"].agg(["count", "sum", "median"])

# %% The final checkpoint as a PyTorch model
ckpt = run.checkpoint()  # verified; ckpt.params are numpy views of the file
model = ckpt.torch_module()  # torch.nn.Sequential(Linear, ReLU, Linear) with gorch's weights
print(ckpt, {k: tuple(v.shape) for k, v in ckpt.params.items()})

# %% Evaluate it on the Fashion-MNIST test set, exactly as gorch evaluated it
x, y = run.dataset("test")  # numpy (10000, 784) float32, normalised as gorch does, and int64 labels
with torch.no_grad():
    accuracy = float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
print(f"PyTorch: {100 * accuracy:.2f} %; gorch reported {100 * m['eval/accuracy'].dropna().iloc[-1]:.2f} %")
