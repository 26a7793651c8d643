//! The one source of every run parameter's default: our reconstruction of the article's setup
//! (`../shared/notes/article-setup.md`): a 784-256-4 MLP with a plain-linear code (widths and
//! latent size fitted on the article's table 1 by `experiments/article-identify.toml`), batch
//! 32, Adam 1e-3, β = 3. Plain constants (std only): `RunSpec::default` and the command-line
//! grammar (`src/cli/args.rs`, which the `vaelab` launcher compiles without the library) both
//! read them.

/// `model`.
pub const MODEL: &str = "vae";
/// `dataset`.
pub const DATASET: &str = "mnist";
/// `beta`.
pub const BETA: f64 = 3.0;
/// `latent`.
pub const LATENT: usize = 4;
/// `hidden`.
pub const HIDDEN: [usize; 1] = [256];
/// `epochs`.
pub const EPOCHS: usize = 10;
/// `batch_size`.
pub const BATCH_SIZE: usize = 32;
/// `lr`.
pub const LR: f64 = 1e-3;
/// `seed`.
pub const SEED: u64 = 0;
/// `backend`.
pub const BACKEND: &str = "tch";
/// `device`.
pub const DEVICE: &str = "cpu";
/// `likelihood`: the article's summed squared error, a Gaussian decoder.
pub const LIKELIHOOD: &str = "gaussian";
/// `binarize`: the grey levels as they are.
pub const BINARIZE: &str = "none";
/// `activation`.
pub const ACTIVATION: &str = "relu";
/// `layout`: the article's (a linear code, then latent → latent heads).
pub const LAYOUT: &str = "article";
/// `lr_schedule`.
pub const LR_SCHEDULE: &str = "constant";
/// `lr_decay`.
pub const LR_DECAY: f64 = 1.0;
/// `lr_step`.
pub const LR_STEP: usize = 1;
/// `objective`: the one-sample ELBO.
pub const OBJECTIVE: &str = "elbo";
/// `samples`: one posterior draw per image.
pub const SAMPLES: usize = 1;
/// `adam_eps`: `torch.optim.Adam`'s.
pub const ADAM_EPS: f64 = 1e-8;
/// `adam_betas`: `torch.optim.Adam`'s.
pub const ADAM_BETAS: [f64; 2] = [0.9, 0.999];
/// `kl_warmup`: epochs of linear KL warm-up (0: none, β from the first step).
pub const KL_WARMUP: usize = 0;
/// `kl_cycles`: cycles of cyclical KL annealing (0: none).
pub const KL_CYCLES: usize = 0;
/// `kl_cycle_ramp`: the share of each cycle over which the KL weight rises (Fu et al.'s R).
pub const KL_CYCLE_RAMP: f64 = 0.5;
/// `free_bits`: nats per latent dimension below which its KL is not pushed (0: none).
pub const FREE_BITS: f64 = 0.0;
/// `capacity`: the KL capacity C reached, in nats (0: no capacity control).
pub const CAPACITY: f64 = 0.0;
/// `capacity_epochs`: epochs over which C rises from 0 (0: C at its maximum from the start).
pub const CAPACITY_EPOCHS: usize = 0;
/// The importance sample counts of the IWAE bounds that `vaelab eval` (and every run's
/// evaluation after training) computes unless `--k` says otherwise.
pub const EVAL_K: [usize; 4] = [1, 10, 100, 1000];
/// The most importance samples per image (`samples`, `vaelab eval --k`): Burda et al.'s NLL
/// is the k = 5000 bound.
pub const MAX_SAMPLES: usize = 5000;

/// Seed of the prior draws in figures and `vaelab sample`, the same for every run so that
/// sheets compare like with like.
pub const SAMPLE_SEED: u64 = 20_240_601;

/// `vaelab sweep --stack`'s default.
pub const STACK: &str = "auto";

/// `--eval`'s default: every run evaluated at [`EVAL_K`] when it finishes training.
pub const EVAL: &str = "on";

/// Whether and how `train`, `sweep` and `entry` evaluate each run after training (`--eval`,
/// a matrix's `[eval]`): `on` (at [`EVAL_K`]), `off` (later, with `vaelab eval`) or
/// `k=1,10,100` (the IWAE bounds at those k).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalPolicy {
    /// No evaluation after training.
    Off,
    /// The IWAE bounds at these k (ascending, distinct, each 1 to [`MAX_SAMPLES`]).
    K(Vec<usize>),
}

impl EvalPolicy {
    /// The policy of IWAE sample counts `ks` (sorted and deduplicated here); an empty list is
    /// `off`; a k outside 1 to [`MAX_SAMPLES`] is refused.
    pub fn of_ks(mut ks: Vec<usize>) -> Result<Self, String> {
        if let Some(k) = ks.iter().find(|k| !(1..=MAX_SAMPLES).contains(*k)) {
            return Err(format!("k = {k}: each k must be from 1 to {MAX_SAMPLES}"));
        }
        ks.sort_unstable();
        ks.dedup();
        Ok(if ks.is_empty() {
            Self::Off
        } else {
            Self::K(ks)
        })
    }
}

impl Default for EvalPolicy {
    fn default() -> Self {
        Self::K(EVAL_K.to_vec())
    }
}

impl std::str::FromStr for EvalPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "on" => Ok(Self::default()),
            "off" => Ok(Self::Off),
            _ => {
                let list = s.strip_prefix("k=").ok_or_else(|| {
                    format!("{s:?}: expected on, off or k=LIST (e.g. k=1,10,100)")
                })?;
                let ks = list
                    .split(',')
                    .map(|k| k.trim().parse::<usize>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| format!("{s:?}: k=LIST takes whole numbers, e.g. k=1,10,100"))?;
                Self::of_ks(ks).map_err(|e| format!("{s:?}: {e}"))
            }
        }
    }
}

impl std::fmt::Display for EvalPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::K(ks) => {
                let ks: Vec<String> = ks.iter().map(|k| k.to_string()).collect();
                write!(f, "k={}", ks.join(","))
            }
        }
    }
}

/// How to stack a sweep's runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackPolicy {
    /// The size `sweep::stacking::auto_size` picks for each group.
    Auto,
    /// Every run alone.
    Off,
    /// At most this many members per stack.
    Size(usize),
}

impl std::str::FromStr for StackPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            n => match n.parse::<usize>() {
                Ok(n) if (1..=256).contains(&n) => Ok(Self::Size(n)),
                _ => Err(format!(
                    "{n:?}: expected auto, off or a stack size from 1 to 256"
                )),
            },
        }
    }
}
