//! The one source of every run parameter's default: our reconstruction of the article's setup
//! (`../shared/notes/article-setup.md`): a 784-256-4 MLP with a plain-linear code (widths and
//! latent size fitted on the article's table 1 by `experiments/article-identify.toml`), batch
//! 32, Adam 1e-3, β = 3. Plain constants (std only): `RunSpec::default` and the command-line
//! grammar (`src/cli/args.rs`, which the `vaelab` launcher compiles without the library) both
//! read them.

/// `model`.
pub const MODEL: &str = "vae";
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
