//! Where runs are tracked besides vaelab's own page: a matrix's `[tracking]` table and the
//! `--tensorboard`, `--mlflow`, `--experiment` flags of `train` and `sweep`, which override it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The trackers a run or sweep is sent to live (nothing set: none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tracking {
    /// TensorBoard logs, one directory per run under this one (relative to the working
    /// directory, as the flag's).
    #[serde(default)]
    pub tensorboard: Option<PathBuf>,
    /// An MLflow tracking server, `http://HOST:PORT` (see [`mlflow_uri`]).
    #[serde(default)]
    pub mlflow: Option<String>,
    /// The MLflow experiment (default: the sweep's name; `vaelab` for `train`).
    #[serde(default)]
    pub experiment: Option<String>,
}

impl Tracking {
    /// These settings with every value `flags` sets replacing ours.
    pub fn overridden_by(&self, flags: &Tracking) -> Tracking {
        Tracking {
            tensorboard: flags
                .tensorboard
                .clone()
                .or_else(|| self.tensorboard.clone()),
            mlflow: flags.mlflow.clone().or_else(|| self.mlflow.clone()),
            experiment: flags.experiment.clone().or_else(|| self.experiment.clone()),
        }
    }

    /// Whether any tracker is set.
    pub fn any(&self) -> bool {
        self.tensorboard.is_some() || self.mlflow.is_some()
    }

    /// The first value that is not allowed, as (key, value, what is allowed).
    pub fn invalid(&self) -> Option<(&'static str, String, &'static str)> {
        if let Some(uri) = &self.mlflow {
            if let Err(allowed) = mlflow_uri(uri) {
                return Some(("mlflow", uri.clone(), allowed));
            }
        }
        match &self.experiment {
            Some(name) if name.trim().is_empty() => {
                Some(("experiment", name.clone(), "a non-empty name"))
            }
            _ => None,
        }
    }
}

/// An MLflow tracking URI as vaelab speaks to it (REST over HTTP): `http://HOST[:PORT][/PATH]`
/// or `https://…`, without a trailing `/`; the error is what is allowed.
pub fn mlflow_uri(uri: &str) -> Result<String, &'static str> {
    const ALLOWED: &str = "an MLflow tracking URI, http://HOST:PORT or https://HOST[:PORT]";
    let base = uri.trim_end_matches('/');
    let host = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"))
        .ok_or(ALLOWED)?;
    let authority = host.split('/').next().unwrap_or_default();
    let (name, port) = match authority.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (authority, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if name.is_empty() || !port_ok || authority.contains(char::is_whitespace) {
        return Err(ALLOWED);
    }
    Ok(base.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_uris_are_http_with_a_host_and_a_port_in_range() {
        for ok in [
            "http://127.0.0.1:5000",
            "http://127.0.0.1:5000/",
            "https://mlflow.lab.org",
            "http://host:80/prefix",
        ] {
            assert!(mlflow_uri(ok).is_ok(), "{ok}");
        }
        assert_eq!(mlflow_uri("http://h:1/").unwrap(), "http://h:1");
        for bad in [
            "localhost:5000",
            "http://",
            "http://:5000",
            "http://h:0",
            "http://h:99999",
            "http://h:port",
            "file:///tmp/mlruns",
            "http://a b:1",
        ] {
            assert!(mlflow_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_override_the_table_key_by_key() {
        let table = Tracking {
            tensorboard: Some("tb".into()),
            mlflow: Some("http://a:1".into()),
            experiment: None,
        };
        let flags = Tracking {
            mlflow: Some("http://b:2".into()),
            experiment: Some("e".into()),
            ..Tracking::default()
        };
        let both = table.overridden_by(&flags);
        assert_eq!(both.tensorboard, Some("tb".into()));
        assert_eq!(both.mlflow.as_deref(), Some("http://b:2"));
        assert_eq!(both.experiment.as_deref(), Some("e"));
    }
}
