//! vaelab's TensorBoard logs read back by TensorBoard's own readers (its event accumulator and
//! raw event loader, and tbparse for the HParams; `./scripts/setup-trackers` installs them and
//! `./scripts/test` runs it): every scalar equals the Parquet on disk, a live sweep and a later
//! export agree, exporting again adds nothing, and a run whose epochs went back is purged by
//! TensorBoard's restart marker rather than shown twice. And a real MLflow server read back
//! with MLflow's own client.
// Without the feature the failpoint test is compiled out.
#![cfg_attr(not(feature = "failpoints"), allow(unused_imports))]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use vaelab::store::{read_metrics, write_metrics, EpochRow, Store};

/// The trackers' Python, installed by `./scripts/setup-trackers` (no reader, no pass).
fn python() -> PathBuf {
    let py = vaelab::data::cache_dir().join("trackers/bin/python");
    assert!(
        py.is_file(),
        "TensorBoard's reader is missing at {}: run ./scripts/setup-trackers",
        py.display()
    );
    py
}

/// Per run: tag → [(step, value)], the raw event count, the HParams. Values are the float32
/// that TensorBoard stores (read back through JSON as float64, then narrowed: serde_json's
/// default float parsing may miss the last bit of a float64, never of the float32 in it).
#[derive(Debug, PartialEq)]
struct ReadBack {
    scalars: BTreeMap<String, Vec<(i64, f32)>>,
    events: u64,
    hparams: BTreeMap<String, serde_json::Value>,
}

fn read_back(logdir: &Path) -> BTreeMap<String, ReadBack> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference/read_tensorboard.py");
    let out = Command::new(python())
        .arg(script)
        .arg(logdir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json.as_object()
        .unwrap()
        .iter()
        .map(|(run, v)| {
            let scalars = v["scalars"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(tag, points)| {
                    let points = points
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap() as f32))
                        .collect();
                    (tag.clone(), points)
                })
                .collect();
            let hparams = v["hparams"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let events = v["events"].as_u64().unwrap();
            (
                run.clone(),
                ReadBack {
                    scalars,
                    events,
                    hparams,
                },
            )
        })
        .collect()
}

/// What the scalars of a run must be in TensorBoard: [`expected_f64`] as float32.
fn expected(rows: &[EpochRow]) -> BTreeMap<String, Vec<(i64, f32)>> {
    expected_f64(rows)
        .into_iter()
        .map(|(tag, points)| {
            (
                tag,
                points.into_iter().map(|(s, v)| (s, v as f32)).collect(),
            )
        })
        .collect()
}

const MATRIX: &str = "[sweep]\nname = \"tb\"\n[base]\nepochs = 3\nlimit = 600\nhidden = [16]\n[grid]\nmodel = [\"ae\", \"vae\"]\n[[include]]\nmodel = \"vae\"\nkl_warmup = 2\n[[include]]\nmodel = \"vae\"\ncapacity = 4.0\ncapacity_epochs = 2\n";

#[test]
fn a_live_sweep_reads_back_exactly_and_exports_are_idempotent_and_purge_rewritten_epochs() {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = scratch.path().join("tb.toml");
    std::fs::write(&matrix, MATRIX).unwrap();
    let results = scratch.path().join("results");
    let live = scratch.path().join("live");
    let out = common::vaelab(
        &results,
        &[
            "--quiet",
            "sweep",
            matrix.to_str().unwrap(),
            "--tensorboard",
            live.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let store = Store::new(&results);
    let ids = store.run_ids().unwrap();
    assert_eq!(ids.len(), 4);

    // Live: every scalar of every run exactly as on disk, once per epoch; the evaluation at
    // the last epoch; the HParams of every run.
    let back = read_back(&live);
    assert_eq!(back.keys().cloned().collect::<Vec<_>>(), ids);
    for id in &ids {
        let run = &back[id];
        let rows = read_metrics(&store.run(id).metrics_path()).unwrap();
        let mut scalars = run.scalars.clone();
        let eval: BTreeMap<String, Vec<(i64, f32)>> = scalars
            .iter()
            .filter(|(t, _)| t.starts_with("eval/"))
            .map(|(t, p)| (t.clone(), p.clone()))
            .collect();
        scalars.retain(|t, _| !t.starts_with("eval/"));
        assert_eq!(scalars, expected(&rows), "{id}");
        let record = store.record(id).unwrap();
        let elbo = vaelab::store::eval_value(&record.eval, "elbo", None, None);
        assert_eq!(
            eval.get("eval/elbo").cloned(),
            elbo.map(|v| vec![(3, v as f32)]),
            "{id}"
        );
        assert_eq!(
            run.hparams["model"],
            serde_json::json!(record.spec.model.as_str())
        );
        assert_eq!(
            run.hparams["latent"],
            serde_json::json!(record.spec.latent as f64)
        );
        assert_eq!(run.hparams["hidden"], serde_json::json!("16"));
    }
    let capacity = ids
        .iter()
        .find(|id| store.record(id).unwrap().spec.capacity > 0.0)
        .unwrap();
    assert_eq!(back[capacity].scalars["schedule/capacity"].len(), 3);

    // An export into a fresh directory writes the same logs; a second one writes nothing.
    let exported = scratch.path().join("exported");
    let export = |dir: &Path, what: &str| {
        let out = common::vaelab(
            &results,
            &["export", "tensorboard", dir.to_str().unwrap(), what],
        );
        assert!(out.status.success(), "{}", common::text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    export(&exported, "tb");
    assert_eq!(read_back(&exported), back);
    assert!(export(&exported, "tb").contains("0 events written"));
    assert!(export(&live, "tb").contains("0 events written"));
    assert_eq!(read_back(&live), back);

    // A run whose metrics go back to epoch 1 (rewritten): the export writes the restart
    // marker and TensorBoard drops epochs 2 and 3; once they are back, they show once each.
    let id = &ids[1];
    let path = store.run(id).metrics_path();
    let rows = read_metrics(&path).unwrap();
    let first: Vec<EpochRow> = rows.iter().filter(|r| r.epoch == 1).cloned().collect();
    write_metrics(&path, &first).unwrap();
    export(&live, id);
    let cut = read_back(&live);
    assert_eq!(cut[id].scalars["test/loss"], expected(&first)["test/loss"]);
    write_metrics(&path, &rows).unwrap();
    export(&live, id);
    let again = read_back(&live);
    let mut scalars = again[id].scalars.clone();
    scalars.retain(|t, _| !t.starts_with("eval/"));
    assert_eq!(scalars, expected(&rows));
    // The marker, then epochs 2 and 3, the evaluation and the session end once more.
    assert_eq!(again[id].scalars, back[id].scalars);
    assert_eq!(again[id].hparams, back[id].hparams);
    assert_eq!(again[id].events, back[id].events + 5);
    // Epoch 3 retrained to other numbers (as in another stack, to float rounding): the log
    // restarts at epoch 3 and shows the new numbers once.
    let mut other = rows.clone();
    for r in other.iter_mut().filter(|r| r.epoch == 3) {
        r.recon += 0.5;
    }
    write_metrics(&path, &other).unwrap();
    export(&live, id);
    let shifted = read_back(&live);
    let mut scalars = shifted[id].scalars.clone();
    scalars.retain(|t, _| !t.starts_with("eval/"));
    assert_eq!(scalars, expected(&other));
    write_metrics(&path, &rows).unwrap();
}

#[test]
fn exporting_an_unknown_run_is_a_one_line_error_and_writes_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("tb");
    let out = common::vaelab(
        scratch.path(),
        &["export", "tensorboard", dir.to_str().unwrap(), "nope"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("nope"), "{err}");
    assert!(!dir.exists());
}

/// A real `mlflow server` (SQLite backend, served artifacts) on a free port of 127.0.0.1,
/// stopped when dropped.
struct MlflowServer {
    child: std::process::Child,
    uri: String,
    _dir: Option<tempfile::TempDir>,
}

impl MlflowServer {
    /// A server on a fresh store.
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::on(dir.path(), free_port());
        server._dir = Some(dir);
        server
    }

    /// A server on the store in `dir` (its SQLite file and artifacts) at `port`.
    fn on(dir: &Path, port: u16) -> Self {
        use std::os::unix::process::CommandExt;
        let mlflow = python().with_file_name("mlflow");
        // Its own process group: the server's workers (uvicorn, job runners) stop with it.
        let child = Command::new(mlflow)
            .process_group(0)
            .args([
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--workers",
                "1",
            ])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.join("artifacts"))
            .env("MLFLOW_DISABLE_TELEMETRY", "true")
            .env("DO_NOT_TRACK", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = Self {
            child,
            uri: format!("http://127.0.0.1:{port}"),
            _dir: None,
        };
        let started = std::time::Instant::now();
        while !healthy(port) {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "mlflow server on port {port} did not answer /health"
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        server
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        let group = -(self.child.id() as i32);
        unsafe {
            libc::kill(group, libc::SIGTERM);
        }
        let _ = self.child.wait();
        std::thread::sleep(std::time::Duration::from_millis(500));
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /health` answers `OK`.
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.") && reply.contains(" 200 ") && reply.ends_with("OK")
}

/// Per vaelab run: params, tags, status, metric histories (values parsed from Python's repr),
/// artifacts' sha256; and per sweep its parent run.
fn read_mlflow(
    uri: &str,
    experiment: &str,
) -> (BTreeMap<String, serde_json::Value>, serde_json::Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference/read_mlflow.py");
    let out = Command::new(python())
        .arg(script)
        .args([uri, experiment])
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = json["runs"]
        .as_object()
        .unwrap()
        .clone()
        .into_iter()
        .collect();
    (runs, json["sweeps"].clone())
}

/// sha256 of a file, as hex.
fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// MLflow's `metrics` of a read-back run as key → [(step, value)].
fn mlflow_metrics(run: &serde_json::Value) -> BTreeMap<String, Vec<(i64, f64)>> {
    run["metrics"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, points)| {
            let points = points
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_i64().unwrap(),
                        p[1].as_str().unwrap().parse().unwrap(),
                    )
                })
                .collect();
            (k.clone(), points)
        })
        .collect()
}

/// A sweep sent live to a real MLflow server, read back with MLflow's own client: params,
/// tags, status and every epoch's metrics equal what is on disk, exactly; exporting again sends
/// nothing and duplicates nothing. A sweep whose server is down finishes (a warning), and a
/// later export completes it.
#[test]
fn mlflow_holds_every_number_once_live_or_exported_later() {
    let server = MlflowServer::start();
    let scratch = tempfile::tempdir().unwrap();
    let matrix = scratch.path().join("ml.toml");
    std::fs::write(&matrix, MATRIX.replace("name = \"tb\"", "name = \"ml\"")).unwrap();
    let results = scratch.path().join("results");
    let out = common::vaelab(
        &results,
        &[
            "--quiet",
            "sweep",
            matrix.to_str().unwrap(),
            "--mlflow",
            &server.uri,
        ],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let store = Store::new(&results);
    let ids = store.run_ids().unwrap();
    let (back, sweeps) = read_mlflow(&server.uri, "ml");
    assert_eq!(back.keys().cloned().collect::<Vec<_>>(), ids);
    assert_eq!(sweeps["ml"]["status"], "FINISHED");
    for id in &ids {
        let record = store.record(id).unwrap();
        let run = &back[id];
        assert_eq!(run["status"], "FINISHED", "{id}");
        assert_eq!(run["tags"]["mlflow.runName"], id.as_str());
        let prov = record.provenance.as_ref().unwrap();
        assert_eq!(
            run["tags"]["mlflow.source.git.commit"],
            prov.git_commit.as_str()
        );
        assert_eq!(
            run["tags"]["vaelab.code_fingerprint"],
            prov.code_fingerprint.as_str()
        );
        assert_eq!(
            run["params"]["latent"],
            record.spec.latent.to_string().as_str()
        );
        assert_eq!(run["params"]["model"], record.spec.model.as_str());
        let mut metrics = mlflow_metrics(run);
        let elbo = metrics.remove("eval/elbo");
        metrics.retain(|k, _| !k.starts_with("eval/"));
        let want: BTreeMap<String, Vec<(i64, f64)>> = expected_f64(&record.rows);
        assert_eq!(metrics, want, "{id}");
        let stored = vaelab::store::eval_value(&record.eval, "elbo", None, None);
        assert_eq!(elbo, stored.map(|v| vec![(3, v)]), "{id}");
        assert_eq!(run["tags"]["mlflow.parentRunId"], sweeps["ml"]["run_id"]);
        // The artifacts are the run's files, byte for byte.
        let dir = store.run(id);
        let artifacts = run["artifacts"].as_object().unwrap();
        for name in [
            "config.toml",
            "metrics.parquet",
            "model.bpk",
            "report/index.html",
            "plots/curves.png",
        ] {
            assert_eq!(
                artifacts[name],
                sha256(&dir.file(name)).as_str(),
                "{id}: {name}"
            );
        }
    }
    let export = |what: &str, uri: &str| common::vaelab(&results, &["export", "mlflow", uri, what]);
    let again = export("ml", &server.uri);
    assert!(again.status.success(), "{}", common::text(&again));
    assert!(
        common::text(&again).contains(", 0 metric points sent"),
        "{}",
        common::text(&again)
    );
    assert_eq!(read_mlflow(&server.uri, "ml").0, back);

    // The server down for a whole sweep: it trains to the end with a warning; then the
    // export brings every run in, once.
    let down = format!("http://127.0.0.1:{}", free_port());
    let matrix = scratch.path().join("down.toml");
    std::fs::write(&matrix, MATRIX.replace("name = \"tb\"", "name = \"down\"")).unwrap();
    let results_down = scratch.path().join("results-down");
    let out = common::vaelab(
        &results_down,
        &[
            "--quiet",
            "sweep",
            matrix.to_str().unwrap(),
            "--mlflow",
            &down,
            "--eval",
            "off",
        ],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    assert!(
        common::text(&out).contains("the MLflow export is incomplete"),
        "{}",
        common::text(&out)
    );
    let out = common::vaelab(&results_down, &["export", "mlflow", &down, "down"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().count(),
        1,
        "{}",
        common::text(&out)
    );
    let out = common::vaelab(&results_down, &["export", "mlflow", &server.uri, "down"]);
    assert!(out.status.success(), "{}", common::text(&out));
    let store = Store::new(&results_down);
    let (back, _) = read_mlflow(&server.uri, "down");
    assert_eq!(back.len(), 4);
    for (id, run) in &back {
        let rows = read_metrics(&store.run(id).metrics_path()).unwrap();
        assert_eq!(mlflow_metrics(run), expected_f64(&rows), "{id}");
    }
}

/// What the metrics of a run must be: every row's numbers by tag, step = epoch (float64, as
/// MLflow stores them; the tags written out here, not taken from vaelab).
fn expected_f64(rows: &[EpochRow]) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut want: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for r in rows {
        let split = r.split.as_str();
        let step = i64::from(r.epoch);
        let mut add = |tag: String, v: Option<f64>| {
            if let Some(v) = v {
                want.entry(tag).or_default().push((step, v));
            }
        };
        add(format!("{split}/recon"), Some(r.recon));
        add(format!("{split}/kl"), r.kl);
        add(format!("{split}/kl_term"), r.beta_kl);
        add(format!("{split}/loss"), Some(r.loss));
        if split == "train" {
            add("schedule/lr".into(), r.lr);
            add("schedule/kl_weight".into(), r.kl_weight);
            add("schedule/capacity".into(), r.capacity);
        }
    }
    for points in want.values_mut() {
        points.sort_by_key(|p| p.0);
    }
    want
}

/// The logs are written while the sweep trains, not only at its end: killed at its first
/// epoch-3 checkpoint (before any final export), the log already holds a finished epoch of a
/// run, equal to its metrics; relaunched to the end, every run's log is its metrics once.
#[cfg(feature = "failpoints")]
#[test]
fn tensorboard_logs_are_live_and_a_killed_and_resumed_sweep_shows_each_epoch_once() {
    use std::os::unix::process::ExitStatusExt;
    let scratch = tempfile::tempdir().unwrap();
    let matrix = scratch.path().join("tb.toml");
    std::fs::write(&matrix, MATRIX).unwrap();
    let results = scratch.path().join("results");
    let logs = scratch.path().join("logs");
    let args = [
        "--quiet",
        "sweep",
        matrix.to_str().unwrap(),
        "--tensorboard",
        logs.to_str().unwrap(),
        "--eval",
        "off",
    ];
    let kill = [("FAILPOINTS", "durable::before_rename::model-3.bpk=return")];
    let out = common::vaelab_env(&results, &kill, &args);
    assert_eq!(out.status.signal(), Some(9), "{}", common::text(&out));
    let store = Store::new(&results);
    let back = read_back(&logs);
    let live: Vec<&String> = back
        .iter()
        .filter(|(_, run)| run.scalars.get("test/loss").is_some_and(|p| !p.is_empty()))
        .map(|(id, _)| id)
        .collect();
    assert!(
        !live.is_empty(),
        "no epoch was logged before the kill: {back:?}"
    );
    for id in live {
        let rows = read_metrics(&store.run(id).metrics_path()).unwrap();
        let logged = &back[id].scalars["test/loss"];
        assert_eq!(
            logged[..],
            expected(&rows)["test/loss"][..logged.len()],
            "{id}"
        );
    }
    let out = common::vaelab(&results, &args);
    assert!(out.status.success(), "{}", common::text(&out));
    let back = read_back(&logs);
    assert_eq!(back.len(), 4);
    for (id, run) in &back {
        let rows = read_metrics(&store.run(id).metrics_path()).unwrap();
        assert_eq!(run.scalars, expected(&rows), "{id}");
    }
}

/// The MLflow server killed mid-sweep: the sweep trains to the end (a warning), MLflow holds
/// part of it; the server back on the same store, one export completes every run, each
/// epoch once.
#[test]
fn an_mlflow_server_killed_mid_sweep_is_completed_by_a_later_export() {
    let store_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = MlflowServer::on(store_dir.path(), port);
    let uri = server.uri.clone();
    let scratch = tempfile::tempdir().unwrap();
    let matrix = scratch.path().join("kill.toml");
    let text = MATRIX
        .replace("name = \"tb\"", "name = \"kill\"")
        .replace("epochs = 3\nlimit = 600", "epochs = 6\nlimit = 3000");
    std::fs::write(&matrix, text).unwrap();
    let results = scratch.path().join("results");
    let sweep = common::command(&results)
        .args([
            "--quiet",
            "sweep",
            matrix.to_str().unwrap(),
            "--mlflow",
            &uri,
            "--eval",
            "off",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed once MLflow has a run with a metric (sent live), the sweep still training.
    let store = Store::new(&results);
    let started = std::time::Instant::now();
    while !read_mlflow(&uri, "kill")
        .0
        .values()
        .any(|run| !mlflow_metrics(run).is_empty())
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "nothing sent live"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(server);
    let out = sweep.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    assert!(
        common::text(&out).contains("the MLflow export is incomplete"),
        "{}",
        common::text(&out)
    );
    let server = MlflowServer::on(store_dir.path(), port);
    let ids = store.run_ids().unwrap();
    let complete = |back: &BTreeMap<String, serde_json::Value>| {
        ids.iter().all(|id| {
            back.get(id).is_some_and(|run| {
                let rows = read_metrics(&store.run(id).metrics_path()).unwrap();
                mlflow_metrics(run) == expected_f64(&rows)
            })
        })
    };
    let (partial, _) = read_mlflow(&server.uri, "kill");
    assert!(
        !complete(&partial),
        "the server saw the whole sweep: it was not killed mid-sweep"
    );
    let out = common::vaelab(&results, &["export", "mlflow", &server.uri, "kill"]);
    assert!(out.status.success(), "{}", common::text(&out));
    let (back, sweeps) = read_mlflow(&server.uri, "kill");
    assert!(complete(&back), "{back:?}");
    assert_eq!(back.len(), 4);
    assert_eq!(sweeps["kill"]["status"], "FINISHED");
}
