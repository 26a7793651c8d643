//! The Burn device a spec asks for: checked before any run directory exists.

use anyhow::{bail, Result};
use burn::prelude::*;

use super::{BackendKind, DeviceKind, RunSpec};

/// The Burn device for a spec, or an error naming the missing feature or hardware.
#[allow(deprecated)] // burn marks LibTorch deprecated; it is still our main backend (see notes).
pub fn device_for(spec: &RunSpec) -> Result<Device> {
    match (spec.backend, spec.device) {
        #[cfg(feature = "tch")]
        (BackendKind::Tch, DeviceKind::Cpu) => Ok(Device::libtorch()),
        #[cfg(feature = "tch")]
        (BackendKind::Tch, DeviceKind::Cuda) => {
            // Checked here, before any run directory exists; libtorch would fail only later.
            if !tch::Cuda::is_available() {
                bail!(
                    "device = \"cuda\": libtorch sees no CUDA GPU here (a CPU-only libtorch, or no GPU); \
                     use device = \"cpu\", or on a GPU machine install the CUDA libtorch with \
                     VAELAB_TORCH_FULL=1 ./scripts/setup"
                );
            }
            Ok(Device::libtorch_cuda(0))
        }
        #[cfg(feature = "flex")]
        (BackendKind::Flex, DeviceKind::Cpu) => Ok(Device::flex()),
        (BackendKind::Flex, DeviceKind::Cuda) => bail!("backend flex runs on the CPU only"),
        #[allow(unreachable_patterns)]
        (backend, _) => bail!(
            "backend {} is not compiled into this binary (cargo feature `{}`)",
            backend.as_str(),
            backend.as_str()
        ),
    }
}
