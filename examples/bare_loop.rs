//! The benchmark's "bare loop": the same model, data, batches and optimiser as `vaelab train`,
//! without the Learner, metrics, Parquet or progress display, so `scripts/bench` can measure
//! what the harness costs. Prints one JSON line per epoch with its training seconds and how they
//! split into forward (batch building, forward pass and loss), backward and optimiser step.
//!
//! `cargo run --release --example bare_loop -- BACKEND HIDDEN LATENT BATCH EPOCHS [LIMIT]`,
//! e.g. `tch 256 4 32 2` (HIDDEN is comma-separated).

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::train::ItemLazy;
use vaelab::config::{BackendKind, RunSpec};
use vaelab::data::{default_dir, epoch_order, Mnist, Split};
use vaelab::model::LossTerms;
use vaelab::train::{device_for, optimizer, StepOutput};

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
        limit: args.get(5).map(|l| l.parse()).transpose()?,
        ..RunSpec::default()
    };
    vaelab::train::configure_process();
    let device = device_for(&spec)?.autodiff();
    device.seed(spec.seed);
    let data = Mnist::load(&default_dir(), Split::Train, spec.limit)?;
    let mut model = spec.model_config().init(&device);
    let mut optim = optimizer(&spec);
    for epoch in 1..=spec.epochs {
        let start = Instant::now();
        let order = epoch_order(0..data.len(), spec.seed, epoch);
        let mut total = 0.0;
        // Where a step's time goes: batch + forward + loss, backward, optimiser (wall seconds).
        let mut phases = [0.0f64; 3];
        for chunk in order.chunks(spec.batch_size) {
            let t0 = Instant::now();
            let images = data.batch(chunk, &device);
            let forward = model.forward(images.clone());
            let terms = LossTerms::new(&forward, images, spec.beta);
            // Read the loss once per batch, as the harness (and the article's loss.item()) do.
            let output = StepOutput::new(&terms, spec.beta);
            let t1 = Instant::now();
            let grads = GradientsParams::from_grads(terms.loss.sum().backward(), &model);
            let t2 = Instant::now();
            model = optim.step(spec.lr, model, grads);
            let _ = output.sync();
            let t3 = Instant::now();
            for (phase, (a, b)) in phases.iter_mut().zip([(t0, t1), (t1, t2), (t2, t3)]) {
                *phase += (b - a).as_secs_f64();
            }
            total += chunk.len() as f64;
        }
        println!(
            "{{\"epoch\": {epoch}, \"seconds\": {:.4}, \"images\": {total}, \"forward\": {:.4}, \"backward\": {:.4}, \"optimizer\": {:.4}}}",
            start.elapsed().as_secs_f64(),
            phases[0],
            phases[1],
            phases[2]
        );
    }
    Ok(())
}
