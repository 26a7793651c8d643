//! The benchmark's "bare loop": the same stacked model, data, batches and fused optimiser as
//! `vaelab train` / `vaelab sweep`, without the Learner, metrics, Parquet or progress display,
//! so `scripts/bench` can measure what the harness costs. Prints one JSON line per epoch with its
//! training seconds and how they split into forward (batch building, forward pass and loss),
//! backward and optimiser step.
//!
//! `cargo run --release --example bare_loop -- BACKEND HIDDEN LATENT BATCH EPOCHS [LIMIT] [MEMBERS]`,
//! e.g. `tch 256 4 32 2` (HIDDEN is comma-separated; MEMBERS VAEs with β 0, 0.5, 1, … stacked).

use std::time::Instant;

use burn::data::dataloader::DataLoader;
use burn::train::{ItemLazy, TrainStep};
use vaelab::config::device_for;
use vaelab::config::{BackendKind, RunSpec};
use vaelab::data::{default_dir, Extras, Mnist, Split, StackLoader};
use vaelab::train::StackTrainee;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let spec = RunSpec {
        backend: match arg(0, "tch").as_str() {
            "flex" => BackendKind::Flex,
            _ => BackendKind::Tch,
        },
        hidden: arg(1, "256")
            .split(',')
            .map(|h| h.parse())
            .collect::<Result<_, _>>()?,
        latent: arg(2, "4").parse()?,
        batch_size: arg(3, "32").parse()?,
        epochs: arg(4, "2").parse()?,
        limit: args
            .get(5)
            .filter(|l| *l != "-")
            .map(|l| l.parse())
            .transpose()?,
        ..RunSpec::default()
    };
    let members: usize = arg(6, "1").parse()?;
    let specs: Vec<RunSpec> = (0..members)
        .map(|i| RunSpec {
            beta: 0.5 * i as f64,
            seed: spec.seed + i as u64,
            ..spec.clone()
        })
        .collect();
    vaelab::train::configure_process();
    let device = device_for(&spec)?.autodiff();
    let data = Mnist::load(spec.dataset, &default_dir(), Split::Train, spec.limit)?;
    let mut model = StackTrainee::init(&specs, &device, data.len().div_ceil(spec.batch_size), 0);
    let seeds = specs.iter().map(|s| s.seed).collect();
    let loader = StackLoader::new(
        data,
        spec.batch_size,
        Split::Train,
        seeds,
        Extras {
            noise: spec.latent,
            labels: spec.model.classes() > 0,
            binarize: false,
        },
        1,
        device.clone(),
    );
    for epoch in 1..=spec.epochs {
        let start = Instant::now();
        let mut total = 0.0;
        // Where a step's time goes: batch + forward + loss, backward, optimiser (wall seconds).
        let mut phases = [0.0f64; 3];
        let mut batches = loader.iter();
        loop {
            let t0 = Instant::now();
            let Some(batch) = batches.next() else { break };
            let batch = batch?;
            total += batch.images.dims()[1] as f64;
            // TrainStep::step runs forward, loss and backward; the split below is approximate.
            let t1 = Instant::now();
            let output = TrainStep::step(&model, batch);
            let t2 = Instant::now();
            model = model.adam(output.grads);
            // Read the loss once per batch, as the harness (and the article's loss.item()) do.
            let _ = output.item.sync();
            let t3 = Instant::now();
            for (phase, (a, b)) in phases.iter_mut().zip([(t0, t1), (t1, t2), (t2, t3)]) {
                *phase += (b - a).as_secs_f64();
            }
        }
        println!(
            "{{\"epoch\": {epoch}, \"members\": {members}, \"seconds\": {:.4}, \"images\": {total}, \"batch\": {:.4}, \"step\": {:.4}, \"optimizer\": {:.4}}}",
            start.elapsed().as_secs_f64(),
            phases[0],
            phases[1],
            phases[2]
        );
    }
    Ok(())
}
