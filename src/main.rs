use std::process::ExitCode;

fn main() -> ExitCode {
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
