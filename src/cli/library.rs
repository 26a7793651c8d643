//! The entry point of `libvaelab.so`, where every command runs.
//!
//! libtorch's static initialisers take about 150 ms of every process that links it, whatever
//! the process then does. So the `vaelab` executable (`src/main.rs`) does not link it: it
//! answers `--help`, `--version` and usage errors itself from the command line's grammar
//! ([`super::args`], compiled into both), and for a valid command loads `libvaelab.so` (this
//! crate built as a `cdylib`) and calls [`vaelab_main`]. Cargo writes the `cdylib` in the
//! same compilation as the library it builds before the executable, so the two always come
//! from the same source.

use std::ffi::{c_char, c_int, CString};
use std::sync::OnceLock;

/// Runs this process's command line (read from `argv`, as any Rust code does; glibc hands a
/// loaded library the process's arguments) and exits the process with its code: the
/// library's standard output is its own, so it is flushed here, and the process ends before
/// the executable could unload a library that libtorch has registered exit handlers from.
#[no_mangle]
pub extern "C" fn vaelab_main() -> c_int {
    // A panic must not unwind into the executable's frames; 101 is Rust's exit code for one.
    let code = std::panic::catch_unwind(super::main).unwrap_or(101);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::process::exit(code.into())
}

/// This library's [`super::args::build_id`], as a C string the executable compares with its own
/// before it calls [`vaelab_main`].
#[no_mangle]
pub extern "C" fn vaelab_build_id() -> *const c_char {
    static ID: OnceLock<CString> = OnceLock::new();
    ID.get_or_init(|| CString::new(super::args::build_id()).expect("no NUL in a build id"))
        .as_ptr()
}
