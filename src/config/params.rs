//! The run parameters as named keys: one schema for matrices (`[base]`, `[grid]`, filters), the
//! parameter columns of the sweep tables (`summary.parquet`, `epochs.parquet`), the report's run
//! table, `diff` and the text tables. A key added to [`RunSpec`] is added to [`PARAMS`] and
//! reaches all of them.
//!
//! Values are read through the spec's own serialisation (its `config.toml` table), so a key's
//! text here is exactly what a matrix writes.

use super::{defaults, RunSpec};

/// How a parameter is stored as a table column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A name (`model = "vae"`): a string column.
    Text,
    /// A real number: a float column.
    Float,
    /// A count (latent size, epochs): an unsigned 32-bit column.
    Count,
    /// A seed: an unsigned 64-bit column.
    Seed,
    /// A list of widths (`hidden = [256, 128]`): a string column, `256-128`.
    Widths,
    /// A list of numbers (`adam_betas = [0.9, 0.999]`): a string column, `0.9-0.999`.
    Numbers,
    /// An optional count (`limit`): an unsigned 32-bit column, null when unset.
    OptionalCount,
}

impl ParamKind {
    /// Whether tables show and compare the value as text (left-aligned, string order).
    pub fn is_text(self) -> bool {
        matches!(
            self,
            ParamKind::Text | ParamKind::Widths | ParamKind::Numbers
        )
    }
}

/// The value of a key its config leaves out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Absent {
    /// A name.
    Text(&'static str),
    /// A number.
    Float(f64),
    /// A count.
    Count(usize),
    /// A list of numbers.
    Numbers(&'static [f64]),
}

impl Absent {
    fn value(self) -> toml::Value {
        match self {
            Absent::Text(s) => toml::Value::String(s.to_string()),
            Absent::Float(x) => toml::Value::Float(x),
            Absent::Count(n) => toml::Value::Integer(n as i64),
            Absent::Numbers(v) => {
                toml::Value::Array(v.iter().map(|&x| toml::Value::Float(x)).collect())
            }
        }
    }
}

/// One run parameter: its key (as a matrix and a table column name it) and its column kind.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// The key, as written in a matrix and named in every table.
    pub key: &'static str,
    /// How its column is typed.
    pub kind: ParamKind,
    /// The value a spec has when its config leaves the key out (a key added after runs were
    /// made, left out at its default so that their ids stay), as a matrix writes it; `None`
    /// where absence means unset (`limit`).
    pub absent: Option<Absent>,
    /// What a matrix may write, for the one-line error of a value of the wrong type.
    pub allowed: &'static str,
}

const fn param(key: &'static str, kind: ParamKind, allowed: &'static str) -> Param {
    Param {
        key,
        kind,
        absent: None,
        allowed,
    }
}

const fn defaulted(key: &'static str, value: &'static str, allowed: &'static str) -> Param {
    Param {
        key,
        kind: ParamKind::Text,
        absent: Some(Absent::Text(value)),
        allowed,
    }
}

const fn count(key: &'static str, value: usize, allowed: &'static str) -> Param {
    Param {
        key,
        kind: ParamKind::Count,
        absent: Some(Absent::Count(value)),
        allowed,
    }
}

const fn float(key: &'static str, value: f64, allowed: &'static str) -> Param {
    Param {
        key,
        kind: ParamKind::Float,
        absent: Some(Absent::Float(value)),
        allowed,
    }
}

/// Every run parameter, in axis order (the order of matrix axes, listings and table columns).
pub const PARAMS: [Param; 29] = [
    param("model", ParamKind::Text, "\"ae\", \"vae\" or \"cvae\""),
    param("dataset", ParamKind::Text, "\"mnist\" or \"fashion-mnist\""),
    param("beta", ParamKind::Float, "a number"),
    param("latent", ParamKind::Count, "an integer"),
    param(
        "hidden",
        ParamKind::Widths,
        "a list of widths >= 1, e.g. [128]",
    ),
    param("epochs", ParamKind::Count, "an integer"),
    param("batch_size", ParamKind::Count, "an integer"),
    param("lr", ParamKind::Float, "a number"),
    param("seed", ParamKind::Seed, "an integer"),
    param("limit", ParamKind::OptionalCount, "an integer"),
    param("backend", ParamKind::Text, "\"tch\" or \"flex\""),
    param("device", ParamKind::Text, "\"cpu\" or \"cuda\""),
    defaulted(
        "likelihood",
        defaults::LIKELIHOOD,
        "\"gaussian\", \"bernoulli\" or \"continuous-bernoulli\"",
    ),
    defaulted(
        "binarize",
        defaults::BINARIZE,
        "\"none\", \"dynamic\" or \"threshold\"",
    ),
    defaulted("activation", defaults::ACTIVATION, "\"relu\" or \"tanh\""),
    defaulted("layout", defaults::LAYOUT, "\"article\" or \"heads\""),
    defaulted(
        "lr_schedule",
        defaults::LR_SCHEDULE,
        "\"constant\", \"exponential\", \"step\" or \"burda\"",
    ),
    float("lr_decay", defaults::LR_DECAY, "a number"),
    count("lr_step", defaults::LR_STEP, "an integer"),
    defaulted("objective", defaults::OBJECTIVE, "\"elbo\" or \"iwae\""),
    count("samples", defaults::SAMPLES, "an integer"),
    float("adam_eps", defaults::ADAM_EPS, "a number"),
    Param {
        key: "adam_betas",
        kind: ParamKind::Numbers,
        absent: Some(Absent::Numbers(&defaults::ADAM_BETAS)),
        allowed: "two numbers, e.g. [0.9, 0.999]",
    },
    count(
        "kl_warmup",
        defaults::KL_WARMUP,
        "an integer (epochs; 0: none)",
    ),
    count(
        "kl_cycles",
        defaults::KL_CYCLES,
        "an integer (cycles; 0: none)",
    ),
    float(
        "kl_cycle_ramp",
        defaults::KL_CYCLE_RAMP,
        "a number in (0, 1]",
    ),
    float(
        "free_bits",
        defaults::FREE_BITS,
        "a number (nats per dimension; 0: none)",
    ),
    float("capacity", defaults::CAPACITY, "a number (nats; 0: none)"),
    count(
        "capacity_epochs",
        defaults::CAPACITY_EPOCHS,
        "an integer (epochs)",
    ),
];

/// The keys of [`PARAMS`], in order: what a `[base]`, `[grid]`, `[[include]]` or `[[exclude]]`
/// table may hold.
pub const PARAM_KEYS: [&str; PARAMS.len()] = {
    let mut keys = [""; PARAMS.len()];
    let mut i = 0;
    while i < PARAMS.len() {
        keys[i] = PARAMS[i].key;
        i += 1;
    }
    keys
};

/// The parameter named `key`.
pub fn param_named(key: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.key == key)
}

/// A spec as a TOML table keyed by [`PARAM_KEYS`]: its `config.toml`, with the keys it
/// leaves out at their defaults filled in ([`Param::absent`]).
pub fn spec_table(spec: &RunSpec) -> toml::Table {
    let mut table = match toml::Value::try_from(spec) {
        Ok(toml::Value::Table(t)) => t,
        _ => unreachable!("a RunSpec serialises to a table"),
    };
    for p in PARAMS {
        if let (Some(value), false) = (p.absent, table.contains_key(p.key)) {
            table.insert(p.key.to_string(), value.value());
        }
    }
    table
}

/// Whether `spec`'s `key` equals `value` written as in a matrix (`beta=3`, `model=vae`,
/// `hidden=[128]`); an error names an unknown key or a value of the wrong type.
pub fn param_equals(spec: &RunSpec, key: &str, value: &str) -> Result<bool, String> {
    if !PARAM_KEYS.contains(&key) {
        return Err(format!(
            "unknown key `{key}`; allowed: {}",
            PARAM_KEYS.join(", ")
        ));
    }
    // Bare words (`vae`) are strings; anything TOML can read keeps its type.
    let parsed = format!("{key} = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get(key).cloned())
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut table = spec_table(spec);
    table.insert(key.to_string(), parsed);
    let probe: RunSpec = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| format!("{key}={value}: {}", e.message().trim()))?;
    Ok(same_param(spec, &probe, key))
}

/// Whether `a` and `b` agree on parameter `key`.
pub fn same_param(a: &RunSpec, b: &RunSpec, key: &str) -> bool {
    spec_table(a).get(key) == spec_table(b).get(key)
}

/// The keys of [`PARAM_KEYS`] whose values differ among `specs`, in that order: what a listing,
/// a chart legend or a diff shows.
pub fn varying_keys<'a>(specs: impl IntoIterator<Item = &'a RunSpec>) -> Vec<&'static str> {
    let tables: Vec<toml::Table> = specs.into_iter().map(spec_table).collect();
    PARAM_KEYS
        .iter()
        .copied()
        .filter(|k| tables.iter().any(|t| t.get(*k) != tables[0].get(*k)))
        .collect()
}

/// The value of `key` in `spec` as a matrix writes it (`hidden` as `[256]`, strings bare), or
/// `-` when unset (`limit` of a full-data run).
pub fn param_value(spec: &RunSpec, key: &str) -> String {
    match spec_table(spec).get(key) {
        Some(toml::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "-".to_string(),
    }
}

/// `key=value` for each of `keys` of `spec`, space-separated.
pub fn describe(spec: &RunSpec, keys: &[&str]) -> String {
    let table = spec_table(spec);
    keys.iter()
        .map(|k| match table.get(*k) {
            Some(v) => format!("{k}={v}"),
            None => format!("{k}=-"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of the schema is a field of the spec and every field a key: a field added to
    /// `RunSpec` without a `PARAMS` entry fails here (`limit` is absent when unset).
    #[test]
    fn the_schema_names_every_field_of_the_spec() {
        // Every key set away from its default, so that the config writes it.
        let spec = RunSpec {
            limit: Some(5),
            likelihood: crate::model::Likelihood::Bernoulli,
            binarize: crate::data::Binarize::Dynamic,
            activation: crate::model::Activation::Tanh,
            layout: crate::model::Layout::Heads,
            lr_schedule: crate::config::LrSchedule::Step,
            lr_decay: 0.5,
            lr_step: 3,
            objective: crate::model::Objective::Iwae,
            samples: 5,
            adam_eps: 1e-4,
            adam_betas: [0.8, 0.99],
            kl_warmup: 2,
            kl_cycles: 3,
            kl_cycle_ramp: 0.25,
            free_bits: 0.5,
            capacity: 5.0,
            capacity_epochs: 4,
            ..RunSpec::default()
        };
        let mut fields: Vec<String> = toml::Value::try_from(&spec)
            .unwrap()
            .as_table()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut keys: Vec<String> = PARAM_KEYS.iter().map(|k| k.to_string()).collect();
        fields.sort();
        keys.sort();
        assert_eq!(fields, keys);
        for p in PARAMS {
            let value = spec_table(&spec).get(p.key).cloned().unwrap();
            let fits = match p.kind {
                ParamKind::Text => value.is_str(),
                ParamKind::Float => value.is_float(),
                ParamKind::Count | ParamKind::Seed | ParamKind::OptionalCount => value.is_integer(),
                ParamKind::Widths | ParamKind::Numbers => value.is_array(),
            };
            assert!(fits, "{} = {value} is not a {:?}", p.key, p.kind);
        }
    }
}
