//! The `vaelab` executable: a launcher that starts in milliseconds.
//!
//! It answers `--help`, `--version` and usage errors itself, then loads `libvaelab.so`, where
//! every command runs (see `src/cli/library.rs` for why). It must therefore not link the
//! vaelab library or anything that links libtorch: it uses only the grammar file, included
//! by path, `clap`, `serde`, `libloading` and `anyhow`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

// The library compiles the same file as `vaelab::cli::args`; here the parsed values are not
// read, only checked.
#[allow(dead_code)]
#[path = "cli/args.rs"]
mod args;
/// The run parameters' defaults, which the grammar shows (the library's `config::defaults`).
#[path = "config/defaults.rs"]
mod defaults;
/// The tracking settings, whose URI check the grammar uses (the library's `config::tracking`).
#[allow(dead_code)]
#[path = "config/tracking.rs"]
mod tracking;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, which turns `vaelab --help | head` into a panic; die quietly instead.
    // SAFETY: called before any other thread exists; SIG_DFL is a valid action for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    if let Err(code) = args::parse() {
        return ExitCode::from(code);
    }
    let error = run_library().unwrap_err();
    eprintln!("error: {error:#}");
    ExitCode::from(args::exit::FAILED)
}

/// Where the library is: Cargo's `deps/` folder beside the executable, which it rewrites on
/// every build of the library (a copy beside the executable is only refreshed by a plain
/// `cargo build`), else beside the executable (an installed or copied pair).
fn library_path() -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("cannot locate the vaelab executable")?;
    let dir = exe
        .parent()
        .context("the vaelab executable has no folder")?;
    let name = format!(
        "{}vaelab{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let built = dir.join("deps").join(&name);
    Ok(if built.exists() {
        built
    } else {
        dir.join(name)
    })
}

/// How long (in spins) libtorch's idle OpenMP threads busy-wait for the next parallel region
/// before sleeping; libgomp's default is 300,000. A training step alternates libtorch's
/// parallel kernels with vaelab's own multi-threaded Adam pass: threads still spinning after a
/// kernel take the cores the Adam pass needs (on 2 cores its time nearly doubles), while
/// sleeping at once (`OMP_WAIT_POLICY=passive`) makes every small kernel pay a wake-up. 20,000
/// measured best on the article's setup (BENCHMARKS.md, "β sweep").
const GOMP_SPINCOUNT: &str = "20000";

/// Sets [`GOMP_SPINCOUNT`] for libtorch's OpenMP, which reads it when the library loads,
/// unless the user chose a policy. Called before any other thread exists.
fn tune_openmp() {
    if std::env::var_os("GOMP_SPINCOUNT").is_none() && std::env::var_os("OMP_WAIT_POLICY").is_none()
    {
        // SAFETY: the process is still single-threaded (nothing has spawned a thread yet).
        unsafe { std::env::set_var("GOMP_SPINCOUNT", GOMP_SPINCOUNT) };
    }
}

/// Loads the library and runs the command line there; returns only on failure.
fn run_library() -> Result<std::convert::Infallible> {
    let path = library_path()?;
    tune_openmp();
    // SAFETY: the library is this crate built as a cdylib; loading it runs libtorch's and
    // Rust's initialisers, nothing else.
    let library = unsafe { libloading::Library::new(&path) }.with_context(|| {
        format!(
            "cannot load {}, where vaelab's commands run; `cargo build --release` builds it \
             beside this executable",
            path.display()
        )
    })?;
    // SAFETY: `vaelab_build_id` is `extern "C" fn() -> *const c_char`, returning a static
    // NUL-terminated string (src/cli/library.rs).
    let id =
        unsafe { library.get::<extern "C" fn() -> *const std::ffi::c_char>(b"vaelab_build_id\0") }
            .map(|f| {
                unsafe { std::ffi::CStr::from_ptr(f()) }
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_else(|_| "unknown".into());
    if id != args::build_id() {
        anyhow::bail!(
            "{} is another build ({id}) than this executable ({}): a cargo build with other \
             features or of other code replaced it; rerun this executable's cargo build (after \
             `touch src/lib.rs` if cargo finds nothing to do)",
            path.display(),
            args::build_id()
        );
    }
    // SAFETY: `vaelab_main` is `extern "C" fn() -> c_int` (src/cli/library.rs).
    let entry = unsafe { library.get::<extern "C" fn() -> std::ffi::c_int>(b"vaelab_main\0") }
        .with_context(|| format!("{} has no entry point vaelab_main", path.display()))?;
    entry();
    unreachable!("vaelab_main exits the process")
}
