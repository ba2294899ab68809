//! Snapshots: the manifest that makes a snapshot exist, and the state objects it names.
//!
//! Layout under the persistence location:
//!
//! ```text
//! manifests/<epoch:020>.json          one per committed snapshot, written last
//! state/g<gen>/<node>/w<i>-of-<n>/<epoch:020>.bin   one aggregate's state on one worker
//! ```
//!
//! A state object is the concatenation of one section per key group the worker owned; the
//! manifest records each section's byte range and checksum, so a worker after rescaling
//! reads only the groups it now owns with range reads. Every object and the manifest carry
//! an xxh3 checksum.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::store::SnapshotStore;
use super::{WindowedState, key_group};

/// Version of the snapshot format.
pub const FORMAT: u32 = 1;
const MANIFESTS: &str = "manifests";

pub fn checksum(bytes: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

/// Where a source had read to at the end of an epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourcePosition {
    /// Bytes consumed from a file (whole lines only), and how many lines that is.
    File {
        offset: u64,
        #[serde(default)]
        lines: u64,
    },
    /// In a directory read in name order: every file before `file` is done, and `offset`
    /// bytes of `file` are consumed.
    Directory { file: String, offset: u64 },
    /// Standard input cannot be replayed; recorded for completeness.
    Stdin { records: u64 },
    /// Events of a generated sequence done by every worker (`nexmark:`).
    Generated { events: u64 },
}

/// One key group's bytes inside a state object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRange {
    pub group: u32,
    pub offset: u64,
    pub len: u64,
    pub checksum: String,
}

/// A state object: one aggregate's state on one worker at one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateObject {
    pub path: String,
    pub size: u64,
    pub checksum: String,
    /// The aggregate's largest event time seen when this was written (drives the watermark).
    pub max_time: i64,
    pub groups: Vec<GroupRange>,
}

/// The pipeline a snapshot belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineIdentity {
    pub module: String,
    pub module_fingerprint: String,
    pub graph_fingerprint: String,
}

/// A committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub epoch: u64,
    /// How many times the job had been started before the run that wrote this.
    pub generation: u64,
    pub created_unix_ms: u64,
    pub pipeline: PipelineIdentity,
    pub key_groups: u32,
    pub processes: usize,
    pub threads: usize,
    /// State objects per aggregate node (by node name).
    pub operators: BTreeMap<String, Vec<StateObject>>,
    pub sources: BTreeMap<String, SourcePosition>,
    /// Committed length in bytes of each sink's file.
    pub sinks: BTreeMap<String, u64>,
}

impl Manifest {
    pub fn path(epoch: u64) -> String {
        format!("{MANIFESTS}/{epoch:020}.json")
    }

    /// Total bytes of state objects.
    pub fn state_bytes(&self) -> u64 {
        self.operators.values().flatten().map(|o| o.size).sum()
    }

    /// Encodes as a checksum line followed by the JSON body.
    pub fn encode(&self) -> Bytes {
        let body = serde_json::to_vec_pretty(self).expect("manifests serialise");
        let mut bytes = format!("{}\n", checksum(&body)).into_bytes();
        bytes.extend_from_slice(&body);
        Bytes::from(bytes)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let newline = bytes
            .iter()
            .position(|&b| b == b'\n')
            .context("no checksum line")?;
        let (sum, body) = (&bytes[..newline], &bytes[newline + 1..]);
        if sum != checksum(body).as_bytes() {
            bail!("checksum mismatch (the manifest is truncated or corrupt)");
        }
        let manifest: Self = serde_json::from_slice(body).context("unreadable manifest")?;
        if manifest.format != FORMAT {
            bail!(
                "snapshot format {} is not supported (this version reads {FORMAT})",
                manifest.format
            );
        }
        Ok(manifest)
    }

    /// Reads the manifest of `epoch`.
    pub fn read(store: &SnapshotStore, epoch: u64) -> Result<Self> {
        let path = Self::path(epoch);
        let bytes = store.get(&path)?;
        Self::decode(&bytes).with_context(|| format!("manifest {path}"))
    }

    /// Epochs of every manifest in the store, newest first.
    pub fn list(store: &SnapshotStore) -> Result<Vec<u64>> {
        let mut epochs: Vec<u64> = store
            .list(MANIFESTS)?
            .into_iter()
            .filter_map(|(path, _)| path.rsplit('/').next()?.strip_suffix(".json")?.parse().ok())
            .collect();
        epochs.sort_unstable_by(|a, b| b.cmp(a));
        Ok(epochs)
    }

    /// Checks every state object the manifest names against its checksums. Returns the
    /// problems found, naming each bad object.
    pub fn verify(&self, store: &SnapshotStore) -> Vec<String> {
        let mut problems = Vec::new();
        for object in self.operators.values().flatten() {
            match store.get(&object.path) {
                Err(error) => problems.push(format!("{}: {error:#}", object.path)),
                Ok(bytes) if bytes.len() as u64 != object.size => problems.push(format!(
                    "{}: {} bytes, expected {} (truncated?)",
                    object.path,
                    bytes.len(),
                    object.size
                )),
                Ok(bytes) if checksum(&bytes) != object.checksum => {
                    problems.push(format!("{}: checksum mismatch (corrupt)", object.path));
                }
                Ok(_) => {}
            }
        }
        problems
    }
}

/// Encodes the groups of `state` that `groups` selects into a state object at `path`.
pub fn encode_state(
    state: &WindowedState,
    key_groups: u32,
    groups: std::ops::Range<u32>,
    path: String,
    max_time: i64,
) -> (StateObject, Bytes) {
    type Entry<'a> = (i64, &'a [u8], &'a [u8]);
    let mut by_group: BTreeMap<u32, Vec<Entry>> = BTreeMap::new();
    for (window_start, key, accumulator) in state.iter() {
        by_group
            .entry(key_group(key, key_groups))
            .or_default()
            .push((window_start, key, accumulator));
    }
    let mut bytes = Vec::new();
    let mut ranges = Vec::new();
    for group in groups {
        let Some(entries) = by_group.get_mut(&group) else {
            continue;
        };
        entries.sort_unstable();
        let offset = bytes.len() as u64;
        let section = postcard::to_allocvec(entries).expect("state serialises");
        ranges.push(GroupRange {
            group,
            offset,
            len: section.len() as u64,
            checksum: checksum(&section),
        });
        bytes.extend_from_slice(&section);
    }
    let object = StateObject {
        path,
        size: bytes.len() as u64,
        checksum: checksum(&bytes),
        max_time,
        groups: ranges,
    };
    (object, Bytes::from(bytes))
}

/// Loads into `state` the groups in `wanted` from the state objects of one aggregate,
/// reading only their byte ranges. Returns the largest `max_time` among the objects.
pub fn restore_state(
    store: &SnapshotStore,
    objects: &[StateObject],
    wanted: std::ops::Range<u32>,
    state: &mut WindowedState,
) -> Result<i64> {
    let mut max_time = i64::MIN;
    for object in objects {
        max_time = max_time.max(object.max_time);
        for range in object.groups.iter().filter(|r| wanted.contains(&r.group)) {
            let section = store.get_range(&object.path, range.offset..range.offset + range.len)?;
            if checksum(&section) != range.checksum {
                bail!(
                    "key group {} of {} is corrupt (checksum mismatch)",
                    range.group,
                    object.path
                );
            }
            let entries: Vec<(i64, Vec<u8>, Vec<u8>)> = postcard::from_bytes(&section)
                .with_context(|| {
                    format!("key group {} of {} is unreadable", range.group, object.path)
                })?;
            for (window_start, key, accumulator) in entries {
                state.put(window_start, &key, &accumulator);
            }
        }
    }
    Ok(max_time)
}
