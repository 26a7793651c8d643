//! The trackers' real readers and server for the tests: TensorBoard's event accumulator and
//! tbparse, a real `mlflow server` and MLflow's own client (`./scripts/setup-trackers`
//! installs them), and what a run's numbers must read back as.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use vaelab::store::EpochRow;

/// The trackers' Python, installed by `./scripts/setup-trackers` (no reader, no pass).
pub fn python() -> PathBuf {
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
pub struct ReadBack {
    pub scalars: BTreeMap<String, Vec<(i64, f32)>>,
    pub events: u64,
    pub hparams: BTreeMap<String, serde_json::Value>,
}

pub fn read_back(logdir: &Path) -> BTreeMap<String, ReadBack> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference/read_tensorboard.py");
    let out = Command::new(python())
        .arg(script)
        .arg(logdir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", super::text(&out));
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
pub fn expected(rows: &[EpochRow]) -> BTreeMap<String, Vec<(i64, f32)>> {
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

/// A real `mlflow server` (SQLite backend, served artifacts) on a free port of 127.0.0.1,
/// stopped when dropped.
pub struct MlflowServer {
    child: std::process::Child,
    pub uri: String,
    _dir: Option<tempfile::TempDir>,
}

impl MlflowServer {
    /// A server on a fresh store.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::on(dir.path(), free_port());
        server._dir = Some(dir);
        server
    }

    /// A server on the store in `dir` (its SQLite file and artifacts) at `port`.
    pub fn on(dir: &Path, port: u16) -> Self {
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /health` answers `OK`.
pub fn healthy(port: u16) -> bool {
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
pub fn read_mlflow(
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
    assert!(out.status.success(), "{}", super::text(&out));
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
pub fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// MLflow's `metrics` of a read-back run as key → [(step, value)].
pub fn mlflow_metrics(run: &serde_json::Value) -> BTreeMap<String, Vec<(i64, f64)>> {
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

/// What the metrics of a run must be: every row's numbers by tag, step = epoch (float64, as
/// MLflow stores them; the tags written out here, not taken from vaelab).
pub fn expected_f64(rows: &[EpochRow]) -> BTreeMap<String, Vec<(i64, f64)>> {
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
