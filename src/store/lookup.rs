//! Run lookup: what a name on the command line means (a sweep, or a run id or unique prefix),
//! with one "not found" message for every command.

use std::path::PathBuf;

use anyhow::{bail, Result};

use super::Store;

/// The manifest's file name in a sweep's folder.
pub const MANIFEST: &str = "manifest.toml";

/// What a name resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A sweep, by name.
    Sweep(String),
    /// One run, by full id.
    Run(String),
}

impl Store {
    /// The manifest of sweep `name` (which may not exist).
    pub fn manifest_path(&self, name: &str) -> PathBuf {
        self.sweep_dir(name).join(MANIFEST)
    }

    /// A sweep name, or a run id or unique prefix of one.
    pub fn resolve(&self, name: &str) -> Result<Target> {
        if self.manifest_path(name).is_file() {
            return Ok(Target::Sweep(name.to_string()));
        }
        let runs = self.run_ids()?;
        let matches: Vec<String> = runs
            .iter()
            .filter(|id| id.starts_with(name))
            .cloned()
            .collect();
        match matches.as_slice() {
            [one] if !name.is_empty() => Ok(Target::Run(one.clone())),
            [] | [_] => Err(self.not_found(name, "sweep or run")),
            many => bail!(
                "{name:?} matches {} runs ({}); give more of the id",
                many.len(),
                nearby(many)
            ),
        }
    }

    /// The run `name` resolves to; a sweep is an error saying what to use instead.
    pub fn resolve_run(&self, name: &str) -> Result<String> {
        match self.resolve(name)? {
            Target::Run(id) => Ok(id),
            Target::Sweep(_) => {
                bail!("{name:?} is a sweep; give a run id (`vaelab status {name}` shows its runs)")
            }
        }
    }

    /// The manifest of sweep `name`, which must exist.
    pub fn sweep_manifest(&self, name: &str) -> Result<PathBuf> {
        let path = self.manifest_path(name);
        if !path.is_file() {
            return Err(self.not_found(name, "sweep"));
        }
        Ok(path)
    }

    /// The one "not found" error: `name` is no `what` here, and what is.
    pub fn not_found(&self, name: &str, what: &str) -> anyhow::Error {
        let list = |r: Result<Vec<String>>| nearby(&r.unwrap_or_default());
        anyhow::anyhow!(
            "no {what} named {name:?} under {}; sweeps: {}; runs: {}",
            self.root().display(),
            list(self.sweep_names()),
            list(self.run_ids())
        )
    }
}

/// The first few of `ids`, for messages.
fn nearby(ids: &[String]) -> String {
    match ids.len() {
        0 => "none".to_string(),
        n if n <= 5 => ids.join(", "),
        n => format!("{}, ... ({n} in all)", ids[..5].join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_sweeps_runs_or_one_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        for id in ["vae-aaaa1", "vae-aaaa2", "ae-bbbb"] {
            std::fs::create_dir_all(store.run(id).path).unwrap();
        }
        std::fs::create_dir_all(store.sweep_dir("quick")).unwrap();
        std::fs::write(store.manifest_path("quick"), "").unwrap();
        assert_eq!(
            store.resolve("quick").unwrap(),
            Target::Sweep("quick".into())
        );
        assert_eq!(store.resolve("ae-").unwrap(), Target::Run("ae-bbbb".into()));
        let many = store.resolve("vae-aaaa").unwrap_err().to_string();
        assert!(many.contains("matches 2 runs"), "{many}");
        let none = store.resolve("nope").unwrap_err().to_string();
        assert_eq!(
            none,
            format!(
                "no sweep or run named \"nope\" under {}; sweeps: quick; runs: ae-bbbb, vae-aaaa1, vae-aaaa2",
                dir.path().display()
            )
        );
        assert!(store.resolve_run("quick").is_err());
        assert!(store
            .sweep_manifest("ae-bbbb")
            .unwrap_err()
            .to_string()
            .starts_with("no sweep named"));
    }
}
