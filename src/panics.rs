//! Panics as one-line failures: libtorch reports an allocation failure or a bad kernel call as
//! a Rust panic whose message carries a 50-line C++ backtrace. A run that panics is marked
//! failed with the first line of that message; the user never sees the backtrace.

use std::any::Any;

/// Replaces the default panic hook (which prints the message and backtrace) with a silent
/// one: every panic is either caught and reported as a failed run, or reported by `main` as a
/// one-line internal error. `VAELAB_BACKTRACE=1` keeps the default hook for debugging.
pub fn install_quiet_hook() {
    if std::env::var_os("VAELAB_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
}

/// The panic payload's message as one line (see [`one_line`]), prefixed `panicked: `.
pub fn reason(payload: &(dyn Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    };
    format!("panicked: {}", one_line(&text))
}

/// The first line of an error message, without the wrappers `unwrap` and tch put around
/// libtorch's text, at most 300 characters.
pub fn one_line(text: &str) -> String {
    let mut line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    for wrapper in [
        "called `Result::unwrap()` on an `Err` value: ",
        "Torch(\"",
        "Internal torch error: ",
    ] {
        line = line.strip_prefix(wrapper).unwrap_or(line);
    }
    let line = line.trim_end_matches(['"', ')']).trim();
    let mut out: String = line.chars().take(300).collect();
    if line.chars().count() > 300 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_allocation_failure_becomes_one_line() {
        let msg = "called `Result::unwrap()` on an `Err` value: Torch(\"[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to allocate 3136000000000000 bytes.\nException raised from alloc_cpu at /pytorch/c10/core/impl/alloc_cpu.cpp:117 (most recent call first):\nframe #0: c10::Error::Error(...)\")";
        let got = reason(&msg.to_string());
        assert_eq!(
            got,
            "panicked: [enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to allocate 3136000000000000 bytes."
        );
    }
}
