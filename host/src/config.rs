//! Validated job configuration. [`JobSettings`] is the raw form (from flags or a TOML job
//! file, every field optional); [`JobConfig`] is the checked form the runtime takes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Default number of key groups: the maximum parallelism of a job.
pub const DEFAULT_KEY_GROUPS: u32 = 256;

/// Where a source reads from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SourceBinding {
    /// A text file, one event per line, read to its end.
    File(PathBuf),
    /// A text file followed as it grows (`tail:PATH`).
    Tail(PathBuf),
    /// Every file of a directory in name order, then new files as they appear (`dir:PATH`).
    Directory(PathBuf),
    /// A file's lines replayed at a scheduled rate (`replay:PATH?rate=200@0s,2000@30s`).
    Replay {
        path: PathBuf,
        schedule: crate::connectors::Schedule,
    },
    /// Standard input, one event per line.
    Stdin,
}

impl SourceBinding {
    fn parse(name: &str, text: &str, base: &Path) -> Result<Self> {
        if let Some(rest) = text.strip_prefix("replay:") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let rate = query.strip_prefix("rate=").with_context(|| {
                format!("source `{name}`: expected replay:PATH?rate=SCHEDULE (e.g. rate=200@0s,5000@30s)")
            })?;
            let schedule = crate::connectors::Schedule::parse(rate)
                .with_context(|| format!("source `{name}`"))?;
            let path = base.join(path);
            if !path.is_file() {
                bail!("source `{name}`: no such file {}", path.display());
            }
            return Ok(Self::Replay { path, schedule });
        }
        let (kind, path) = match text.split_once(':') {
            Some((kind @ ("tail" | "dir"), path)) => (kind, base.join(path)),
            _ if text == "-" => return Ok(Self::Stdin),
            _ => ("file", base.join(text)),
        };
        match kind {
            "dir" if path.is_dir() => Ok(Self::Directory(path)),
            "dir" => bail!("source `{name}`: no such directory {}", path.display()),
            _ if !path.is_file() => bail!("source `{name}`: no such file {}", path.display()),
            "tail" => Ok(Self::Tail(path)),
            _ => Ok(Self::File(path)),
        }
    }

    /// Whether the source can be read again from a recorded position.
    pub fn is_replayable(&self) -> bool {
        !matches!(self, Self::Stdin)
    }
}

/// Where a sink writes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SinkBinding {
    /// A file, one record per line (created or truncated).
    File(PathBuf),
    /// Standard output, one record per line.
    Stdout,
}

impl SinkBinding {
    fn parse(text: &str, base: &Path) -> Self {
        match text {
            "-" => Self::Stdout,
            path => Self::File(base.join(path)),
        }
    }
}

impl std::fmt::Display for SinkBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Stdout => write!(f, "standard output"),
        }
    }
}

/// Sandbox limits for each guest instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Linear memory per instance.
    pub memory_bytes: u64,
    /// CPU time one guest call may take before it is stopped.
    pub call_deadline_ms: u64,
    /// Largest accepted module file.
    pub max_module_bytes: u64,
    /// Fuel per guest call (roughly one unit per WebAssembly instruction); `None`: no fuel
    /// metering, only the CPU deadline.
    pub fuel: Option<u64>,
    /// Most events one guest call may return.
    pub max_output_events: u64,
    /// Where compiled modules are cached (`None`: compile every time). Not a limit, but it
    /// travels with them to every place that loads a module.
    pub compile_cache: Option<PathBuf>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            call_deadline_ms: 5_000,
            max_module_bytes: 64 << 20,
            fuel: None,
            max_output_events: 1_000_000,
            compile_cache: None,
        }
    }
}

/// What a transform does with a record it cannot handle: one the guest rejects
/// (`transform-output.errors`), or one on which the guest faults (trap, deadline, memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Stop the job, naming the operator, the error and the record.
    Fail,
    /// Count the record, log it, and go on.
    Skip,
    /// Count the record and write it, with the error, to the `--dead-letter` file.
    DeadLetter,
}

impl OnError {
    /// The name used by `--on-error` and `on_error`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::Skip => "skip",
            Self::DeadLetter => "dead-letter",
        }
    }
}

/// Where and how often operator state is snapshotted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persistence {
    /// `file:///path`, a plain path, or `s3://bucket/prefix`.
    pub url: String,
    /// Complete snapshots kept; older ones are deleted.
    pub keep: usize,
    /// Discard existing snapshots instead of resuming from them.
    pub fresh_start: bool,
}

/// How `spawn` changes its process count from the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaling {
    /// The sliding window the advice is computed over.
    pub window: std::time::Duration,
    /// Never more processes than this.
    pub max_processes: usize,
}

/// How sources cut their input into batches and epochs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epochs {
    /// Events per batch handed to the guest.
    pub batch_size: usize,
    /// An epoch closes after this many events...
    pub max_records: u64,
    /// ...or after this much time, whichever comes first.
    pub max_ms: u64,
}

impl Default for Epochs {
    fn default() -> Self {
        Self {
            batch_size: 1024,
            max_records: 100_000,
            max_ms: 1_000,
        }
    }
}

/// Job settings as given by a person: every field optional. Flags override the job file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    pub module: Option<PathBuf>,
    pub threads: Option<usize>,
    pub processes: Option<usize>,
    pub key_groups: Option<u32>,
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
    #[serde(default)]
    pub sinks: BTreeMap<String, String>,
    pub dead_letter: Option<String>,
    pub batch_size: Option<usize>,
    pub epoch_records: Option<u64>,
    pub epoch_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub call_deadline_ms: Option<u64>,
    pub fuel: Option<u64>,
    pub max_module_mib: Option<u64>,
    pub max_output_events: Option<u64>,
    /// Compile cache directory; `off` disables the cache.
    pub compile_cache: Option<String>,
    pub on_error: Option<OnError>,
    pub persistence: Option<String>,
    pub snapshot_interval_ms: Option<u64>,
    pub keep_snapshots: Option<usize>,
    #[serde(default)]
    pub fresh_start: bool,
    pub stop_when_idle_ms: Option<u64>,
    pub max_restarts: Option<u32>,
    #[serde(default)]
    pub scaling: bool,
    pub window_ms: Option<u64>,
    pub max_processes: Option<usize>,
    /// Directory that relative paths are resolved against (the job file's directory).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl JobSettings {
    /// Reads a TOML job file; relative paths in it are relative to the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read job file {}", path.display()))?;
        let mut settings: Self = toml::from_str(&text)
            .with_context(|| format!("invalid job file {}", path.display()))?;
        settings.base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
        Ok(settings)
    }

    /// Settings from `overrides` win; bindings are merged by name. Paths of each side stay
    /// resolved against their own base.
    pub fn merge(self, overrides: Self) -> Self {
        let rebase = |base: &Path, map: BTreeMap<String, String>| -> BTreeMap<String, String> {
            map.into_iter()
                .map(|(k, v)| (k, rebase_path(base, &v)))
                .collect()
        };
        let mut sources = rebase(&self.base_dir, self.sources);
        sources.extend(overrides.sources);
        let mut sinks = rebase(&self.base_dir, self.sinks);
        sinks.extend(overrides.sinks);
        let base = &self.base_dir;
        Self {
            module: overrides.module.or(self.module.map(|m| base.join(m))),
            threads: overrides.threads.or(self.threads),
            processes: overrides.processes.or(self.processes),
            key_groups: overrides.key_groups.or(self.key_groups),
            sources,
            sinks,
            dead_letter: overrides
                .dead_letter
                .or(self.dead_letter.map(|d| rebase_path(base, &d))),
            batch_size: overrides.batch_size.or(self.batch_size),
            epoch_records: overrides.epoch_records.or(self.epoch_records),
            epoch_ms: overrides.epoch_ms.or(self.epoch_ms),
            memory_mib: overrides.memory_mib.or(self.memory_mib),
            call_deadline_ms: overrides.call_deadline_ms.or(self.call_deadline_ms),
            fuel: overrides.fuel.or(self.fuel),
            max_module_mib: overrides.max_module_mib.or(self.max_module_mib),
            max_output_events: overrides.max_output_events.or(self.max_output_events),
            compile_cache: overrides
                .compile_cache
                .or(self.compile_cache.map(|d| rebase_path(base, &d))),
            on_error: overrides.on_error.or(self.on_error),
            persistence: overrides
                .persistence
                .or(self.persistence.map(|p| rebase_url(base, &p))),
            snapshot_interval_ms: overrides.snapshot_interval_ms.or(self.snapshot_interval_ms),
            keep_snapshots: overrides.keep_snapshots.or(self.keep_snapshots),
            fresh_start: overrides.fresh_start || self.fresh_start,
            stop_when_idle_ms: overrides.stop_when_idle_ms.or(self.stop_when_idle_ms),
            max_restarts: overrides.max_restarts.or(self.max_restarts),
            scaling: overrides.scaling || self.scaling,
            window_ms: overrides.window_ms.or(self.window_ms),
            max_processes: overrides.max_processes.or(self.max_processes),
            base_dir: overrides.base_dir,
        }
    }

    /// Checks the settings and fills in defaults.
    pub fn validate(self) -> Result<JobConfig> {
        let Some(module) = self.module else {
            bail!("no pipeline given: pass PIPELINE.wasm, or set `module` in the job file");
        };
        let threads = positive("threads", self.threads.unwrap_or(1))?;
        let processes = positive("processes", self.processes.unwrap_or(1))?;
        let key_groups = self.key_groups.unwrap_or(DEFAULT_KEY_GROUPS);
        if !(1..=65_536).contains(&key_groups) {
            bail!("--key-groups must be between 1 and 65536, not {key_groups}");
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let scaling = if self.scaling {
            let max_processes = positive("--max-processes", self.max_processes.unwrap_or(cores))?;
            if max_processes * threads > key_groups as usize {
                bail!(
                    "--max-processes {max_processes} × {threads} threads exceed the {key_groups} key groups"
                );
            }
            let window = std::time::Duration::from_millis(self.window_ms.unwrap_or(120_000).max(1));
            Some(Scaling {
                window,
                max_processes,
            })
        } else {
            None
        };
        let workers = threads * processes;
        if workers > key_groups as usize {
            bail!(
                "{workers} workers ({processes} processes × {threads} threads) exceed the \
                 {key_groups} key groups; raise --key-groups or use fewer workers"
            );
        }
        let base = &self.base_dir;
        let mut sources = BTreeMap::new();
        for (name, text) in self.sources {
            let binding = SourceBinding::parse(&name, &text, base)?;
            sources.insert(name, binding);
        }
        let sinks = self
            .sinks
            .into_iter()
            .map(|(name, path)| (name, SinkBinding::parse(&path, base)))
            .collect();
        let defaults = Epochs::default();
        // Every epoch is snapshotted, so the snapshot interval is the epoch length.
        let epoch_ms = self.snapshot_interval_ms.or(self.epoch_ms);
        let epochs = Epochs {
            batch_size: positive("batch size", self.batch_size.unwrap_or(defaults.batch_size))?,
            max_records: self.epoch_records.unwrap_or(defaults.max_records).max(1),
            max_ms: epoch_ms.unwrap_or(defaults.max_ms).max(1),
        };
        let persistence = match self.persistence {
            Some(url) => Some(Persistence {
                url: absolute_url(&url)?,
                keep: self.keep_snapshots.unwrap_or(3).max(1),
                fresh_start: self.fresh_start,
            }),
            None if self.fresh_start => bail!("--fresh-start needs --persistence"),
            None => None,
        };
        let default_limits = Limits::default();
        let limits = Limits {
            memory_bytes: self
                .memory_mib
                .map_or(default_limits.memory_bytes, |m| m << 20),
            call_deadline_ms: self
                .call_deadline_ms
                .unwrap_or(default_limits.call_deadline_ms),
            max_module_bytes: self
                .max_module_mib
                .map_or(default_limits.max_module_bytes, |m| m << 20),
            fuel: self.fuel,
            max_output_events: positive_u64(
                "--max-output-events",
                self.max_output_events
                    .unwrap_or(default_limits.max_output_events),
            )?,
            compile_cache: compile_cache_dir(self.compile_cache.as_deref(), base),
        };
        if limits.call_deadline_ms == 0 || limits.memory_bytes == 0 || limits.fuel == Some(0) {
            bail!("--call-deadline-ms, --memory-mib and --fuel must be at least 1");
        }
        // The default keeps the behaviour from before there was a policy: rejected records
        // are skipped, and also written out when a dead-letter file is given.
        let on_error = match (self.on_error, &self.dead_letter) {
            (None, None) => OnError::Skip,
            (None, Some(_)) | (Some(OnError::DeadLetter), Some(_)) => OnError::DeadLetter,
            (Some(OnError::DeadLetter), None) => {
                bail!("--on-error dead-letter needs --dead-letter PATH: where to write the records")
            }
            (Some(policy), Some(_)) => bail!(
                "--dead-letter is only used with --on-error dead-letter, not {}",
                policy.name()
            ),
            (Some(policy), None) => policy,
        };
        Ok(JobConfig {
            module: base.join(module),
            threads,
            processes,
            key_groups,
            sources,
            sinks,
            dead_letter: self.dead_letter.map(|d| SinkBinding::parse(&d, base)),
            on_error,
            epochs,
            limits,
            persistence,
            stop_when_idle_ms: self.stop_when_idle_ms,
            max_restarts: self.max_restarts.unwrap_or(5),
            resume: None,
            generation: 0,
            scaling,
        })
    }
}

/// A persistence URL with a relative folder made absolute, so worker processes agree on it.
fn absolute_url(url: &str) -> Result<String> {
    if url.starts_with("s3://") {
        return Ok(url.to_owned());
    }
    if let Some((scheme, _)) = url.split_once("://").filter(|(s, _)| *s != "file") {
        bail!(
            "unsupported persistence URL scheme `{scheme}://` (use file:///PATH, a path, or s3://BUCKET/PREFIX)"
        );
    }
    let path = Path::new(url.strip_prefix("file://").unwrap_or(url));
    let path = std::path::absolute(path).with_context(|| format!("bad persistence path {url}"))?;
    Ok(path.to_string_lossy().into_owned())
}

fn rebase_url(base: &Path, url: &str) -> String {
    if url.contains("://") {
        url.to_owned()
    } else {
        rebase_path(base, url)
    }
}

fn rebase_path(base: &Path, path: &str) -> String {
    if path == "-" {
        return path.to_owned();
    }
    let (kind, rest) = match path.split_once(':') {
        Some((kind @ ("tail" | "dir" | "replay"), rest)) => (format!("{kind}:"), rest),
        _ => (String::new(), path),
    };
    format!("{kind}{}", base.join(rest).to_string_lossy())
}

fn positive_u64(what: &str, value: u64) -> Result<u64> {
    if value == 0 {
        bail!("{what} must be at least 1");
    }
    Ok(value)
}

/// The compile cache directory: the setting (`off` or `none` disables it), else
/// `$XDG_CACHE_HOME/spillway`, else `~/.cache/spillway`.
pub fn compile_cache_dir(setting: Option<&str>, base: &Path) -> Option<PathBuf> {
    match setting {
        Some("off" | "none" | "") => None,
        Some(dir) => Some(std::path::absolute(base.join(dir)).unwrap_or_else(|_| base.join(dir))),
        None => {
            let from_env = |name| std::env::var_os(name).filter(|v| !v.is_empty());
            from_env("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| from_env("HOME").map(|home| Path::new(&home).join(".cache")))
                .map(|base| base.join("spillway"))
        }
    }
}

fn positive(what: &str, value: usize) -> Result<usize> {
    if value == 0 {
        bail!("{what} must be at least 1");
    }
    Ok(value)
}

/// A checked job: what `run` executes and what `spawn` hands to each worker process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobConfig {
    pub module: PathBuf,
    /// Worker threads per process.
    pub threads: usize,
    /// Worker processes (1 for `run`).
    pub processes: usize,
    pub key_groups: u32,
    pub sources: BTreeMap<String, SourceBinding>,
    pub sinks: BTreeMap<String, SinkBinding>,
    /// Where records that a transform rejected go, if anywhere.
    pub dead_letter: Option<SinkBinding>,
    /// What a transform does with a record it cannot handle.
    pub on_error: OnError,
    pub epochs: Epochs,
    pub limits: Limits,
    /// Snapshots, if the job keeps any.
    pub persistence: Option<Persistence>,
    /// Following sources end after this long without new data.
    pub stop_when_idle_ms: Option<u64>,
    /// How often `spawn` restarts crashed workers from the last snapshot.
    pub max_restarts: u32,
    /// The epoch of the snapshot this run resumes from; set by the orchestrator.
    pub resume: Option<u64>,
    /// Names this run's state objects apart from earlier runs'; set by the orchestrator.
    pub generation: u64,
    /// Whether and how `spawn` changes the process count.
    pub scaling: Option<Scaling>,
}

impl JobConfig {
    /// Whether the end of the sources is the end of the input. A `tail:` or `dir:` source
    /// that stops when idle only pauses the job: its windows stay open in the snapshot.
    pub fn input_is_bounded(&self) -> bool {
        self.sources.values().all(|s| {
            matches!(
                s,
                SourceBinding::File(_) | SourceBinding::Replay { .. } | SourceBinding::Stdin
            )
        })
    }

    /// Total worker threads across all processes.
    pub fn workers(&self) -> usize {
        self.threads * self.processes
    }
}

/// Parses `NAME=VALUE` (for `--source` and `--sink`).
pub fn parse_binding(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => {
            Ok((name.to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "expected NAME=PATH (e.g. logs=access.log or report=-), got `{text}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_job_file_and_file_paths_are_relative_to_it() {
        let file = JobSettings {
            module: Some("guest.wasm".into()),
            threads: Some(2),
            sinks: [("report".to_owned(), "out.jsonl".to_owned())].into(),
            base_dir: "/jobs".into(),
            ..Default::default()
        };
        let flags = JobSettings {
            threads: Some(4),
            sinks: [("extra".to_owned(), "-".to_owned())].into(),
            ..Default::default()
        };
        let config = file.merge(flags).validate().unwrap();
        assert_eq!(config.module, Path::new("/jobs/guest.wasm"));
        assert_eq!(config.threads, 4);
        assert_eq!(
            config.sinks["report"],
            SinkBinding::File("/jobs/out.jsonl".into())
        );
        assert_eq!(config.sinks["extra"], SinkBinding::Stdout);
    }

    #[test]
    fn more_workers_than_key_groups_is_refused() {
        let settings = JobSettings {
            module: Some("g.wasm".into()),
            threads: Some(4),
            processes: Some(4),
            key_groups: Some(8),
            ..Default::default()
        };
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("16 workers"), "{error}");
    }

    #[test]
    fn binding_needs_a_name_and_a_value() {
        assert_eq!(
            parse_binding("logs=a.log").unwrap(),
            ("logs".into(), "a.log".into())
        );
        assert!(parse_binding("logs").is_err());
        assert!(parse_binding("=a.log").is_err());
    }
}
