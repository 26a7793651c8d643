//! The `vaelab` executable is a launcher without libtorch: it answers `--help` and usage
//! errors alone and runs every command in `libvaelab.so`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn executable() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vaelab"))
}

fn library() -> PathBuf {
    common::built_library(executable().parent().unwrap())
}

fn links_libtorch(file: &Path) -> bool {
    let bytes = std::fs::read(file).unwrap();
    // The dynamic section names each needed library in the string table.
    let needle = b"libtorch_cpu.so";
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn only_the_library_links_libtorch() {
    assert!(library().is_file(), "{} was not built", library().display());
    assert!(links_libtorch(&library()));
    assert!(
        !links_libtorch(&executable()),
        "the vaelab executable links libtorch, so every start pays its initialisers"
    );
}

#[test]
fn alone_the_executable_answers_help_and_explains_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let lonely = dir.path().join("vaelab");
    std::fs::copy(executable(), &lonely).unwrap();

    let help = Command::new(&lonely).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("sweep"));
    let usage = Command::new(&lonely)
        .args(["train", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));

    let results = dir.path().join("results");
    let ls = Command::new(&lonely)
        .arg("--results")
        .arg(&results)
        .arg("ls")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&ls.stderr);
    assert_eq!(ls.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot load {}",
            dir.path().join("libvaelab.so").display()
        )),
        "{stderr}"
    );
    assert!(!results.exists(), "nothing may be written");
}

#[test]
fn beside_its_library_the_executable_runs_commands() {
    let dir = tempfile::tempdir().unwrap();
    for file in [executable(), library()] {
        std::fs::copy(&file, dir.path().join(file.file_name().unwrap())).unwrap();
    }
    let results = dir.path().join("results");
    let ls = Command::new(dir.path().join("vaelab"))
        .arg("--results")
        .arg(&results)
        .arg("ls")
        .output()
        .unwrap();
    assert!(
        ls.status.success(),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    assert!(String::from_utf8_lossy(&ls.stdout).starts_with("run "));
}
