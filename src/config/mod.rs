//! Run specifications: every parameter of one training run, validated, with a stable identity;
//! and experiment matrices ([`matrix`]) that expand into many of them.

pub mod matrix;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{ModelConfig, ModelKind};

/// Which Burn backend trains the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// libtorch through burn-tch (the default).
    Tch,
    /// Burn's pure-Rust CPU backend.
    Flex,
}

impl BackendKind {
    /// The name used in configs and provenance.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Tch => "tch",
            BackendKind::Flex => "flex",
        }
    }
}

/// Where the backend computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The CPU.
    Cpu,
    /// The first CUDA GPU (libtorch backend only).
    Cuda,
}

/// Every parameter of one run. Serialised as the run's `config.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// AE or VAE.
    pub model: ModelKind,
    /// Weight of the KL term (`loss = recon + beta * kl`); ignored by the AE.
    pub beta: f64,
    /// Latent size.
    pub latent: usize,
    /// Hidden layer widths of the encoder (the decoder mirrors them).
    pub hidden: Vec<usize>,
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per optimiser step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Drives weight init, shuffling and sampling noise.
    pub seed: u64,
    /// Use only the first `limit` images of each split (quick runs and tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Burn backend.
    pub backend: BackendKind,
    /// Compute device.
    pub device: DeviceKind,
}

impl Default for RunSpec {
    /// Our best reconstruction of the article's setup (`../shared/notes/article-setup.md`):
    /// 784-256-4 MLP with a plain-linear code (widths and latent size fitted on the article's
    /// table 1 by experiments/article-identify.toml), batch 32, Adam 1e-3, β = 3.
    fn default() -> Self {
        Self {
            model: ModelKind::Vae,
            beta: 3.0,
            latent: 4,
            hidden: vec![256],
            epochs: 10,
            batch_size: 32,
            lr: 1e-3,
            seed: 0,
            limit: None,
            backend: BackendKind::Tch,
            device: DeviceKind::Cpu,
        }
    }
}

/// A parameter outside its allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key} = {value}: {allowed}")]
pub struct InvalidParam {
    /// The key, as written in a TOML matrix.
    pub key: &'static str,
    /// The rejected value, as written.
    pub value: String,
    /// What is allowed.
    pub allowed: &'static str,
}

impl RunSpec {
    /// Checks every range; the first violation is returned with its key and the allowed range.
    pub fn validate(&self) -> Result<(), InvalidParam> {
        let bad = |key, value: String, allowed| {
            Err(InvalidParam {
                key,
                value,
                allowed,
            })
        };
        if !self.beta.is_finite() || self.beta < 0.0 {
            return bad("beta", self.beta.to_string(), "must be finite and >= 0");
        }
        if self.latent < 1 {
            return bad("latent", self.latent.to_string(), "must be >= 1");
        }
        if self.hidden.contains(&0) {
            return bad(
                "hidden",
                format!("{:?}", self.hidden),
                "widths must be >= 1",
            );
        }
        if self.epochs < 1 {
            return bad("epochs", self.epochs.to_string(), "must be >= 1");
        }
        if self.batch_size < 1 {
            return bad("batch_size", self.batch_size.to_string(), "must be >= 1");
        }
        if !self.lr.is_finite() || self.lr <= 0.0 {
            return bad("lr", self.lr.to_string(), "must be finite and > 0");
        }
        if self.limit == Some(0) {
            return bad(
                "limit",
                "0".into(),
                "must be >= 1 (or absent for all images)",
            );
        }
        if self.device == DeviceKind::Cuda && self.backend != BackendKind::Tch {
            return bad(
                "device",
                "cuda".into(),
                "cuda needs backend = \"tch\" (flex is CPU-only)",
            );
        }
        Ok(())
    }

    /// The architecture part of the spec.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            kind: self.model,
            hidden: self.hidden.clone(),
            latent: self.latent,
        }
    }

    /// The KL weight that actually applies (0 for the AE, whatever `beta` says).
    pub fn effective_beta(&self) -> f64 {
        match self.model {
            ModelKind::Ae => 0.0,
            ModelKind::Vae => self.beta,
        }
    }

    /// The spec with parameters that cannot matter cleared, so equal runs compare equal
    /// (an AE under different β is one run).
    pub fn canonical(&self) -> RunSpec {
        let mut spec = self.clone();
        spec.beta = self.effective_beta();
        spec
    }

    /// The spec as TOML (the run's `config.toml`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a RunSpec always serialises")
    }

    /// A short content hash of the canonical spec and the code fingerprint: equal parameters at
    /// the same code give the same id, any change gives a new one.
    pub fn run_id(&self, code_fingerprint: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.canonical().to_toml().as_bytes());
        h.update(b"\0code:");
        h.update(code_fingerprint.as_bytes());
        let digest = h.finalize();
        let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
        format!("{}-{hex}", self.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_change_with_any_parameter() {
        let a = RunSpec::default();
        assert_eq!(a.run_id("c1"), a.clone().run_id("c1"));
        assert_ne!(a.run_id("c1"), a.run_id("c2"));
        let mut b = a.clone();
        b.seed = 1;
        assert_ne!(a.run_id("c1"), b.run_id("c1"));
        let mut c = a.clone();
        c.beta = 1.0;
        assert_ne!(a.run_id("c1"), c.run_id("c1"));
    }

    #[test]
    fn ae_ignores_beta_in_its_identity() {
        let mut a = RunSpec {
            model: ModelKind::Ae,
            ..RunSpec::default()
        };
        let id = a.run_id("c");
        a.beta = 5.0;
        assert_eq!(id, a.run_id("c"));
    }

    #[test]
    fn validation_names_the_key_and_range() {
        let spec = RunSpec {
            beta: -1.0,
            ..RunSpec::default()
        };
        let err = spec.validate().unwrap_err();
        assert_eq!(err.to_string(), "beta = -1: must be finite and >= 0");
        let spec = RunSpec {
            latent: 0,
            ..RunSpec::default()
        };
        assert_eq!(spec.validate().unwrap_err().key, "latent");
        assert!(RunSpec::default().validate().is_ok());
    }

    #[test]
    fn toml_round_trip_rejects_unknown_keys() {
        let spec = RunSpec::default();
        let back: RunSpec = toml::from_str(&spec.to_toml()).unwrap();
        assert_eq!(spec, back);
        let err = toml::from_str::<RunSpec>(&format!("{}\nbogus = 1\n", spec.to_toml()));
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("unknown field `bogus`"));
    }
}
