"""Reads an MLflow experiment back with MLflow's own Python client and prints JSON, for
tests/trackers.rs: per vaelab run (its `vaelab.run_id` tag), the params, tags, status, every
metric's full history (values as repr strings, so that no digit is lost on the way) and the
sha256 of every artifact, downloaded; per sweep (its `vaelab.sweep` tag), its run id and status.

    python read_mlflow.py TRACKING_URI EXPERIMENT
"""

import hashlib
import json
import os
import sys
import tempfile

import mlflow
from mlflow.tracking import MlflowClient


def main(uri, experiment):
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    out = {"runs": {}, "sweeps": {}}
    runs = client.search_runs([exp.experiment_id], max_results=1000) if exp else []
    for run in runs:
        if "vaelab.sweep" in run.data.tags:
            out["sweeps"][run.data.tags["vaelab.sweep"]] = {
                "run_id": run.info.run_id,
                "status": run.info.status,
            }
            continue
        metrics = {
            key: sorted([m.step, repr(m.value)] for m in client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics
        }
        artifacts = {}
        with tempfile.TemporaryDirectory() as tmp:
            root = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=tmp)
            for base, _, files in os.walk(root):
                for f in files:
                    path = os.path.join(base, f)
                    with open(path, "rb") as fh:
                        artifacts[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
        out["runs"][run.data.tags["vaelab.run_id"]] = {
            "artifacts": artifacts,
            "params": run.data.params,
            "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.") or k
                     in ("mlflow.runName", "mlflow.source.git.commit", "mlflow.source.git.branch",
                         "mlflow.parentRunId")},
            "status": run.info.status,
            "metrics": metrics,
        }
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
