//! MLflow over its REST API (`/api/2.0/mlflow/…`, MLflow 3.x): one MLflow experiment per sweep
//! (or named), one MLflow run per vaelab run, found again by its `vaelab.run_id` tag:
//!
//! - tags: `mlflow.runName` (the run id), `mlflow.source.name`, `mlflow.source.git.commit` and
//!   `.branch`, `vaelab.run_id`, `vaelab.code_fingerprint`;
//! - params: every parameter of the run, from the one schema (write-once: sending the same
//!   value again is accepted);
//! - metrics, step = epoch: `train/…` and `test/…` recon, KL, KL term and loss,
//!   `schedule/lr`, `schedule/kl_weight`, `schedule/capacity`, and the evaluation
//!   (`eval/elbo`, `eval/iwae_k<k>`, `eval/active_units`) at the last epoch; NaN and ±∞ as the
//!   JSON strings MLflow accepts;
//! - status FINISHED / FAILED / KILLED / RUNNING and the start and end times.
//!
//! Idempotent: metrics are append-only in MLflow, so an export reads each key's history and
//! sends only the steps it lacks; exporting again sends no metric. Batches stay within the
//! server's limits (1000 metrics, 100 params, 100 tags per `runs/log-batch`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};

use super::millis;
use crate::config::params::{param_value, PARAMS};
use crate::store::{RunRecord, RunState, Store};
use crate::sweep::Manifest;

/// A tracking server at a base URI (`http://127.0.0.1:5000`).
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

/// Most metrics per `runs/log-batch` (and most items in all).
const BATCH_METRICS: usize = 1000;
/// Most params per batch.
const BATCH_PARAMS: usize = 100;

impl Client {
    /// A client of the server at `uri` (`http://host:port`); a malformed URI is an error here.
    pub fn new(uri: &str) -> Result<Self> {
        let base = crate::config::tracking::mlflow_uri(uri)
            .map_err(|allowed| anyhow!("{uri}: allowed: {allowed}"))?;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(20))
            .build();
        Ok(Self { base, agent })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/2.0/mlflow/{path}", self.base)
    }

    /// The JSON of an answer, or the server's error as one line (`RESOURCE_ALREADY_EXISTS: …`).
    fn answer(&self, path: &str, reply: Result<ureq::Response, ureq::Error>) -> Result<Value> {
        match reply {
            Ok(r) => r
                .into_json::<Value>()
                .with_context(|| format!("{}: not JSON", self.url(path))),
            Err(ureq::Error::Status(code, r)) => {
                // MLflow's errors are JSON; a proxy's or another server's are any text.
                let text = r.into_string().unwrap_or_default();
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let kind = body["error_code"].as_str().unwrap_or("").to_string();
                let message = body["message"].as_str().unwrap_or(&text);
                let mut message = message.split_whitespace().collect::<Vec<_>>().join(" ");
                if message.chars().count() > 160 {
                    message = message.chars().take(160).collect::<String>() + "…";
                }
                let status = if kind.is_empty() {
                    code.to_string()
                } else {
                    format!("{code} {kind}")
                };
                Err(anyhow!(ServerError {
                    message: format!("{}: {status}: {message}", self.url(path)),
                    kind,
                }))
            }
            Err(e) => Err(anyhow!("{}: {e}", self.url(path))),
        }
    }

    fn post(&self, path: &str, body: Value) -> Result<Value> {
        let reply = self.agent.post(&self.url(path)).send_json(body);
        self.answer(path, reply)
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let mut request = self.agent.get(&self.url(path));
        for (k, v) in query {
            request = request.query(k, v);
        }
        self.answer(path, request.call())
    }

    /// The id of experiment `name`, created if there is none (a concurrent creation is fine).
    pub fn experiment(&self, name: &str) -> Result<String> {
        let found = |c: &Self| -> Result<Option<String>> {
            match c.get("experiments/get-by-name", &[("experiment_name", name)]) {
                Ok(v) => Ok(v["experiment"]["experiment_id"].as_str().map(String::from)),
                Err(e) if server_kind(&e) == Some("RESOURCE_DOES_NOT_EXIST") => Ok(None),
                Err(e) => Err(e),
            }
        };
        if let Some(id) = found(self)? {
            return Ok(id);
        }
        match self.post("experiments/create", json!({ "name": name })) {
            Ok(v) => v["experiment_id"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| anyhow!("experiments/create: no experiment_id")),
            Err(e) if server_kind(&e) == Some("RESOURCE_ALREADY_EXISTS") => {
                found(self)?.ok_or_else(|| anyhow!("experiment {name} vanished"))
            }
            Err(e) => Err(e),
        }
    }

    /// The MLflow run tagged `key = value` in `experiment`, if there is one: its id, artifact
    /// URI and tags.
    fn find_run(&self, experiment: &str, key: &str, value: &str) -> Result<Option<FoundRun>> {
        let v = self.post(
            "runs/search",
            json!({
                "experiment_ids": [experiment],
                "filter": format!("tags.`{key}` = '{value}'"),
                "max_results": 2,
            }),
        )?;
        if v["runs"].as_array().is_some_and(|r| r.len() > 1) {
            eprintln!("warning: MLflow holds two runs tagged {key} = {value}; using the newest");
        }
        Ok(FoundRun::of(&v["runs"][0]))
    }

    /// The run tagged `key = value` in `experiment`, created with `name`, `start` and `tags`
    /// (which include that tag) when there is none.
    fn run(
        &self,
        experiment: &str,
        (key, value): (&str, &str),
        name: &str,
        start: i64,
        tags: &[Value],
    ) -> Result<FoundRun> {
        if let Some(run) = self.find_run(experiment, key, value)? {
            return Ok(run);
        }
        let v = self.post(
            "runs/create",
            json!({ "experiment_id": experiment, "run_name": name, "start_time": start, "tags": tags }),
        )?;
        FoundRun::of(&v["run"]).ok_or_else(|| anyhow!("runs/create: no run_id"))
    }

    /// Uploads `bytes` as artifact `path` of `run` (the server's proxied artifact store).
    fn put_artifact(&self, run: &FoundRun, path: &str, bytes: &[u8]) -> Result<()> {
        let root = run
            .artifact_uri
            .strip_prefix("mlflow-artifacts:/")
            .ok_or_else(|| {
                anyhow!(
                    "artifact URI {}: not served by the server",
                    run.artifact_uri
                )
            })?;
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{root}/{path}",
            self.base
        );
        match self.agent.put(&url).send_bytes(bytes) {
            // The server answers an upload with an empty body.
            Ok(_) => Ok(()),
            Err(e) => self
                .answer(&format!("../mlflow-artifacts/{path}"), Err(e))
                .map(|_| ()),
        }
    }

    /// The steps of `key` already logged to `run`.
    fn steps(&self, run: &str, key: &str) -> Result<BTreeSet<i64>> {
        let v = self.get(
            "metrics/get-history",
            &[
                ("run_id", run),
                ("metric_key", key),
                ("max_results", "25000"),
            ],
        )?;
        Ok(v["metrics"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|p| {
                        let step = &p["step"];
                        step.as_i64().or_else(|| step.as_str()?.parse().ok())
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    fn log_batch(
        &self,
        run: &str,
        metrics: &[Value],
        params: &[Value],
        tags: &[Value],
    ) -> Result<()> {
        for chunk in params.chunks(BATCH_PARAMS) {
            self.post("runs/log-batch", json!({ "run_id": run, "params": chunk }))?;
        }
        for chunk in tags.chunks(BATCH_PARAMS) {
            self.post("runs/log-batch", json!({ "run_id": run, "tags": chunk }))?;
        }
        for chunk in metrics.chunks(BATCH_METRICS) {
            self.post("runs/log-batch", json!({ "run_id": run, "metrics": chunk }))?;
        }
        Ok(())
    }
}

/// An MLflow run found or created: its id, artifact root and tags.
struct FoundRun {
    id: String,
    artifact_uri: String,
    tags: BTreeMap<String, String>,
}

impl FoundRun {
    fn of(run: &Value) -> Option<Self> {
        let tags = run["data"]["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| Some((t["key"].as_str()?.into(), t["value"].as_str()?.into())))
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            id: run["info"]["run_id"].as_str()?.to_string(),
            artifact_uri: run["info"]["artifact_uri"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            tags,
        })
    }
}

/// An error answer of the server: its MLflow error code and the whole line.
#[derive(Debug)]
struct ServerError {
    kind: String,
    message: String,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServerError {}

fn server_kind(e: &anyhow::Error) -> Option<&str> {
    e.downcast_ref::<ServerError>().map(|s| s.kind.as_str())
}

/// A metric value as MLflow's JSON takes it: non-finite ones as its strings.
fn metric_value(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("Infinity")
    } else if v == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(v)
    }
}

/// Every metric of `record` by key: (step, value).
fn metrics(record: &RunRecord) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for r in &record.rows {
        for (key, v) in super::row_metrics(r) {
            out.entry(key).or_default().push((i64::from(r.epoch), v));
        }
    }
    // The evaluation belongs to a finished run's last epoch.
    let last = record.rows.iter().map(|r| i64::from(r.epoch)).max();
    if let (Some(last), true) = (last, last == Some(record.spec.epochs as i64)) {
        for (key, v) in super::eval_metrics(record) {
            out.entry(key).or_default().push((last, v));
        }
    }
    out
}

/// The files of a finished run that become its MLflow artifacts (those it has), relative to
/// its directory: its tables, config, provenance, model, report page and pictures.
fn artifacts(store: &Store, record: &RunRecord) -> Vec<(String, std::path::PathBuf)> {
    let dir = store.run(&record.id);
    let mut files: Vec<String> = [
        "config.toml",
        "provenance.toml",
        "metrics.parquet",
        "kl_dims.parquet",
        "eval.parquet",
        "model.bpk",
        "report/index.html",
    ]
    .map(String::from)
    .to_vec();
    if let Ok(plots) = std::fs::read_dir(dir.file("plots")) {
        let mut names: Vec<String> = plots
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .map(|n| format!("plots/{n}"))
            .collect();
        names.sort();
        files.extend(names);
    }
    files
        .into_iter()
        .map(|f| {
            let path = dir.file(&f);
            (f, path)
        })
        .filter(|(_, p)| p.is_file())
        .collect()
}

/// Brings the MLflow run of `record` in `experiment` (a child of `parent`, when given) up to
/// what is on disk; returns the number of metric points sent.
pub fn sync_run(
    client: &Client,
    store: &Store,
    experiment: &str,
    parent: Option<&str>,
    record: &RunRecord,
) -> Result<usize> {
    let prov = record.provenance.as_ref();
    let start = prov.and_then(|p| millis(&p.started)).unwrap_or(0);
    let tag = |k: &str, v: &str| json!({ "key": k, "value": v });
    let mut tags = vec![
        tag("mlflow.runName", &record.id),
        tag("mlflow.source.name", "vaelab"),
        tag("vaelab.run_id", &record.id),
    ];
    if let Some(p) = prov {
        tags.push(tag("mlflow.source.git.commit", &p.git_commit));
        tags.push(tag("mlflow.source.git.branch", &p.git_branch));
        tags.push(tag("vaelab.code_fingerprint", &p.code_fingerprint));
    }
    if let Some(parent) = parent {
        tags.push(tag("mlflow.parentRunId", parent));
    }
    let run = client.run(
        experiment,
        ("vaelab.run_id", &record.id),
        &record.id,
        start,
        &tags,
    )?;
    let params: Vec<Value> = PARAMS
        .iter()
        .map(|p| json!({ "key": p.key, "value": param_value(&record.spec, p.key) }))
        .collect();
    let now = chrono::Utc::now().timestamp_millis();
    let mut points = Vec::new();
    for (key, series) in metrics(record) {
        let have = client.steps(&run.id, &key)?;
        for (step, v) in series.into_iter().filter(|(s, _)| !have.contains(s)) {
            points.push(
                json!({ "key": key, "value": metric_value(v), "timestamp": now, "step": step }),
            );
        }
    }
    client.log_batch(&run.id, &points, &params, &tags)?;
    let status = match record.state {
        RunState::Done => "FINISHED",
        RunState::Failed => "FAILED",
        RunState::Interrupted => "KILLED",
        RunState::Running | RunState::Queued => "RUNNING",
    };
    let mut update = json!({ "run_id": run.id, "status": status });
    if let Some(end) = prov.and_then(|p| millis(&p.finished)) {
        if status != "RUNNING" {
            update["end_time"] = json!(end);
        }
    }
    client.post("runs/update", update)?;
    // Last and best-effort: a server whose artifact store it does not serve still gets every
    // number and status above.
    if record.state == RunState::Done {
        if let Err(e) = send_artifacts(client, store, record, &run) {
            eprintln!("warning: {}: the artifacts were not sent: {e:#}", record.id);
        }
    }
    Ok(points.len())
}

/// Uploads a done run's files, unless the run's `vaelab.artifacts` tag says they are there.
fn send_artifacts(
    client: &Client,
    store: &Store,
    record: &RunRecord,
    run: &FoundRun,
) -> Result<()> {
    let files = artifacts(store, record);
    // Uploaded again only when they change (tag `vaelab.artifacts`).
    let stamp = crate::store::files_stamp(files.iter().map(|(_, p)| p.as_path()), "");
    if run.tags.get("vaelab.artifacts") == Some(&stamp) {
        return Ok(());
    }
    for (name, path) in &files {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        client.put_artifact(run, name, &bytes)?;
    }
    let tag = json!({ "key": "vaelab.artifacts", "value": stamp });
    client.log_batch(&run.id, &[], &[], &[tag])
}

/// Exports the runs `ids` of `store` to experiment `experiment` of the server at `uri`, as
/// children of the sweep's parent run when `sweep` names one; returns the metric points sent.
/// Runs not started yet (no directory) are left for a later export; the sweep's run is
/// RUNNING until every run is done.
pub fn export(
    store: &Store,
    ids: &[String],
    uri: &str,
    experiment: &str,
    sweep: Option<&str>,
) -> Result<usize> {
    let client = Client::new(uri)?;
    let experiment = client.experiment(experiment)?;
    let records = ids
        .iter()
        .filter(|id| store.run(id).config_path().is_file())
        .map(|id| store.record(id).map_err(anyhow::Error::from))
        .collect::<Result<Vec<RunRecord>>>()?;
    let unstarted = ids.len() - records.len();
    let parent = match sweep {
        Some(name) => {
            let tags = [
                json!({ "key": "mlflow.runName", "value": name }),
                json!({ "key": "vaelab.sweep", "value": name }),
            ];
            // The sweep started when its first run did.
            let start = records
                .iter()
                .filter_map(|r| millis(&r.provenance.as_ref()?.started))
                .min()
                .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
            let parent = client.run(&experiment, ("vaelab.sweep", name), name, start, &tags)?;
            Some(parent.id)
        }
        None => None,
    };
    let mut sent = 0;
    for record in &records {
        sent += sync_run(&client, store, &experiment, parent.as_deref(), record)
            .with_context(|| format!("run {}", record.id))?;
    }
    if let (Some(parent), Some(name)) = (parent, sweep) {
        // The sweep's run is as done as all its runs (a Slurm task sends only its own), from
        // its manifest where there is one.
        let states: Vec<RunState> = match Manifest::read(&store.manifest_path(name)) {
            Ok(m) => m
                .runs
                .iter()
                .map(|r| store.run(&r.id).current_state())
                .collect(),
            Err(_) => records
                .iter()
                .map(|r| r.state)
                .chain(std::iter::repeat_n(RunState::Queued, unstarted))
                .collect(),
        };
        let status = if states.contains(&RunState::Failed) {
            "FAILED"
        } else if states.iter().all(|s| *s == RunState::Done) {
            "FINISHED"
        } else {
            "RUNNING"
        };
        // RUNNING is what MLflow made it; never sent, so that a Slurm task whose mates are
        // still training cannot undo the FINISHED of the one that ended last.
        if status != "RUNNING" {
            client.post("runs/update", json!({ "run_id": parent, "status": status }))?;
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_metrics_are_mlflows_strings() {
        assert_eq!(metric_value(f64::NAN), json!("NaN"));
        assert_eq!(metric_value(f64::INFINITY), json!("Infinity"));
        assert_eq!(metric_value(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(metric_value(1.5), json!(1.5));
    }

    #[test]
    fn a_malformed_uri_is_refused_before_any_request() {
        assert!(Client::new("localhost:5000").is_err());
        assert!(Client::new("http://127.0.0.1:5000/").is_ok());
    }
}
