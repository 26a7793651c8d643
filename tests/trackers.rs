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
use std::path::Path;

use common::trackers::*;

use vaelab::store::{read_metrics, write_metrics, EpochRow, Store};

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
    // Trained, but MLflow has not got it: exit code 3.
    assert_eq!(out.status.code(), Some(3), "{}", common::text(&out));
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
    assert_eq!(out.status.code(), Some(3), "{}", common::text(&out));
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

/// A stand-in server that answers every request with 503 and an MLflow-style JSON error (a
/// server under maintenance, behind a proxy), on a free port of 127.0.0.1; stopped when dropped.
struct Erring {
    child: std::process::Child,
    uri: String,
}

impl Erring {
    fn start() -> Self {
        const SERVER: &str = r#"
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def reply(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "down for\nmaintenance"}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PUT = reply
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;
        let port = free_port();
        let child = std::process::Command::new("python3")
            .args(["-c", SERVER, &port.to_string()])
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < std::time::Duration::from_secs(20));
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self {
            child,
            uri: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Erring {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The one line of `text` that contains `needle`.
fn line(text: &str, needle: &str) -> String {
    let found: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(found.len(), 1, "{needle}:\n{text}");
    found[0].to_string()
}

/// Trackers that answer errors: a server answering 503, a real MLflow server answering 404
/// (a URI with a path it does not serve), a TensorBoard directory that is a file. Each is one
/// warning line naming the command that sends the rest, training goes on to the end, and the
/// exit code is 3 (trained, tracking incomplete); that command then completes the run. A
/// malformed URI is refused before anything is written.
#[test]
fn trackers_that_answer_errors_are_one_line_training_goes_on_and_the_exit_code_says_so() {
    let erring = Erring::start();
    let scratch = tempfile::tempdir().unwrap();
    let results = scratch.path().join("results");
    let file = scratch.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "--quiet", "train", "--model", "vae", "--epochs", "2", "--limit", "600", "--hidden",
            "16", "--eval", "off",
        ];
        args.extend_from_slice(extra);
        common::vaelab(&results, &args)
    };
    let out = train(&[
        "--mlflow",
        &erring.uri,
        "--tensorboard",
        file.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{}", common::text(&out));
    let store = Store::new(&results);
    let ids = store.run_ids().unwrap();
    assert_eq!(ids.len(), 1);
    let id = &ids[0];
    let rows = read_metrics(&store.run(id).metrics_path()).unwrap();
    assert_eq!(rows.len(), 4, "training went on to its last epoch");
    let mlflow = line(&err, "the MLflow export is incomplete");
    assert!(
        mlflow.contains("503 TEMPORARILY_UNAVAILABLE: down for maintenance")
            && mlflow.ends_with(&format!(
                "`vaelab export mlflow {} {id}` sends the rest",
                erring.uri
            )),
        "{mlflow}"
    );
    let tensorboard = line(&err, "the TensorBoard logs are incomplete");
    assert!(
        tensorboard.ends_with(&format!(
            "`vaelab export tensorboard {} {id}` writes the rest",
            file.display()
        )),
        "{tensorboard}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );

    // `vaelab export` to the erring server: one line, exit code 1.
    let out = common::vaelab(&results, &["export", "mlflow", &erring.uri, id]);
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let export_err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(export_err.lines().count(), 1, "{export_err}");
    assert!(export_err.contains("503"), "{export_err}");

    // A real server at a path it does not serve answers 404 (HTML): the run, already
    // trained, is reported with the warning and exit code 3; the right URI completes it.
    let server = MlflowServer::start();
    let out = train(&["--mlflow", &format!("{}/nowhere", server.uri)]);
    assert_eq!(out.status.code(), Some(3), "{}", common::text(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        line(&err, "the MLflow export is incomplete").contains(": 404: "),
        "{err}"
    );
    let out = train(&["--mlflow", &server.uri]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let (back, _) = read_mlflow(&server.uri, "vaelab");
    assert_eq!(back.keys().collect::<Vec<_>>(), [id]);
    assert_eq!(back[id]["status"], "FINISHED");
    assert_eq!(mlflow_metrics(&back[id]), expected_f64(&rows));

    // Malformed: a usage error, one line naming the flag and what is allowed; nothing written.
    let fresh = scratch.path().join("fresh");
    let out = common::vaelab(&fresh, &["train", "--mlflow", "localhost:5000"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--mlflow") && err.contains("http://HOST:PORT"),
        "{err}"
    );
    assert!(!fresh.exists());
}

/// Metrics as MLflow's SQL store gives them back, comparable with NaN: ±∞ as ±f64::MAX, each
/// value as its debug text.
fn as_stored(m: BTreeMap<String, Vec<(i64, f64)>>) -> BTreeMap<String, Vec<(i64, String)>> {
    m.into_iter()
        .map(|(k, points)| {
            let points = points
                .into_iter()
                .map(|(s, v)| {
                    let v = if v.is_infinite() {
                        f64::MAX.copysign(v)
                    } else {
                        v
                    };
                    (s, format!("{v:?}"))
                })
                .collect();
            (k, points)
        })
        .collect()
}

/// A run that diverges has NaN in its numbers (and ±∞ written into its table): MLflow gets
/// them (as its JSON strings) and gives them back (its SQL store keeps ±∞ as ±f64::MAX), the
/// run FAILED and so the sweep; the matrix's `[tracking]` table names the server and the
/// experiment.
#[test]
fn non_finite_numbers_reach_mlflow_and_a_matrix_names_its_tracker() {
    let server = MlflowServer::start();
    let scratch = tempfile::tempdir().unwrap();
    let matrix = scratch.path().join("diverge.toml");
    // lr = 10 blows Adam up within the first epoch (as in tests/sweep_cli.rs).
    std::fs::write(
        &matrix,
        format!(
            "[sweep]\nname = \"diverge\"\n[base]\nmodel = \"vae\"\nepochs = 2\nlimit = 2000\n[grid]\nlr = [10.0, 0.001]\n[tracking]\nmlflow = \"{}\"\nexperiment = \"diverging\"\n",
            server.uri
        ),
    )
    .unwrap();
    let results = scratch.path().join("results");
    let out = common::vaelab(
        &results,
        &[
            "--quiet",
            "sweep",
            matrix.to_str().unwrap(),
            "--eval",
            "off",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let store = Store::new(&results);
    let (back, sweeps) = read_mlflow(&server.uri, "diverging");
    assert_eq!(back.len(), 2);
    assert_eq!(sweeps["diverge"]["status"], "FAILED");
    let mut non_finite = 0;
    for (id, run) in &back {
        let record = store.record(id).unwrap();
        let want = expected_f64(&record.rows);
        non_finite += want
            .values()
            .flatten()
            .filter(|(_, v)| !v.is_finite())
            .count();
        assert_eq!(as_stored(mlflow_metrics(run)), as_stored(want), "{id}");
        let status = if record.state == vaelab::store::RunState::Failed {
            "FAILED"
        } else {
            "FINISHED"
        };
        assert_eq!(run["status"], status, "{id}");
    }
    assert!(non_finite > 0, "the diverging run has no non-finite number");

    // Adam's divergence gives NaN; ±∞ written into the failed run's table, then exported into
    // an experiment of its own (MLflow's metrics are append-only, so not over the NaN).
    let failed = back
        .keys()
        .find(|id| store.record(id).unwrap().state == vaelab::store::RunState::Failed)
        .unwrap();
    let path = store.run(failed).metrics_path();
    let mut rows = read_metrics(&path).unwrap();
    rows[0].recon = f64::INFINITY;
    rows[1].kl = Some(f64::NEG_INFINITY);
    write_metrics(&path, &rows).unwrap();
    let out = common::vaelab(
        &results,
        &[
            "export",
            "mlflow",
            &server.uri,
            failed,
            "--experiment",
            "infinities",
        ],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let (back, _) = read_mlflow(&server.uri, "infinities");
    let metrics = mlflow_metrics(&back[failed]);
    let (train, test) = (rows[0].split.as_str(), rows[1].split.as_str());
    assert_eq!(metrics[&format!("{train}/recon")], [(1, f64::MAX)]);
    assert_eq!(metrics[&format!("{test}/kl")], [(1, -f64::MAX)]);
    assert_eq!(as_stored(metrics), as_stored(expected_f64(&rows)));
}
