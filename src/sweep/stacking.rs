//! Which runs of a sweep train together as one stacked model (`--stack auto|off|N`).
//!
//! Runs that share [`RunSpec::stack_key`] (kind, data set, widths, latent size, batch size,
//! epochs, data limit, backend, device) are grouped in manifest order and each group is cut into stacks of
//! at most N, as even as possible. A stack is one manifest entry: one `--jobs` worker or one
//! Slurm array task trains it.

use std::collections::BTreeMap;

pub use crate::config::defaults::StackPolicy;
use crate::config::{available_memory, DeviceKind, RunSpec};

/// The most members `--stack auto` puts in one stack on a CPU.
pub const AUTO_CPU_MAX: usize = 32;

/// The stack size `--stack auto` uses for runs like `spec`.
///
/// Measured on the article's model (BENCHMARKS.md, "β sweep", two runs): through the full
/// harness the time per member-epoch falls from 1.9–2.5 s alone to 1.6–1.7 s in pairs and
/// about 1.5 s from 4 members on, still falling slowly at 33 (1.4 s). So on a CPU stacks grow to
/// [`AUTO_CPU_MAX`] members; on a GPU, where a small run is pure launch overhead, to 64. Either
/// way a stack holds at most a quarter of the memory available (each member counted at
/// [`RunSpec::memory_estimate`]; a GPU's memory taken as 16 GiB, the smallest we expect), so
/// that several stacks (`--jobs`) fit side by side.
pub fn auto_size(spec: &RunSpec) -> usize {
    let (cap, memory) = match spec.device {
        DeviceKind::Cpu => (AUTO_CPU_MAX, available_memory().unwrap_or(4 << 30) as f64),
        DeviceKind::Cuda => (64, (16u64 << 30) as f64),
    };
    ((memory / 4.0 / spec.memory_estimate()).floor() as usize).clamp(1, cap)
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
        assert!(
            available_memory().is_some(),
            "/proc/meminfo has MemAvailable"
        );
        // The article's model (about 10 MB a member) fills a stack on any machine with 2 GB.
        assert_eq!(auto_size(&vae(0.0)), AUTO_CPU_MAX);
        let huge = RunSpec {
            hidden: vec![50_000],
            ..vae(0.0)
        };
        assert!(auto_size(&huge) < AUTO_CPU_MAX, "{}", auto_size(&huge));
        assert_eq!("auto".parse(), Ok(StackPolicy::Auto));
        assert_eq!("off".parse(), Ok(StackPolicy::Off));
        assert_eq!("11".parse(), Ok(StackPolicy::Size(11)));
        assert!("0".parse::<StackPolicy>().is_err());
    }
}
