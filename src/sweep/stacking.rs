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

/// The fewest members the cache rule of `--stack auto` leaves in a stack: stacking up to 11
/// paid on both machines measured, whatever the cache.
const AUTO_CPU_CACHE_FLOOR: usize = 11;

/// The share of the L3 cache one stacked layer's weights may fill under `--stack auto`.
const CACHE_SHARE: f64 = 0.25;

/// The stack size `--stack auto` uses for runs like `spec` on this machine.
///
/// Measured (BENCHMARKS.md, "Choosing the stack size"): per member, a step gets cheaper as the
/// stack grows (the per-step costs of autodiff, dispatch and thread wake-ups are shared) until
/// one layer's stacked weights pass a quarter to a half of the L3 cache; past that the forward
/// and backward slow down. On the Intel VM with 105 MiB of L3 the fastest sizes measured were
/// 32 for the article's 784-256-4 (64 slower) and 16 for 784-512-256-16 (32 slower), both at
/// about 26 MB of stacked first-layer weights. So on a CPU a stack grows to [`AUTO_CPU_MAX`]
/// members (never measured better beyond) while its largest stacked weight matrix fits in
/// [`CACHE_SHARE`] of the L3, but to [`AUTO_CPU_CACHE_FLOOR`] members whatever the cache; on a
/// GPU, where a small run is pure launch overhead, to 64. Either way a stack holds at most a
/// quarter of the memory available (each member counted at [`RunSpec::memory_estimate`]; a
/// GPU's memory taken as 16 GiB, the smallest we expect), so that several stacks (`--jobs`)
/// fit side by side. Not counted: `--jobs` stacks sharing the L3, and on Slurm the nodes'
/// caches (the plan is made where `sweep` runs).
pub fn auto_size(spec: &RunSpec) -> usize {
    match spec.device {
        DeviceKind::Cpu => cpu_size(
            spec,
            available_memory().unwrap_or(4 << 30) as f64,
            l3_cache(),
        ),
        DeviceKind::Cuda => members_within(spec.memory_estimate(), (16u64 << 30) as f64 / 4.0, 64),
    }
}

/// [`auto_size`] on a CPU with `memory` bytes available and an L3 cache of `l3` bytes (no
/// cache rule when unknown).
fn cpu_size(spec: &RunSpec, memory: f64, l3: Option<u64>) -> usize {
    let by_memory = members_within(spec.memory_estimate(), memory / 4.0, AUTO_CPU_MAX);
    let by_cache = l3.map_or(AUTO_CPU_MAX, |l3| {
        let weight = 4.0 * spec.model_config().largest_weight() as f64;
        members_within(weight, l3 as f64 * CACHE_SHARE, AUTO_CPU_MAX).max(AUTO_CPU_CACHE_FLOOR)
    });
    by_memory.min(by_cache)
}

/// How many members of `each` bytes fit in `budget`, from 1 to `cap`.
fn members_within(each: f64, budget: f64, cap: usize) -> usize {
    ((budget / each).floor() as usize).clamp(1, cap)
}

/// The size in bytes of this machine's L3 cache (Linux sysfs), if it says; read once per
/// process, as [`stacks`] asks for every group of runs. Only level 3: where a machine reports
/// no L3 (some virtual machines, ARM parts with a system cache sysfs does not show), an L2 of a
/// few MiB is no measure of what a stack can use.
fn l3_cache() -> Option<u64> {
    static L3: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *L3.get_or_init(read_l3_cache)
}

/// [`l3_cache`] from sysfs.
fn read_l3_cache() -> Option<u64> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.flatten().find_map(|entry| {
        let read = |name: &str| std::fs::read_to_string(entry.path().join(name)).ok();
        let unified_l3 =
            read("level")?.trim() == "3" && read("type").is_none_or(|t| t.trim() != "Instruction");
        unified_l3
            .then(|| parse_cache_size(&read("size")?))
            .flatten()
    })
}

/// sysfs cache sizes: `107520K`, `32M`, `512`.
fn parse_cache_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let scale = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok().map(|n| n * scale)
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
        // The article's model (about 10 MB a member) fills a stack on any machine with 2 GB
        // and no known cache; memory alone bounds a huge one.
        assert_eq!(cpu_size(&vae(0.0), 2e9, None), AUTO_CPU_MAX);
        let huge = RunSpec {
            hidden: vec![50_000],
            ..vae(0.0)
        };
        let by_memory = cpu_size(&huge, 16e9, None);
        assert!(by_memory < AUTO_CPU_MAX, "{by_memory}");
        assert_eq!("auto".parse(), Ok(StackPolicy::Auto));
        assert_eq!("off".parse(), Ok(StackPolicy::Off));
        assert_eq!("11".parse(), Ok(StackPolicy::Size(11)));
        assert!("0".parse::<StackPolicy>().is_err());
    }

    /// The cache rule gives the sizes measured best on the 105 MiB-L3 VM (BENCHMARKS.md): 32
    /// for the article's 784-256-4, 17 (16 measured) for 784-512-256-16; a small cache
    /// shrinks a stack to no fewer than 11 members, and memory still bounds it.
    #[test]
    fn auto_size_keeps_the_largest_layer_in_a_quarter_of_the_cache() {
        let l3 = Some(107_520u64 << 10);
        let article = spec(ModelKind::Vae, 4, 1.0);
        let large = RunSpec {
            hidden: vec![512, 256],
            ..spec(ModelKind::Vae, 16, 1.0)
        };
        assert_eq!(article.model_config().largest_weight(), 784 * 256);
        assert_eq!(cpu_size(&article, 16e9, l3), 32);
        assert_eq!(cpu_size(&large, 16e9, l3), 17);
        assert_eq!(cpu_size(&article, 16e9, Some(48 << 20)), 15);
        assert_eq!(
            cpu_size(&article, 16e9, Some(8 << 20)),
            AUTO_CPU_CACHE_FLOOR
        );
        assert_eq!(
            cpu_size(&article, 4.0 * 5.5 * article.memory_estimate(), l3),
            5
        );
        assert_eq!(parse_cache_size("107520K\n"), Some(107_520 << 10));
        assert_eq!(parse_cache_size("32M"), Some(32 << 20));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("lots"), None);
    }
}
