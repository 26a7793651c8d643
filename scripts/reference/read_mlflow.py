"""Reads an MLflow experiment back with MLflow's own Python client and prints JSON, for
tests/trackers.rs: per vaelab run (its `vaelab.run_id` tag), the params, tags, status and every
metric's full history (values as repr strings, so that no digit is lost on the way).

    python read_mlflow.py TRACKING_URI EXPERIMENT
"""

import json
import sys

import mlflow
from mlflow.tracking import MlflowClient


def main(uri, experiment):
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    out = {}
    for run in client.search_runs([exp.experiment_id], max_results=1000):
        metrics = {
            key: sorted([m.step, repr(m.value)] for m in client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics
        }
        out[run.data.tags["vaelab.run_id"]] = {
            "params": run.data.params,
            "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.") or k
                     in ("mlflow.runName", "mlflow.source.git.commit", "mlflow.source.git.branch")},
            "status": run.info.status,
            "metrics": metrics,
        }
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
