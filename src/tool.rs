//! Running external tools (git, sbatch, squeue, scancel, scontrol, Python): the one place that
//! runs a command, checks its exit status and turns a failure into one line.
//!
//! Plain `std`, so that `build.rs` includes this same file by path for its git calls.

use std::fmt;
use std::process::Command;

/// A tool that could not start or exited unsuccessfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError {
    /// The program and its arguments, as typed (`git rev-parse HEAD`).
    pub command: String,
    /// Why, in one line: the last non-empty line of its stderr, or why it could not start.
    pub reason: String,
    /// Its whole stderr (empty when it did not start), for callers that look for a message.
    pub stderr: String,
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.command, self.reason)
    }
}

impl std::error::Error for ToolError {}

/// Runs `cmd` to completion; its stdout, or a [`ToolError`] naming the command and the last
/// line of its stderr.
pub fn output(cmd: &mut Command) -> Result<String, ToolError> {
    let command = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd.output().map_err(|e| ToolError {
        command: command.clone(),
        reason: format!("cannot run it: {e}"),
        stderr: String::new(),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let reason = stderr
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| match out.status.code() {
                Some(code) => format!("exited with code {code}"),
                None => "killed by a signal".to_string(),
            });
        return Err(ToolError {
            command,
            reason,
            stderr,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `git args` in the current directory; its stdout.
pub fn git(args: &[&str]) -> Result<String, ToolError> {
    output(Command::new("git").args(args))
}

/// The full commit hash `rev` names, if it names one here.
#[allow(dead_code)] // build.rs includes this file and needs only `git`
pub fn rev_parse(rev: &str) -> Option<String> {
    git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{rev}^{{commit}}"),
    ])
    .ok()
    .map(|s| s.trim().to_string())
    .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_one_line_naming_the_command() {
        let ok = output(Command::new("sh").args(["-c", "echo out; echo noise >&2"])).unwrap();
        assert_eq!(ok, "out\n");
        let err = output(Command::new("sh").args(["-c", "echo first >&2; echo last >&2; exit 3"]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sh -c echo first >&2; echo last >&2; exit 3: last"
        );
        assert_eq!(err.stderr, "first\nlast\n");
        let quiet = output(Command::new("sh").args(["-c", "exit 4"])).unwrap_err();
        assert_eq!(quiet.reason, "exited with code 4");
        let missing = output(&mut Command::new("/nonexistent/tool")).unwrap_err();
        assert!(missing.reason.starts_with("cannot run it:"), "{missing}");
        assert_eq!(rev_parse("not-a-revision-anywhere"), None);
    }
}
