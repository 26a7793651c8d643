//! `provenance.toml`: where a run's numbers came from (code, dependencies, machine, data).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{durable::write_atomic, RunDir};
use crate::config::RunSpec;

/// Facts about the code that trained a run, fixed when the binary was built (see `build.rs`).
pub mod build_info {
    /// Git commit of the source tree, or `unknown` outside git (provenance only).
    pub const GIT_COMMIT: &str = env!("VAELAB_GIT_COMMIT");
    /// Git branch, or `unknown`.
    pub const GIT_BRANCH: &str = env!("VAELAB_GIT_BRANCH");
    /// `true` when the code (src/, Cargo.*, build.rs) differed from the commit.
    pub const GIT_DIRTY: &str = env!("VAELAB_GIT_DIRTY");
    /// Content hash of the code that can change results (`src/`, `Cargo.toml`, `Cargo.lock`,
    /// `build.rs`), the same in and out of git: part of every run id.
    pub const CODE_FINGERPRINT: &str = env!("VAELAB_CODE_FINGERPRINT");
    /// The libtorch the binary links (`torch/version.py` of the install), or empty without tch.
    pub const LIBTORCH: &str = env!("VAELAB_LIBTORCH");
    /// sha256 of Cargo.lock.
    pub const CARGO_LOCK_SHA256: &str = env!("VAELAB_CARGO_LOCK_SHA256");
    /// Versions of the main dependencies, `name version` separated by `;`.
    pub const DEPENDENCIES: &str = env!("VAELAB_DEPENDENCIES");
    /// `rustc --version` at build time.
    pub const RUSTC: &str = env!("VAELAB_RUSTC");
    /// The uncommitted code diff the binary was built from (empty when clean).
    pub const DIRTY_PATCH: &str = include_str!(concat!(env!("OUT_DIR"), "/dirty.patch"));
}

/// `provenance.toml`: where a run's numbers came from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Provenance {
    /// Git commit the binary was built from.
    pub git_commit: String,
    /// Git branch at build time.
    pub git_branch: String,
    /// Whether the code had uncommitted changes (kept in `diff.patch`).
    pub git_dirty: bool,
    /// Content hash of the code (part of the run id; see [`build_info::CODE_FINGERPRINT`]).
    pub code_fingerprint: String,
    /// sha256 of Cargo.lock.
    pub cargo_lock_sha256: String,
    /// `name = version` of burn, burn-tch, tch, polars, ...
    pub dependencies: BTreeMap<String, String>,
    /// rustc version.
    pub rustc: String,
    /// Cargo features compiled in.
    pub features: Vec<String>,
    /// Backend that trained the run.
    pub backend: String,
    /// Device that trained the run.
    pub device: String,
    /// Host name.
    pub host: String,
    /// CPU model.
    pub cpu: String,
    /// Threads available to the process.
    pub threads: usize,
    /// Threads libtorch computes with (0 without the tch backend).
    #[serde(default)]
    pub torch_threads: usize,
    /// The libtorch version and build, e.g. `2.9.0+cu128`.
    #[serde(default)]
    pub libtorch: String,
    /// sha256 of each dataset file the run read.
    #[serde(default)]
    pub data_sha256: BTreeMap<String, String>,
    /// One line per relaunch that resumed the run on a different machine set-up: what changed
    /// (facts that can change numbers without changing the run id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumes: Vec<String>,
    /// The stacks the run trained in, one line per launch that trained it: the stack size and
    /// the other members' run ids (`1` alone). Stacking does not change a member's numbers
    /// (README, "Stacked sweeps"); this says how it was computed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<String>,
    /// The command line.
    pub command: Vec<String>,
    /// RFC 3339 UTC start of the first launch.
    pub started: String,
    /// RFC 3339 UTC end (empty while running).
    pub finished: String,
    /// Wall-clock seconds of each finished epoch (train + test).
    pub epoch_seconds: Vec<f64>,
}

impl Provenance {
    /// Captures build- and run-time facts for a run of `spec` starting now, which reads the
    /// dataset files whose digests are `data_sha256`.
    pub fn capture(spec: &RunSpec, data_sha256: BTreeMap<String, String>) -> Self {
        use build_info::*;
        let dependencies = DEPENDENCIES
            .split(';')
            .filter_map(|d| d.split_once(' '))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let mut features = Vec::new();
        if cfg!(feature = "tch") {
            features.push("tch".to_string());
        }
        if cfg!(feature = "flex") {
            features.push("flex".to_string());
        }
        Self {
            git_commit: GIT_COMMIT.into(),
            git_branch: GIT_BRANCH.into(),
            git_dirty: GIT_DIRTY == "true",
            code_fingerprint: CODE_FINGERPRINT.into(),
            cargo_lock_sha256: CARGO_LOCK_SHA256.into(),
            dependencies,
            rustc: RUSTC.into(),
            features,
            backend: spec.backend.as_str().into(),
            device: format!("{:?}", spec.device).to_lowercase(),
            host: host_name(),
            cpu: cpu_model().unwrap_or_else(|| "unknown".into()),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            torch_threads: torch_threads(),
            libtorch: LIBTORCH.into(),
            data_sha256,
            resumes: Vec::new(),
            stacks: Vec::new(),
            command: std::env::args().collect(),
            started: now_rfc3339(),
            finished: String::new(),
            epoch_seconds: Vec::new(),
        }
    }

    /// Notes that this launch trains the run in a stack with `others` (run ids).
    pub fn note_stack(&mut self, from_epoch: usize, others: &[String]) {
        let with = if others.is_empty() {
            String::new()
        } else {
            format!(" with {}", others.join(" "))
        };
        self.stacks.push(format!(
            "epochs {}-: stack of {}{with}",
            from_epoch + 1,
            others.len() + 1
        ));
    }

    /// The facts that can change a run's numbers without changing its id, by name.
    pub fn numeric_setup(&self) -> BTreeMap<&'static str, String> {
        let data = self
            .data_sha256
            .iter()
            .map(|(f, h)| format!("{f}:{}", &h[..h.len().min(12)]))
            .collect::<Vec<_>>()
            .join(" ");
        BTreeMap::from([
            ("cpu", self.cpu.clone()),
            ("threads", self.threads.to_string()),
            ("torch_threads", self.torch_threads.to_string()),
            ("libtorch", self.libtorch.clone()),
            ("data_sha256", data),
        ])
    }

    /// Notes in `resumes` what differs between the launch that wrote this provenance and `now`
    /// (a relaunch resuming after `epoch`); the rest of `self` stays the first launch's.
    pub fn note_resume(&mut self, now: &Provenance, epoch: usize) {
        let (old, new) = (self.numeric_setup(), now.numeric_setup());
        let changed: Vec<String> = old
            .iter()
            .filter(|(k, v)| new.get(*k) != Some(v))
            .map(|(k, v)| format!("{k} {v:?} -> {:?}", new[k]))
            .collect();
        if !changed.is_empty() {
            self.resumes.push(format!(
                "resumed after epoch {epoch} at {}: {}",
                now.started,
                changed.join("; ")
            ));
        }
    }

    /// Writes `provenance.toml` (and `diff.patch` for a dirty build) into `run`.
    pub fn write(&self, run: &RunDir) -> Result<()> {
        if self.git_dirty && !build_info::DIRTY_PATCH.is_empty() {
            write_atomic(&run.file("diff.patch"), build_info::DIRTY_PATCH.as_bytes())?;
        }
        write_atomic(
            &run.file("provenance.toml"),
            toml::to_string(self)?.as_bytes(),
        )
    }

    /// Reads a run's `provenance.toml`.
    pub fn read(run: &RunDir) -> Result<Self> {
        let path = run.file("provenance.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}", path.display()))
    }
}

/// Now, as RFC 3339 UTC with seconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// This machine's host name (`unknown` if it cannot be read).
pub fn host_name() -> String {
    read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".into())
}

/// The number of threads libtorch uses for one operation (0 when tch is not compiled in).
fn torch_threads() -> usize {
    #[cfg(feature = "tch")]
    return usize::try_from(tch::get_num_threads()).unwrap_or(0);
    #[cfg(not(feature = "tch"))]
    return 0;
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}
