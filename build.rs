//! Build-time facts for vaelab:
//! - an rpath to libtorch so `vaelab` and its tests run without `LD_LIBRARY_PATH`;
//! - the code's identity: a content hash of exactly the files that can change results
//!   ([`CODE_PATHS`]), the same in and out of git, which becomes part of every run id;
//! - provenance (git commit, branch, uncommitted code diff, Cargo.lock hash, dependency
//!   versions, rustc, libtorch version) for `provenance.toml`, `ls` and `diff`.
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The code whose change must change run ids; results, docs and experiments do not count.
const CODE_PATHS: [&str; 4] = ["src", "Cargo.toml", "Cargo.lock", "build.rs"];
/// Dependencies whose versions go into provenance.
const TRACKED_DEPS: [&str; 7] = [
    "burn",
    "burn-tch",
    "burn-train",
    "tch",
    "torch-sys",
    "polars",
    "plotters",
];

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    for p in CODE_PATHS {
        println!("cargo:rerun-if-changed={p}");
    }
    for p in [".git/HEAD", ".git/index", ".git/refs/heads"] {
        if Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    let libtorch = link_libtorch();
    println!("cargo:rustc-env=VAELAB_LIBTORCH={libtorch}");
    code_provenance();
}

/// sha256 over the code files (relative path, length and bytes of each, in path order): files
/// under `src/` whether git tracks them or not, except hidden ones (editor swap files), and
/// the top-level files of [`CODE_PATHS`]. Docs, experiments, tests and results do not count;
/// everything under `src/` does, the report's templates included (one simple rule, rather than
/// a list of files that cannot change numbers that would go stale).
fn code_hash() -> String {
    fn walk(path: &Path, out: &mut Vec<PathBuf>) {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            return;
        }
        if path.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), out);
            }
        } else if path.is_file() {
            out.push(path.to_path_buf());
        }
    }
    let mut files = Vec::new();
    for p in CODE_PATHS {
        walk(Path::new(p), &mut files);
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        let name = f.to_string_lossy().replace('\\', "/");
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Links libtorch (rpath) and returns its version and build, e.g. `2.9.0+cu128 (git 0fab…, cpu
/// libraries)`, from the install's `torch/version.py`; empty without the tch feature.
fn link_libtorch() -> String {
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return String::new();
    }
    let hint = "run ./scripts/setup to install libtorch 2.9.0 \
                (or set LIBTORCH to a libtorch 2.9.0 directory)";
    let Some(root) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        panic!("LIBTORCH is not set; {hint}");
    };
    let lib = root.join("lib");
    let Ok(lib) = lib.canonicalize() else {
        panic!("libtorch not found at {}; {hint}", lib.display());
    };
    if !lib.join("libtorch_cpu.so").exists() {
        panic!("{} has no libtorch_cpu.so; {hint}", lib.display());
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    libtorch_version(&lib)
}

fn libtorch_version(lib: &Path) -> String {
    let libs = if lib.join("libtorch_cuda.so").exists() {
        "cuda"
    } else {
        "cpu"
    };
    // The pip wheel's layout: torch/lib/libtorch_cpu.so beside torch/version.py.
    let version_py = lib
        .join("libtorch_cpu.so")
        .canonicalize()
        .ok()
        .and_then(|so| Some(so.parent()?.parent()?.join("version.py")))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let field = |key: &str| {
        version_py.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches(['\'', '"']).to_string())
        })
    };
    let version = field("__version__").unwrap_or_else(|| "unknown".into());
    let git = field("git_version").unwrap_or_default();
    format!(
        "{version} (git {}, {libs} libraries)",
        &git[..git.len().min(10)]
    )
}

// The crate's own helpers for git and Cargo.lock, included by path (both plain `std`).
#[path = "src/store/lockfile.rs"]
mod lockfile;
#[path = "src/tool.rs"]
mod tool;

fn git(args: &[&str]) -> Option<String> {
    tool::git(args).ok()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn code_provenance() {
    let commit = git(&["rev-parse", "HEAD"]).map(|s| s.trim().to_string());
    let branch = git(&["rev-parse", "--abbrev-ref", "HEAD"]).map(|s| s.trim().to_string());
    let mut diff_args = vec!["diff", "HEAD", "--"];
    diff_args.extend(CODE_PATHS);
    let mut patch = git(&diff_args).unwrap_or_default();
    // Untracked source files are part of the code too.
    let mut untracked_args = vec!["ls-files", "--others", "--exclude-standard", "--"];
    untracked_args.extend(CODE_PATHS);
    for file in git(&untracked_args).unwrap_or_default().lines() {
        if let Ok(text) = std::fs::read_to_string(file) {
            patch.push_str(&format!(
                "--- /dev/null\n+++ b/{file} (untracked)\n{text}\n"
            ));
        }
    }
    let dirty = commit.is_none() || !patch.is_empty();
    let commit = commit.unwrap_or_else(|| "unknown".into());
    let fingerprint = format!("code-{}", &code_hash()[..16]);
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out.join("dirty.patch"), &patch).unwrap();

    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let deps = locked_versions(&lock);
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc = Command::new(rustc)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();

    let env = |k: &str, v: &str| println!("cargo:rustc-env={k}={v}");
    env("VAELAB_GIT_COMMIT", &commit);
    env("VAELAB_GIT_BRANCH", branch.as_deref().unwrap_or("unknown"));
    env("VAELAB_GIT_DIRTY", if dirty { "true" } else { "false" });
    env("VAELAB_CODE_FINGERPRINT", &fingerprint);
    env("VAELAB_CARGO_LOCK_SHA256", &sha256_hex(lock.as_bytes()));
    env("VAELAB_DEPENDENCIES", &deps);
    env("VAELAB_RUSTC", &rustc);
}

/// `name version;name version;...` for the tracked dependencies, read from Cargo.lock.
fn locked_versions(lock: &str) -> String {
    lockfile::packages(lock)
        .into_iter()
        .filter(|(name, _)| TRACKED_DEPS.contains(&name.as_str()))
        .map(|(name, version)| format!("{name} {version}"))
        .collect::<Vec<_>>()
        .join(";")
}
