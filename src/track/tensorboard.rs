//! TensorBoard logs of vaelab runs: one directory per run (`<dir>/<run id>/`) holding an event
//! file, `events.out.tfevents.<seconds>.vaelab`, that TensorBoard (and `wandb sync
//! --sync-tensorboard`, `aim convert tensorboard`) reads:
//!
//! - every epoch as one event at step = epoch: `train/…` and `test/…` recon, KL, KL term and
//!   loss, `schedule/lr`, `schedule/kl_weight`, `schedule/capacity` (where they exist);
//! - the evaluation at the last epoch's step: `eval/elbo`, `eval/iwae_k<k>`,
//!   `eval/active_units`;
//! - the HParams plugin's session start (every parameter of the run, from the one schema) and,
//!   once the run is done or failed, its session end, so that TensorBoard's HParams table and
//!   parallel-coordinates view show a sweep.
//!
//! The file is only appended to. An export first reads what the run's file holds, then writes
//! what is missing; when an epoch's logged scalars are no longer the run's (its metrics were
//! rewritten, or retrained to other numbers) or the run no longer has it, it writes
//! TensorBoard's restart marker (a `SessionLog` START at that epoch) and the epochs again: the
//! event accumulator drops the orphaned points. A torn last record (a process killed
//! mid-write) is cut off before appending.
//!
//! Records are TFRecord framed (`u64` length, masked CRC-32C of it, the data, masked CRC-32C
//! of it); the messages are TensorBoard's protos, the few fields written declared here for
//! `prost`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use prost::Message;

use crate::config::params::{spec_table, PARAMS};
use crate::store::{EpochRow, RunRecord, RunState, Store};

/// `Event` (tensorboard/compat/proto/event.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "What", tags = "3, 5, 7")]
    what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `Summary` (summary.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<Value>,
}

/// `Summary.Value`.
#[derive(Clone, PartialEq, prost::Message)]
struct Value {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(message, optional, tag = "9")]
    metadata: Option<SummaryMetadata>,
    #[prost(oneof = "Kind", tags = "2, 8")]
    kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

/// `SummaryMetadata`: which plugin owns a value.
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    plugin_data: Option<PluginData>,
}

/// `SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, prost::Message)]
struct PluginData {
    #[prost(string, tag = "1")]
    plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    content: Vec<u8>,
}

/// `TensorProto`, as the HParams summaries carry it: a float scalar 0 (the plugin's
/// `NULL_TENSOR`; its data is in the metadata).
#[derive(Clone, PartialEq, prost::Message)]
struct TensorProto {
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    tensor_shape: Option<TensorShape>,
    #[prost(float, repeated, tag = "5")]
    float_val: Vec<f32>,
}

/// `TensorShapeProto` of a scalar: no dimensions.
#[derive(Clone, PartialEq, prost::Message)]
struct TensorShape {}

/// `SessionLog`; status 1 is START.
#[derive(Clone, PartialEq, prost::Message)]
struct SessionLog {
    #[prost(int32, tag = "1")]
    status: i32,
}

const SESSION_START: i32 = 1;

/// `HParamsPluginData` (tensorboard/plugins/hparams/plugin_data.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct HParamsPluginData {
    #[prost(int32, tag = "1")]
    version: i32,
    #[prost(oneof = "HParamsData", tags = "3, 4")]
    data: Option<HParamsData>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum HParamsData {
    #[prost(message, tag = "3")]
    SessionStartInfo(SessionStartInfo),
    #[prost(message, tag = "4")]
    SessionEndInfo(SessionEndInfo),
}

#[derive(Clone, PartialEq, prost::Message)]
struct SessionStartInfo {
    #[prost(btree_map = "string, message", tag = "1")]
    hparams: BTreeMap<String, ProtoValue>,
    #[prost(string, tag = "4")]
    group_name: String,
    #[prost(double, tag = "5")]
    start_time_secs: f64,
}

/// Status 1 is SUCCESS, 2 FAILURE (hparams `api.proto`).
#[derive(Clone, PartialEq, prost::Message)]
struct SessionEndInfo {
    #[prost(int32, tag = "1")]
    status: i32,
    #[prost(double, tag = "2")]
    end_time_secs: f64,
}

/// `google.protobuf.Value`, the kinds a parameter takes.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoValue {
    #[prost(oneof = "ValueKind", tags = "2, 3, 4")]
    kind: Option<ValueKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum ValueKind {
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    Text(String),
    #[prost(bool, tag = "4")]
    Flag(bool),
}

const START_INFO_TAG: &str = "_hparams_/session_start_info";
const END_INFO_TAG: &str = "_hparams_/session_end_info";

/// TensorBoard's CRC mask over CRC-32C (Castagnoli).
fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// One TFRecord: length, its masked CRC, the data, its masked CRC.
fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// The events of a file's whole records and the byte length they take; a torn or corrupt
/// tail is not part of it.
fn read_records(bytes: &[u8]) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut at = 0;
    while bytes.len() >= at + 12 {
        let len_bytes = &bytes[at..at + 8];
        let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        if masked_crc(len_bytes) != crc {
            break;
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let end = at + 12 + len + 4;
        if bytes.len() < end {
            break;
        }
        let data = &bytes[at + 12..at + 12 + len];
        let crc = u32::from_le_bytes(bytes[end - 4..end].try_into().unwrap());
        let Ok(event) = Event::decode(data).map_err(|_| ()).and_then(|e| {
            if masked_crc(data) == crc {
                Ok(e)
            } else {
                Err(())
            }
        }) else {
            break;
        };
        events.push(event);
        at = end;
    }
    (events, at)
}

/// What a run's event file already holds.
#[derive(Debug, Default)]
struct Written {
    /// The scalars of each epoch still live (after restart markers), by tag.
    epochs: BTreeMap<i64, BTreeMap<String, f32>>,
    /// Evaluation tags written.
    eval_tags: BTreeSet<String>,
    /// Whether the session start was written; the step and status of its last end.
    started: bool,
    ended: Option<(i64, i32)>,
}

impl Written {
    fn of(events: &[Event]) -> Self {
        let mut w = Written::default();
        for e in events {
            match &e.what {
                Some(What::SessionLog(log)) if log.status == SESSION_START => w.restart(e.step),
                Some(What::Summary(summary)) => {
                    for v in &summary.value {
                        match v.tag.as_str() {
                            START_INFO_TAG => w.started = true,
                            END_INFO_TAG => w.ended = Some((e.step, end_status(v))),
                            tag if tag.starts_with("eval/") => {
                                w.eval_tags.insert(tag.to_string());
                            }
                            tag => {
                                if let Some(Kind::SimpleValue(x)) = v.kind {
                                    w.epochs.entry(e.step).or_default().insert(tag.into(), x);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        w
    }

    /// What is left after a restart marker at `step`: TensorBoard drops every event from that
    /// step on (the evaluation, written at the last epoch's step, with them).
    fn restart(&mut self, step: i64) {
        self.epochs.retain(|&s, _| s < step);
        self.eval_tags.clear();
        self.ended = self.ended.filter(|&(s, _)| s < step);
    }
}

/// The status of a session end value (0 when it cannot be read).
fn end_status(v: &Value) -> i32 {
    let content = v
        .metadata
        .as_ref()
        .and_then(|m| m.plugin_data.as_ref())
        .map(|p| p.content.as_slice())
        .unwrap_or_default();
    match HParamsPluginData::decode(content).map(|d| d.data) {
        Ok(Some(HParamsData::SessionEndInfo(end))) => end.status,
        _ => 0,
    }
}

/// A run's event file, opened for appending after its last whole record.
struct EventFile {
    file: File,
    written: Written,
    events: usize,
}

impl EventFile {
    /// The run directory's event file (created with its version event when there is none).
    fn open(dir: &Path, wall_time: f64) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let existing = event_files(dir)?;
        let path = match existing.last() {
            Some(p) => p.clone(),
            None => dir.join(format!("events.out.tfevents.{}.vaelab", wall_time as u64)),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (events, good) = read_records(&bytes);
        if good < bytes.len() {
            file.set_len(good as u64)?;
            file.seek(SeekFrom::End(0))?;
        }
        let mut out = Self {
            file,
            written: Written::of(&events),
            events: 0,
        };
        if events.is_empty() {
            out.write(Event {
                wall_time,
                step: 0,
                what: Some(What::FileVersion("brain.Event:2".into())),
            })?;
        }
        Ok(out)
    }

    fn write(&mut self, event: Event) -> Result<()> {
        self.file.write_all(&record(&event.encode_to_vec()))?;
        self.events += 1;
        Ok(())
    }
}

/// The `events.out.tfevents.*` files of `dir`, by name.
fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("events.out.tfevents."))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn scalar(tag: String, value: f64) -> Value {
    Value {
        tag,
        metadata: None,
        kind: Some(Kind::SimpleValue(value as f32)),
    }
}

fn hparams_value(tag: &str, data: HParamsData) -> Value {
    let content = HParamsPluginData {
        version: 0,
        data: Some(data),
    }
    .encode_to_vec();
    Value {
        tag: tag.to_string(),
        metadata: Some(SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: "hparams".into(),
                content,
            }),
        }),
        kind: Some(Kind::Tensor(TensorProto {
            dtype: 1,
            tensor_shape: Some(TensorShape {}),
            float_val: vec![0.0],
        })),
    }
}

/// The scalars of one epoch: its train and test rows ([`super::row_metrics`]).
fn epoch_scalars(rows: &[&EpochRow]) -> Vec<Value> {
    rows.iter()
        .flat_map(|row| super::row_metrics(row))
        .map(|(tag, v)| scalar(tag, v))
        .collect()
}

/// The evaluation's scalars ([`super::eval_metrics`]).
fn eval_scalars(record: &RunRecord) -> Vec<Value> {
    super::eval_metrics(record)
        .into_iter()
        .map(|(tag, v)| scalar(tag, v))
        .collect()
}

/// The run's parameters as HParams: numbers as numbers, names and lists as text.
fn hparams(record: &RunRecord) -> BTreeMap<String, ProtoValue> {
    let table = spec_table(&record.spec);
    PARAMS
        .iter()
        .filter_map(|p| {
            let kind = match table.get(p.key)? {
                toml::Value::Integer(i) => ValueKind::Number(*i as f64),
                toml::Value::Float(x) => ValueKind::Number(*x),
                toml::Value::Boolean(b) => ValueKind::Flag(*b),
                toml::Value::String(s) => ValueKind::Text(s.clone()),
                toml::Value::Array(a) => ValueKind::Text(
                    a.iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join("-"),
                ),
                other => ValueKind::Text(other.to_string()),
            };
            Some((p.key.to_string(), ProtoValue { kind: Some(kind) }))
        })
        .collect()
}

/// Seconds since the epoch at which the run started (its provenance), else now.
fn start_time(record: &RunRecord) -> f64 {
    record
        .provenance
        .as_ref()
        .and_then(|p| super::millis(&p.started))
        .map(|ms| ms as f64 / 1000.0)
        .unwrap_or_else(now)
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Brings `record`'s event file under `dir` up to what the run has on disk; returns the
/// number of events written (0: it was up to date).
pub fn sync_run(dir: &Path, record: &RunRecord) -> Result<usize> {
    let start = start_time(record);
    let mut file = EventFile::open(&dir.join(&record.id), start)?;
    if !file.written.started {
        let info = SessionStartInfo {
            hparams: hparams(record),
            group_name: String::new(),
            start_time_secs: start,
        };
        let value = hparams_value(START_INFO_TAG, HParamsData::SessionStartInfo(info));
        file.write(summary_event(start, 0, vec![value]))?;
    }
    // Complete epochs on disk, each with its rows.
    let mut epochs: BTreeMap<i64, Vec<&EpochRow>> = BTreeMap::new();
    for row in &record.rows {
        epochs.entry(i64::from(row.epoch)).or_default().push(row);
    }
    let last_on_disk = epochs.keys().next_back().copied().unwrap_or(0);
    // The first epoch whose logged scalars are not the run's (its metrics were rewritten, or
    // retrained to other numbers), or that the run no longer has: the log restarts there.
    let now_scalars = |rows: &[&EpochRow]| -> BTreeMap<String, f32> {
        epoch_scalars(rows)
            .into_iter()
            .filter_map(|v| match v.kind {
                Some(Kind::SimpleValue(x)) => Some((v.tag, x)),
                _ => None,
            })
            .collect()
    };
    let stale = file
        .written
        .epochs
        .iter()
        .find_map(|(step, logged)| match epochs.get(step) {
            Some(rows) if now_scalars(rows) == *logged => None,
            _ => Some(*step),
        });
    if let Some(step) = stale {
        // TensorBoard's reader drops what it has from this step on.
        file.write(Event {
            wall_time: now(),
            step,
            what: Some(What::SessionLog(SessionLog {
                status: SESSION_START,
            })),
        })?;
        file.written.restart(step);
    }
    let seconds = record
        .provenance
        .as_ref()
        .map(|p| p.epoch_seconds.clone())
        .unwrap_or_default();
    let wall_time = |epoch: i64| {
        let done: f64 = seconds.iter().take(epoch.max(0) as usize).sum();
        start + done
    };
    for (&epoch, rows) in &epochs {
        if !file.written.epochs.contains_key(&epoch) {
            file.write(summary_event(wall_time(epoch), epoch, epoch_scalars(rows)))?;
        }
    }
    // The evaluation and the session's end belong to a finished run's last epoch.
    let finished = last_on_disk == record.spec.epochs as i64;
    let fresh: Vec<Value> = eval_scalars(record)
        .into_iter()
        .filter(|v| !file.written.eval_tags.contains(&v.tag))
        .collect();
    if !fresh.is_empty() && finished {
        file.write(summary_event(now(), last_on_disk, fresh))?;
    }
    let status = match record.state {
        RunState::Done if finished => Some(1),
        RunState::Failed => Some(2),
        _ => None,
    };
    // A failed run retried to the end gets a new end with the new status.
    let ended = file.written.ended.map(|e| e.1);
    if let Some(status) = status.filter(|s| ended != Some(*s)) {
        let end = SessionEndInfo {
            status,
            end_time_secs: wall_time(last_on_disk),
        };
        let value = hparams_value(END_INFO_TAG, HParamsData::SessionEndInfo(end));
        file.write(summary_event(
            wall_time(last_on_disk),
            last_on_disk,
            vec![value],
        ))?;
    }
    file.file.sync_data()?;
    Ok(file.events)
}

fn summary_event(wall_time: f64, step: i64, value: Vec<Value>) -> Event {
    Event {
        wall_time,
        step,
        what: Some(What::Summary(Summary { value })),
    }
}

/// Exports the runs `ids` of `store` to `dir` ([`sync_run`] each); returns the events written.
/// Runs not started yet (no directory: a sweep's queued runs) are left for a later export.
pub fn export(store: &Store, ids: &[String], dir: &Path) -> Result<usize> {
    let mut written = 0;
    for id in ids
        .iter()
        .filter(|id| store.run(id).config_path().is_file())
    {
        let record = store.record(id)?;
        written += sync_run(dir, &record).with_context(|| format!("run {id}"))?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of TensorBoard's own Rust loader (`data/server/masked_crc.rs`).
    #[test]
    fn the_crc_is_tensorboards_masked_crc32c() {
        assert_eq!(masked_crc(b"\x1a\x11CRC test, one two"), 0x5794_d08a);
    }

    /// Records read back whole; a torn tail is not part of them.
    #[test]
    fn records_round_trip_and_a_torn_tail_is_left_out() {
        let events: Vec<Event> = (1..=3)
            .map(|step| summary_event(1.5, step, vec![scalar("test/loss".into(), 2.0)]))
            .collect();
        let mut bytes: Vec<u8> = events
            .iter()
            .flat_map(|e| record(&e.encode_to_vec()))
            .collect();
        let whole = bytes.len();
        assert_eq!(read_records(&bytes), (events.clone(), whole));
        bytes.extend_from_slice(&record(&events[0].encode_to_vec())[..9]);
        assert_eq!(read_records(&bytes), (events, whole));
    }

    /// A restart marker at step T drops the epochs from T on, as TensorBoard's reader does.
    #[test]
    fn a_restart_marker_forgets_the_epochs_from_its_step() {
        let epoch = |step| summary_event(0.0, step, vec![scalar("test/loss".into(), 1.0)]);
        let restart = Event {
            wall_time: 0.0,
            step: 2,
            what: Some(What::SessionLog(SessionLog {
                status: SESSION_START,
            })),
        };
        let w = Written::of(&[epoch(1), epoch(2), epoch(3), restart, epoch(2)]);
        assert_eq!(w.epochs.keys().copied().collect::<Vec<_>>(), [1, 2]);
    }
}
