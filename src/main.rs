use std::process::ExitCode;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, which turns `vaelab ls | head` into a panic; die quietly instead.
    // SAFETY: called before any other thread exists; SIG_DFL is a valid action for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Before any thread exists, so that all of them inherit it.
    vaelab::train::configure_process();
    let cli = match vaelab::cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match vaelab::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
