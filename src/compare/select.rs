//! Finding runs: `vaelab ls` ([`query`]) and one side of a comparison ([`select`]), by sweep,
//! run id, git revision or parameter filter.

use anyhow::{bail, Result};

use crate::config::params::param_equals;
use crate::store::{Provenance, Records, RunRecord, Store, Unreadable};
use crate::sweep::Manifest;
use crate::tool::rev_parse;

/// `vaelab ls`: the runs of `sweep` (all when None) built from `commit` (any revision git
/// accepts), whose parameters match every `key=value` filter, newest first; and the runs that
/// cannot be read but may belong to that selection.
pub fn query(
    store: &Store,
    sweep: Option<&str>,
    commit: Option<&str>,
    filters: &[String],
) -> Result<(Vec<RunRecord>, Vec<Unreadable>)> {
    let Records {
        runs: mut records,
        mut unreadable,
    } = store.records()?;
    if let Some(name) = sweep {
        let manifest = Manifest::read(&store.sweep_manifest(name)?)?;
        records.retain(|r| manifest.runs.iter().any(|m| m.id == r.id));
        unreadable.retain(|u| manifest.runs.iter().any(|m| m.id == u.id));
    }
    if let Some(rev) = commit {
        let Some(hash) = rev_parse(rev) else {
            bail!("--commit {rev}: not a git revision here");
        };
        records.retain(|r| r.provenance.as_ref().is_some_and(|p| p.git_commit == hash));
        unreadable.retain(|u| may_be_at_commit(store, u, &hash));
    }
    for filter in filters {
        let Some((key, value)) = filter.split_once('=') else {
            bail!("--where {filter}: expected KEY=VALUE, e.g. beta=3");
        };
        let mut kept = Vec::new();
        for r in records {
            if param_equals(&r.spec, key.trim(), value.trim())
                .map_err(|e| anyhow::anyhow!("--where {e}"))?
            {
                kept.push(r);
            }
        }
        records = kept;
    }
    let started = |r: &RunRecord| {
        r.provenance
            .as_ref()
            .map(|p| p.started.clone())
            .unwrap_or_default()
    };
    records.sort_by(|a, b| started(b).cmp(&started(a)).then(a.id.cmp(&b.id)));
    Ok((records, unreadable))
}

/// Whether unreadable run `u` may have been built from commit `hash`: yes unless its
/// provenance is readable and names another commit.
fn may_be_at_commit(store: &Store, u: &Unreadable, hash: &str) -> bool {
    Provenance::read(&store.run(&u.id)).map_or(true, |p| p.git_commit == hash)
}

/// One side of a comparison.
#[derive(Clone, Debug)]
pub struct Selection {
    /// How the user named it, with what it resolved to.
    pub label: String,
    /// The commit its runs were built from, when they share one.
    pub commit: Option<String>,
    /// The runs.
    pub runs: Vec<RunRecord>,
    /// Runs that may belong to this side but cannot be read (a diff with any is not trusted).
    pub unreadable: Vec<Unreadable>,
}

/// Resolves `name`: a sweep, a run id (or unique prefix), or a git revision (its clean runs:
/// a run built from a dirty tree is never attributed to the commit).
pub fn select(store: &Store, all: &Records, name: &str) -> Result<Selection> {
    let records = &all.runs;
    let common_commit = |runs: &[RunRecord]| {
        let commits: Vec<&str> = runs
            .iter()
            .filter_map(|r| r.provenance.as_ref())
            .map(|p| p.git_commit.as_str())
            .collect();
        commits
            .first()
            .filter(|c| commits.iter().all(|d| d == *c))
            .map(|c| c.to_string())
    };
    if Manifest::path(store, name).is_file() {
        let manifest = Manifest::read(&Manifest::path(store, name))?;
        let runs: Vec<RunRecord> = records
            .iter()
            .filter(|r| manifest.runs.iter().any(|m| m.id == r.id))
            .cloned()
            .collect();
        let unreadable = all
            .unreadable
            .iter()
            .filter(|u| manifest.runs.iter().any(|m| m.id == u.id))
            .cloned()
            .collect();
        return Ok(Selection {
            label: format!("sweep {name}"),
            commit: common_commit(&runs),
            runs,
            unreadable,
        });
    }
    let by_id: Vec<&RunRecord> = records.iter().filter(|r| r.id.starts_with(name)).collect();
    if by_id.len() == 1 {
        let runs = vec![by_id[0].clone()];
        return Ok(Selection {
            label: format!("run {}", by_id[0].id),
            commit: common_commit(&runs),
            runs,
            unreadable: Vec::new(),
        });
    }
    if let Some(hash) = rev_parse(name) {
        let runs: Vec<RunRecord> = records
            .iter()
            .filter(|r| {
                r.provenance
                    .as_ref()
                    .is_some_and(|p| p.git_commit == hash && !p.git_dirty)
            })
            .cloned()
            .collect();
        let unreadable = all
            .unreadable
            .iter()
            .filter(|u| may_be_at_commit(store, u, &hash))
            .cloned()
            .collect();
        return Ok(Selection {
            label: format!("{name} ({})", &hash[..hash.len().min(10)]),
            commit: Some(hash),
            runs,
            unreadable,
        });
    }
    Err(store.not_found(name, "sweep, run id or git revision"))
}
