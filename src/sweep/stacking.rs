//! Which runs of a sweep train together as one stacked model (`--stack auto|off|N`).
//!
//! Runs that share [`RunSpec::stack_key`] (kind, widths, latent size, batch size, epochs, data
//! limit, backend, device) are grouped in manifest order and each group is cut into stacks of
//! at most N, as even as possible. A stack is one manifest entry: one `--jobs` worker or one
//! Slurm array task trains it.

use std::collections::BTreeMap;

pub use crate::config::defaults::StackPolicy;
use crate::config::{DeviceKind, RunSpec};

/// Bytes of training state per parameter a step streams through: the parameter, its gradient
/// and Adam's two moments, in f32.
const STATE_BYTES_PER_PARAMETER: f64 = 16.0;

/// The stack size `--stack auto` uses for runs like `spec`.
///
/// On the CPU a step is bound by memory traffic once the stack's training state no longer
/// fits in the last-level cache: measured on the article's model (BENCHMARKS.md, "Stacked
/// sweeps"), per-member time falls up to about the size whose state (16 bytes per parameter)
/// fills the L3 cache and rises beyond it. So the size is L3 / (16 B × parameters), at least
/// 1 and at most 16. On a GPU, where a small run is launch overhead, stacks grow to 64 members
/// or a quarter of the device memory the validation budget allows.
pub fn auto_size(spec: &RunSpec) -> usize {
    let state = STATE_BYTES_PER_PARAMETER * spec.model_config().parameter_count();
    match spec.device {
        DeviceKind::Cpu => {
            let cache = last_level_cache_bytes().unwrap_or(8 << 20) as f64;
            ((cache / state).floor() as usize).clamp(1, 16)
        }
        DeviceKind::Cuda => {
            let budget = spec.memory_estimate();
            let per_member = budget.max(state);
            // 16 GiB is the smallest GPU we expect; a quarter of it for the stack.
            (((4u64 << 30) as f64 / per_member).floor() as usize).clamp(1, 64)
        }
    }
}

/// The size of the CPU's last-level cache from sysfs (Linux).
fn last_level_cache_bytes() -> Option<u64> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let read = |path: std::path::PathBuf| std::fs::read_to_string(path).ok();
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let level: u32 = read(entry.path().join("level"))?.trim().parse().ok()?;
            let size = read(entry.path().join("size"))?;
            let size = size.trim();
            let bytes = if let Some(k) = size.strip_suffix('K') {
                k.parse::<u64>().ok()? << 10
            } else if let Some(m) = size.strip_suffix('M') {
                m.parse::<u64>().ok()? << 20
            } else {
                size.parse().ok()?
            };
            Some((level, bytes))
        })
        .max()
        .map(|(_, bytes)| bytes)
}

/// The stacks of `specs` under `policy`: lists of indices into `specs`, each list one stack,
/// ordered by their first member.
pub fn stacks(specs: &[RunSpec], policy: StackPolicy) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<(usize, String), Vec<usize>> = BTreeMap::new();
    let mut first_of: BTreeMap<String, usize> = BTreeMap::new();
    for (i, spec) in specs.iter().enumerate() {
        let key = spec.stack_key();
        let first = *first_of.entry(key.clone()).or_insert(i);
        groups.entry((first, key)).or_default().push(i);
    }
    let mut out = Vec::new();
    for ((first, _), members) in groups {
        let size = match policy {
            StackPolicy::Off => 1,
            StackPolicy::Size(n) => n,
            StackPolicy::Auto => auto_size(&specs[first]),
        };
        let count = members.len().div_ceil(size.max(1));
        let (base, extra) = (members.len() / count, members.len() % count);
        let mut rest = members.as_slice();
        for k in 0..count {
            let take = base + usize::from(k < extra);
            out.push(rest[..take].to_vec());
            rest = &rest[take..];
        }
    }
    out.sort_by_key(|s| s[0]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelKind;

    fn spec(model: ModelKind, latent: usize, beta: f64) -> RunSpec {
        RunSpec {
            model,
            latent,
            beta,
            ..RunSpec::default()
        }
    }

    /// Runs of one shape stack, as evenly as the size allows; runs of another shape do not
    /// join them; `off` and runs that all differ give stacks of one.
    #[test]
    fn runs_stack_by_shape_and_size() {
        let vae = |b| spec(ModelKind::Vae, 4, b);
        let specs = vec![
            vae(0.0),
            spec(ModelKind::Ae, 4, 0.0),
            vae(1.0),
            vae(2.0),
            spec(ModelKind::Vae, 8, 0.0),
            vae(3.0),
            vae(4.0),
        ];
        assert_eq!(
            stacks(&specs, StackPolicy::Size(3)),
            vec![vec![0, 2, 3], vec![1], vec![4], vec![5, 6]]
        );
        assert_eq!(
            stacks(&specs, StackPolicy::Size(4)),
            vec![vec![0, 2, 3], vec![1], vec![4], vec![5, 6]]
        );
        assert_eq!(
            stacks(&specs, StackPolicy::Size(16)),
            vec![vec![0, 2, 3, 5, 6], vec![1], vec![4]]
        );
        let singles: Vec<Vec<usize>> = (0..specs.len()).map(|i| vec![i]).collect();
        assert_eq!(stacks(&specs, StackPolicy::Off), singles);
        let shapes: Vec<RunSpec> = (1..5).map(|l| spec(ModelKind::Vae, l, 1.0)).collect();
        assert_eq!(
            stacks(&shapes, StackPolicy::Size(8)),
            (0..4).map(|i| vec![i]).collect::<Vec<_>>()
        );
        assert!(auto_size(&vae(0.0)) >= 1);
        #[cfg(target_os = "linux")]
        assert!(last_level_cache_bytes().is_some(), "sysfs lists the caches");
        assert_eq!("auto".parse(), Ok(StackPolicy::Auto));
        assert_eq!("off".parse(), Ok(StackPolicy::Off));
        assert_eq!("11".parse(), Ok(StackPolicy::Size(11)));
        assert!("0".parse::<StackPolicy>().is_err());
    }
}
