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

/// The most bytes one layer's stacked weights may hold under `--stack auto` on a CPU: 25.7 MB
/// (24.5 MiB; 32 × 784 × 256 or 16 × 784 × 512 floats), the largest stacked first layer that
/// measured fast on both machines measured, whatever their L3 caches.
const AUTO_CPU_WEIGHT_BUDGET: f64 = 25_690_112.0;

/// The stack size `--stack auto` uses for runs like `spec` on this machine.
///
/// Measured (BENCHMARKS.md, "Choosing the stack size"): per member, a step gets cheaper as the
/// stack grows (the per-step costs of autodiff, dispatch and thread wake-ups are shared) until
/// one layer's stacked weights pass 25.7 MB; between 25.7 and 51 MB the forward and backward
/// slow down, on an Intel VM with 105 MiB of L3 and on an AMD EPYC VM with 32 MiB alike (the
/// article's 784-256-4: 32 members fast, 64 slow; 784-512-256-16: 16 fast, 32 slow). So on a
/// CPU a stack grows to [`AUTO_CPU_MAX`] members (never measured better beyond) while its
/// largest stacked weight matrix stays within [`AUTO_CPU_WEIGHT_BUDGET`]; on a GPU, where a
/// small run is pure launch overhead, to 64. Either way a stack holds at most a quarter of the
/// memory available (each member counted at [`RunSpec::memory_estimate`]; a GPU's memory
/// taken as 16 GiB, the smallest we expect), so that several stacks (`--jobs`) fit side by
/// side. Not measured: `--jobs` stacks side by side, and Slurm nodes other than these VMs.
pub fn auto_size(spec: &RunSpec) -> usize {
    match spec.device {
        DeviceKind::Cpu => cpu_size(spec, available_memory().unwrap_or(4 << 30) as f64),
        DeviceKind::Cuda => members_within(spec.memory_estimate(), (16u64 << 30) as f64 / 4.0, 64),
    }
}

/// [`auto_size`] on a CPU with `memory` bytes available.
fn cpu_size(spec: &RunSpec, memory: f64) -> usize {
    let by_memory = members_within(spec.memory_estimate(), memory / 4.0, AUTO_CPU_MAX);
    let weight = 4.0 * spec.model_config().largest_weight() as f64;
    by_memory.min(members_within(weight, AUTO_CPU_WEIGHT_BUDGET, AUTO_CPU_MAX))
}

/// How many members of `each` bytes fit in `budget`, from 1 to `cap`.
fn members_within(each: f64, budget: f64, cap: usize) -> usize {
    ((budget / each).floor() as usize).clamp(1, cap)
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
        // The article's model (about 10 MB a member) fills a stack on any machine with 2 GB;
        // a huge one stacks alone.
        assert_eq!(cpu_size(&vae(0.0), 2e9), AUTO_CPU_MAX);
        let huge = RunSpec {
            hidden: vec![50_000],
            ..vae(0.0)
        };
        assert_eq!(cpu_size(&huge, 16e9), 1);
        assert_eq!("auto".parse(), Ok(StackPolicy::Auto));
        assert_eq!("off".parse(), Ok(StackPolicy::Off));
        assert_eq!("11".parse(), Ok(StackPolicy::Size(11)));
        assert!("0".parse::<StackPolicy>().is_err());
    }

    /// The weight budget gives the sizes measured best on both VMs (BENCHMARKS.md): 32 for
    /// the article's 784-256-4, 16 for 784-512-256-16; a wider first layer stacks fewer
    /// members, and memory still bounds a stack.
    #[test]
    fn auto_size_keeps_the_largest_stacked_weight_within_its_budget() {
        let article = spec(ModelKind::Vae, 4, 1.0);
        let wide = |hidden: Vec<usize>, latent| RunSpec {
            hidden,
            ..spec(ModelKind::Vae, latent, 1.0)
        };
        assert_eq!(article.model_config().largest_weight(), 784 * 256);
        assert_eq!(cpu_size(&article, 16e9), 32);
        assert_eq!(cpu_size(&wide(vec![512, 256], 16), 16e9), 16);
        assert_eq!(cpu_size(&wide(vec![400], 20), 16e9), 20);
        assert_eq!(cpu_size(&wide(vec![2048], 16), 16e9), 4);
        assert_eq!(cpu_size(&article, 4.0 * 5.5 * article.memory_estimate()), 5);
    }
}
