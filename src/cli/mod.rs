//! The `vaelab` command line in the library: [`main`] parses, [`run`] dispatches each command to
//! its function in [`commands`], which calls the stage modules where the work lives. The
//! grammar is in [`args`], the entry point in [`library`], signal handling in `signals`.

use anyhow::Result;

use crate::config::{matrix, BackendKind, DeviceKind, LrSchedule, RunSpec};
use crate::data::{Binarize, Dataset};
use crate::model::{Activation, Layout, Likelihood, ModelKind, Objective};

pub mod args;
pub mod commands;
pub mod library;
mod signals;

pub use args::*;

impl SlurmArgs {
    /// The settings these flags set.
    pub fn settings(&self) -> matrix::SlurmSettings {
        matrix::SlurmSettings {
            partition: self.partition.clone(),
            time: self.time.clone(),
            cpus_per_task: self.cpus_per_task,
            mem: self.mem.clone(),
            max_parallel: self.max_parallel,
            sbatch_args: self.sbatch_args.clone(),
        }
    }
}

impl From<DatasetArg> for Dataset {
    fn from(arg: DatasetArg) -> Self {
        match arg {
            DatasetArg::Mnist => Dataset::Mnist,
            DatasetArg::FashionMnist => Dataset::FashionMnist,
        }
    }
}

impl TrainArgs {
    /// The run spec these flags describe.
    pub fn spec(&self) -> RunSpec {
        RunSpec {
            model: match self.model {
                ModelArg::Ae => ModelKind::Ae,
                ModelArg::Vae => ModelKind::Vae,
                ModelArg::Cvae => ModelKind::Cvae,
            },
            dataset: self.dataset.into(),
            beta: self.beta,
            latent: self.latent,
            hidden: self.hidden.clone(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            seed: self.seed,
            limit: self.limit,
            backend: match self.backend {
                BackendArg::Tch => BackendKind::Tch,
                BackendArg::Flex => BackendKind::Flex,
            },
            device: match self.device {
                DeviceArg::Cpu => DeviceKind::Cpu,
                DeviceArg::Cuda => DeviceKind::Cuda,
            },
            likelihood: match self.likelihood {
                LikelihoodArg::Gaussian => Likelihood::Gaussian,
                LikelihoodArg::Bernoulli => Likelihood::Bernoulli,
                LikelihoodArg::ContinuousBernoulli => Likelihood::ContinuousBernoulli,
            },
            binarize: match self.binarize {
                BinarizeArg::None => Binarize::None,
                BinarizeArg::Dynamic => Binarize::Dynamic,
                BinarizeArg::Threshold => Binarize::Threshold,
            },
            activation: match self.activation {
                ActivationArg::Relu => Activation::Relu,
                ActivationArg::Tanh => Activation::Tanh,
            },
            layout: match self.layout {
                LayoutArg::Article => Layout::Article,
                LayoutArg::Heads => Layout::Heads,
            },
            lr_schedule: match self.lr_schedule {
                LrScheduleArg::Constant => LrSchedule::Constant,
                LrScheduleArg::Exponential => LrSchedule::Exponential,
                LrScheduleArg::Step => LrSchedule::Step,
                LrScheduleArg::Burda => LrSchedule::Burda,
            },
            lr_decay: self.lr_decay,
            lr_step: self.lr_step,
            objective: match self.objective {
                ObjectiveArg::Elbo => Objective::Elbo,
                ObjectiveArg::Iwae => Objective::Iwae,
            },
            samples: self.samples,
            adam_eps: self.adam_eps,
            adam_betas: [self.adam_betas[0], self.adam_betas[1]],
            kl_warmup: self.kl_warmup,
            kl_cycles: self.kl_cycles,
            kl_cycle_ramp: self.kl_cycle_ramp,
            free_bits: self.free_bits,
            capacity: self.capacity,
            capacity_epochs: self.capacity_epochs,
        }
    }
}

/// What runs in `libvaelab.so` (see [`library`]): parses and runs the whole command line;
/// the process's exit code.
pub fn main() -> u8 {
    // Before any thread exists, so that all of them inherit it.
    crate::train::configure_process();
    if let Err(e) = crate::faults::setup() {
        eprintln!("error: {e}");
        return exit::FAILED;
    }
    crate::panics::install_quiet_hook();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            exit::FAILED
        }
        Err(panic) => {
            eprintln!("error: internal error: {}", crate::panics::reason(&*panic));
            exit::FAILED
        }
    }
}

/// Runs a parsed command line: the exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let ctx = commands::Context::new(&cli);
    match &cli.command {
        Command::Train(args) => commands::train(&ctx, args),
        Command::Sweep(args) => commands::sweep(&ctx, args),
        Command::Repro(args) => commands::repro(&ctx, args),
        Command::Entry(args) => commands::entry(&ctx, args),
        Command::Cancel(args) => commands::cancel(&ctx, args),
        Command::Status(args) => commands::status(&ctx, args),
        Command::Ls(args) => commands::ls(&ctx, args),
        Command::Show(args) => commands::show(&ctx, args),
        Command::Eval(args) => commands::evaluate(&ctx, args),
        Command::Sample(args) => commands::sample(&ctx, args),
        Command::Judge(args) => commands::judge(&ctx, args),
        Command::Diff(args) => commands::diff(&ctx, args),
        Command::Plot(args) => commands::plot(&ctx, args),
        Command::Report(args) => commands::page(&ctx, args),
        Command::Export(args) => commands::export(&ctx, args),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The grammar and `RunSpec::default` read the same constants (config::defaults).
    #[test]
    fn train_flags_default_to_the_run_spec_default() {
        let cli = Cli::try_parse_from(["vaelab", "train"]).unwrap();
        let Command::Train(args) = cli.command else {
            panic!("not the train command");
        };
        assert_eq!(args.spec(), RunSpec::default());
    }
}
