//! Per-epoch checkpoints that are either whole on disk or absent, one file per member.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::train::checkpoint::{Checkpoint, Checkpointer, CheckpointerError};

use super::recorder::SharedRows;
use super::trainee::{MemberCheckpoint, StackTrainee};
use crate::model::Autoencoder;
use crate::store::durable;

/// Like burn-train's `FileCheckpointer` (same `<name>-<epoch>.bpk` files), but each record is
/// written through [`durable::write_with`], so neither a kill mid-write nor a power loss can
/// leave a torn checkpoint that resume would trip over.
pub struct AtomicCheckpointer {
    directory: PathBuf,
    name: String,
}

impl AtomicCheckpointer {
    /// Checkpoints named `<name>-<epoch>.bpk` in `directory`.
    pub fn new(directory: impl AsRef<Path>, name: &str) -> Self {
        Self {
            directory: directory.as_ref().to_path_buf(),
            name: name.to_string(),
        }
    }

    fn path(&self, name: &str, epoch: usize) -> PathBuf {
        self.directory.join(format!("{name}-{epoch}.bpk"))
    }

    /// Whether the files of every one of `names` exist for `epoch` in this directory.
    pub fn has_all(&self, epoch: usize, names: &[&str]) -> bool {
        names.iter().all(|n| self.path(n, epoch).is_file())
    }
}

impl<R: Checkpoint> Checkpointer<R> for AtomicCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        std::fs::create_dir_all(&self.directory).map_err(CheckpointerError::IOError)?;
        let path = self.path(&self.name, epoch);
        durable::write_with(&path, |tmp| record.save(tmp.to_path_buf()))
            .map_err(|e| CheckpointerError::IOError(std::io::Error::other(format!("{e:#}"))))
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        let path = self.path(&self.name, epoch);
        if path.exists() {
            std::fs::remove_file(path).map_err(CheckpointerError::IOError)?;
        }
        Ok(())
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        R::load(self.path(&self.name, epoch))
    }
}

impl MemberCheckpoint {
    /// Reads the checkpoint of `epoch` in `dir`, shaped like `like`.
    pub fn load(dir: &Path, epoch: usize, like: &Autoencoder) -> anyhow::Result<Self> {
        use anyhow::Context;
        let path = dir.join(format!("{MODEL}-{epoch}.bpk"));
        let record = ModuleRecord::load(&path)
            .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
        let template = Self {
            net: like.clone(),
            moment_1: like.clone(),
            moment_2: like.clone(),
        };
        template
            .try_load_record(record)
            .with_context(|| format!("checkpoint {} does not fit the model", path.display()))
    }
}

/// The name of the per-member checkpoint files.
pub const MODEL: &str = "model";

/// The Learner's model checkpointer for a stack: saving splits the stack's record into one
/// [`MemberCheckpoint`] per member (members the recorder has failed are skipped, so that their
/// last checkpoint is the last finite one); restoring stacks the members' files again.
pub struct MemberCheckpointer {
    template: Mutex<StackTrainee>,
    dirs: Vec<AtomicCheckpointer>,
    state: SharedRows,
}

impl MemberCheckpointer {
    /// Checkpoints of `template`'s members into `dirs` (one per member, in stack order).
    pub fn new(template: StackTrainee, dirs: Vec<PathBuf>, state: SharedRows) -> Self {
        Self {
            template: Mutex::new(template),
            dirs: dirs
                .into_iter()
                .map(|d| AtomicCheckpointer::new(d, MODEL))
                .collect(),
            state,
        }
    }

    fn live(&self) -> Vec<bool> {
        let state = self.state.lock().unwrap();
        (0..self.dirs.len())
            .map(|i| state.members.get(i).is_none_or(|m| m.failed.is_none()))
            .collect()
    }
}

fn io_error(e: impl std::fmt::Display) -> CheckpointerError {
    CheckpointerError::IOError(std::io::Error::other(e.to_string()))
}

/// Keeps libtorch's kernels on the calling thread single-threaded.
///
/// libgomp gives every thread that starts a parallel region a pool of its own, and once it
/// manages more threads than there are cores it stops letting idle threads spin: every kernel
/// of the training step then pays a futex sleep and wake-up (measured: the epochs after the
/// first checkpoint took twice as long, 17,000 context switches a second). Splitting a
/// checkpoint copies tensors on burn-train's checkpointer thread, so that thread must not
/// start a pool. The OpenMP thread count is per thread (`omp_set_num_threads` sets the calling
/// thread's), and libtorch runs a loop inline when it is 1; MKL has a per-thread setting of its
/// own, which `MKL_NUM_THREADS` would otherwise override. Looked up at run time (in this
/// library's scope, where libtorch is): a build without libtorch has neither, and nothing to do.
fn single_threaded_kernels() {
    for name in [c"omp_set_num_threads", c"MKL_Set_Num_Threads_Local"] {
        // SAFETY: dlsym with a NUL-terminated name; both symbols, when present, take one int
        // (libgomp's `void omp_set_num_threads(int)`; MKL's C entry `int
        // MKL_Set_Num_Threads_Local(int)`, behind its `mkl_set_num_threads_local` macro: the
        // lower-case symbol is the Fortran entry, which takes a pointer).
        unsafe {
            let f = libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr());
            if !f.is_null() {
                let set: extern "C" fn(libc::c_int) -> libc::c_int = std::mem::transmute(f);
                set(1);
            }
        }
    }
}

impl Checkpointer<ModuleRecord> for MemberCheckpointer {
    /// Runs on burn-train's checkpointer thread.
    fn save(&self, epoch: usize, record: ModuleRecord) -> Result<(), CheckpointerError> {
        single_threaded_kernels();
        let trainee = self.template.lock().unwrap().clone().load_record(record);
        for (i, live) in self.live().into_iter().enumerate() {
            if live {
                self.dirs[i].save(epoch, trainee.member_checkpoint(i).into_record())?;
            }
        }
        Ok(())
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        for (i, live) in self.live().into_iter().enumerate() {
            if live {
                Checkpointer::<ModuleRecord>::delete(&self.dirs[i], epoch)?;
            }
        }
        Ok(())
    }

    fn restore(&self, epoch: usize) -> Result<ModuleRecord, CheckpointerError> {
        let template = self.template.lock().unwrap().clone();
        let members = (0..self.dirs.len())
            .map(|i| {
                let like = template.net.member(i);
                MemberCheckpoint::load(&self.dirs[i].directory, epoch, &like).map_err(io_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(template.restacked(&members).into_record())
    }
}

/// A checkpointer that keeps nothing: a stack's optimiser state lives in its model (see
/// [`StackTrainee`]) and its learning rate a function of the epoch (`lr_schedule`), so the Learner's optimiser and scheduler
/// records are empty.
pub struct NoCheckpoint;

impl<R: Checkpoint + Default> Checkpointer<R> for NoCheckpoint {
    fn save(&self, _epoch: usize, _record: R) -> Result<(), CheckpointerError> {
        Ok(())
    }

    fn delete(&self, _epoch: usize) -> Result<(), CheckpointerError> {
        Ok(())
    }

    fn restore(&self, _epoch: usize) -> Result<R, CheckpointerError> {
        Ok(R::default())
    }
}
