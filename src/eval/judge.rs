//! A classifier that judges generated images: does a CVAE draw the class it is asked for, does a
//! VAE's prior cover all ten classes?
//!
//! One small MLP per data set, trained with Burn on the full training split the first time it
//! is needed (or by `./scripts/test` and `./scripts/run`), cached in `<cache>/judge/<dataset>/`
//! with its sha256 and its test accuracy, and checked against that sha256 on every load: a
//! corrupted file is an error, never a silently wrong judge.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::{cache_dir, epoch_order, Dataset, Mnist, Split, CLASSES, PIXELS};
use crate::model::{Joints, Mlp};
use crate::store::durable;

/// Hidden widths of the judge's MLP.
const HIDDEN: [usize; 2] = [512, 256];
/// Passes over the training split.
const EPOCHS: usize = 12;
/// Images per Adam step.
const BATCH: usize = 128;
/// Seed of the weights and the data order (the judge is the same on every machine).
const SEED: u64 = 1_998;

/// The judge's network: 784-512-256-10, ReLU, logits out.
#[derive(Module, Debug)]
pub struct Classifier {
    mlp: Mlp,
}

/// The judge's layer widths, input to logits.
fn widths() -> Vec<usize> {
    [&[PIXELS][..], &HIDDEN, &[CLASSES]].concat()
}

impl Classifier {
    fn new(device: &Device) -> Self {
        Self {
            mlp: Mlp::new(&widths(), Joints::default(), device),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.mlp.forward(x)
    }
}

/// What `judge.toml` records beside the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeCard {
    /// The data set it classifies.
    pub dataset: Dataset,
    /// Layer widths.
    pub widths: Vec<usize>,
    /// Training passes.
    pub epochs: usize,
    /// Share of the test split classified correctly.
    pub test_accuracy: f64,
    /// sha256 of `classifier.bpk`.
    pub sha256: String,
}

/// A trained classifier ready to judge images.
pub struct Judge {
    net: Classifier,
    device: Device,
    /// Its record (accuracy, checksum).
    pub card: JudgeCard,
}

/// Where the judge of `dataset` is cached.
pub fn judge_dir(dataset: Dataset) -> PathBuf {
    cache_dir().join("judge").join(dataset.as_str())
}

fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl Judge {
    /// The cached judge of `dataset`, trained first if there is none (other processes wait
    /// for the one training it). `mnist_dir` is the `--data` directory.
    pub fn load_or_train(dataset: Dataset, mnist_dir: &Path, quiet: bool) -> Result<Self> {
        let dir = judge_dir(dataset);
        if let Some(judge) = Self::load(dataset)? {
            return Ok(judge);
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let lock_path = dir.join("lock");
        let lock = File::create(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        if let Some(judge) = Self::load(dataset)? {
            return Ok(judge); // trained by another process while we waited
        }
        if !quiet {
            eprintln!(
                "training the {dataset} judge (a {}-{}-{}-{} MLP, {EPOCHS} epochs; once per machine) ...",
                PIXELS, HIDDEN[0], HIDDEN[1], CLASSES
            );
        }
        let device = crate::config::device_for(&crate::config::RunSpec::default())?;
        let (net, test_accuracy) = train(dataset, mnist_dir, &device)?;
        let model_path = dir.join("classifier.bpk");
        durable::write_with(&model_path, |tmp| net.clone().save_file(tmp))?;
        let card = JudgeCard {
            dataset,
            widths: widths(),
            epochs: EPOCHS,
            test_accuracy,
            sha256: sha256_file(&model_path)?,
        };
        let text = toml::to_string(&card).expect("a card serialises");
        durable::write_atomic(&dir.join("judge.toml"), text.as_bytes())?;
        if !quiet {
            eprintln!(
                "{dataset} judge: {:.2}% test accuracy -> {}",
                100.0 * test_accuracy,
                dir.display()
            );
        }
        Ok(Self { net, device, card })
    }

    /// The cached judge, checked against its recorded sha256; `None` when none is cached, or
    /// when the cached one was trained to another design (it is then trained again).
    pub fn load(dataset: Dataset) -> Result<Option<Self>> {
        let dir = judge_dir(dataset);
        let card_path = dir.join("judge.toml");
        if !card_path.exists() {
            return Ok(None);
        }
        let card: JudgeCard = toml::from_str(
            &std::fs::read_to_string(&card_path)
                .with_context(|| format!("cannot read {}", card_path.display()))?,
        )
        .with_context(|| format!("{}: not a judge card", card_path.display()))?;
        if card.widths != widths() || card.epochs != EPOCHS {
            return Ok(None);
        }
        let model_path = dir.join("classifier.bpk");
        let got = sha256_file(&model_path)?;
        if got != card.sha256 {
            bail!(
                "{}: corrupt judge classifier (sha256 {got}, {} records {}); delete {} to train it again",
                model_path.display(),
                card_path.display(),
                card.sha256,
                dir.display()
            );
        }
        let device = crate::config::device_for(&crate::config::RunSpec::default())?;
        let net = Classifier::new(&device)
            .try_load_file(&model_path)
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| format!("cannot load {}", model_path.display()))?;
        Ok(Some(Self { net, device, card }))
    }

    /// The class of each image (`PIXELS` values in [0, 1] each).
    pub fn classify(&self, images: &[Vec<f32>]) -> Vec<u8> {
        predict(&self.net, images, &self.device)
    }
}

/// The most likely class of each image under `net`.
fn predict(net: &Classifier, images: &[Vec<f32>], device: &Device) -> Vec<u8> {
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(1000) {
        let flat: Vec<f32> = chunk.iter().flatten().copied().collect();
        let x = Tensor::from_data(TensorData::new(flat, [chunk.len(), PIXELS]), device);
        let classes = net.forward(x).argmax(1);
        out.extend(
            classes
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .expect("int data")
                .into_iter()
                .map(|c| c as u8),
        );
    }
    out
}

/// Trains a judge on `dataset`'s training split; the network and its test accuracy.
fn train(dataset: Dataset, mnist_dir: &Path, device: &Device) -> Result<(Classifier, f64)> {
    let train_set = Mnist::load(dataset, mnist_dir, Split::Train, None)?;
    let test_set = Mnist::load(dataset, mnist_dir, Split::Test, None)?;
    let ad = device.clone().autodiff();
    ad.seed(SEED);
    let mut net = Classifier::new(&ad);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    for epoch in 1..=EPOCHS {
        // The last two passes at a tenth of the rate settle the weights.
        let lr = if epoch + 2 > EPOCHS { 1e-4 } else { 1e-3 };
        for batch in epoch_order(0..train_set.len(), SEED, epoch).chunks(BATCH) {
            let x = train_set.batch(batch, &ad);
            let labels: Vec<i64> = batch
                .iter()
                .map(|&i| i64::from(train_set.labels[i]))
                .collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch.len()]), &ad);
            let loss = loss_fn.forward(net.forward(x), y);
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
        }
    }
    let net = net.valid();
    let images: Vec<Vec<f32>> = (0..test_set.len())
        .map(|i| test_set.image(i).to_vec())
        .collect();
    let correct = predict(&net, &images, device)
        .iter()
        .zip(test_set.labels.iter())
        .filter(|(a, b)| a == b)
        .count();
    Ok((net, correct as f64 / test_set.len() as f64))
}
