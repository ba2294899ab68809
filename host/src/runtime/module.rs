//! Loading a pipeline component: checks that turn a bad file into a message a person can
//! act on, compilation, and the validated pipeline graph.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use wasmtime::Engine;
use wasmtime::component::Linker;

use super::{Graph, GuestInstance, GuestState, Operator, PipelinePre};
use crate::config::Limits;

/// Why a file cannot be used as a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("cannot read pipeline {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes, over the module size limit of {limit} bytes")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{path} is not a WebAssembly file (it does not start with the bytes `\\0asm`)")]
    NotWasm { path: PathBuf },
    #[error(
        "{path} is a core WebAssembly module, not a component; build the guest for the \
         `wasm32-wasip2` target (`cargo build --release --target wasm32-wasip2`), or wrap a core \
         module with `wasm-tools component new`"
    )]
    CoreModule { path: PathBuf },
    #[error("{path} is not a valid WebAssembly component: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path} does not implement the `spillway:pipeline/pipeline@0.1.0` world: {reason}")]
    WrongWorld { path: PathBuf, reason: String },
    #[error("the pipeline graph of {path} is invalid: {reason}")]
    BadGraph { path: PathBuf, reason: String },
}

/// A compiled, validated pipeline component, shared by every worker thread of a process.
pub struct GuestModule {
    engine: Engine,
    path: PathBuf,
    name: String,
    pre: PipelinePre<GuestState>,
    graph: Graph,
    fingerprint: u64,
}

impl GuestModule {
    /// Reads, checks and compiles the component at `path` and asks it for its graph.
    ///
    /// # Errors
    /// A [`ModuleError`] naming what is wrong with the file, or the guest's own failure
    /// while describing itself.
    pub fn load(engine: &Engine, path: &Path, limits: &Limits) -> Result<Arc<Self>> {
        let bytes = read_checked(path, limits.max_module_bytes)?;
        Self::from_bytes(engine, path, bytes, limits)
    }

    /// Checks and compiles `bytes`, read from `path`, and asks the component for its graph.
    /// The compiled artifact is taken from (or stored in) `limits.compile_cache`.
    ///
    /// # Errors
    /// As [`GuestModule::load`].
    pub fn from_bytes(
        engine: &Engine,
        path: &Path,
        bytes: Vec<u8>,
        limits: &Limits,
    ) -> Result<Arc<Self>> {
        check_header(path, &bytes, limits.max_module_bytes)?;
        let started = std::time::Instant::now();
        let (component, outcome) =
            super::cache::compile(engine, &bytes, limits.compile_cache.as_deref()).map_err(
                |e| ModuleError::Invalid {
                    path: path.to_owned(),
                    reason: one_line(&format!("{e:#}")),
                },
            )?;
        tracing::debug!(
            "{}: {outcome:?} in {:.1} ms",
            path.display(),
            started.elapsed().as_secs_f64() * 1e3
        );
        let missing: Vec<&str> = ["describe", "transform", "aggregate", "finish"]
            .into_iter()
            .filter(|name| component.get_export_index(None, name).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(ModuleError::WrongWorld {
                path: path.to_owned(),
                reason: format!("it does not export {}", missing.join(", ")),
            }
            .into());
        }
        let mut linker = Linker::<GuestState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let wrong_world = |e: wasmtime::Error| ModuleError::WrongWorld {
            path: path.to_owned(),
            reason: one_line(&format!("{e:#}")),
        };
        let instance_pre = linker.instantiate_pre(&component).map_err(wrong_world)?;
        let pre = PipelinePre::new(instance_pre).map_err(wrong_world)?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let fingerprint = xxhash_rust::xxh3::xxh3_64(&bytes);
        let mut module = Arc::new(Self {
            engine: engine.clone(),
            path: path.to_owned(),
            name,
            pre,
            graph: Graph { nodes: Vec::new() },
            fingerprint,
        });
        let graph = GuestInstance::new(Arc::clone(&module), limits)?.describe()?;
        validate_graph(&graph).map_err(|reason| ModuleError::BadGraph {
            path: path.to_owned(),
            reason,
        })?;
        Arc::get_mut(&mut module)
            .expect("the describing instance is dropped")
            .graph = graph;
        Ok(module)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(super) fn pre(&self) -> &PipelinePre<GuestState> {
        &self.pre
    }

    /// The file name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// A hash of the module's bytes.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// A hash of the graph's shape: names, operators, windows and edges. Snapshots made by
    /// a module with the same graph can be resumed even if its code changed.
    pub fn graph_fingerprint(&self) -> u64 {
        graph_fingerprint(&self.graph)
    }

    /// What a snapshot records about the pipeline that made it.
    pub fn identity(&self) -> crate::state::snapshot::PipelineIdentity {
        crate::state::snapshot::PipelineIdentity {
            module: self.name.clone(),
            module_fingerprint: format!("{:016x}", self.fingerprint),
            graph_fingerprint: format!("{:016x}", self.graph_fingerprint()),
        }
    }

    /// The name of node `node`, for messages.
    pub fn node_name(&self, node: u32) -> &str {
        self.graph
            .nodes
            .get(node as usize)
            .map_or("<unknown>", |n| n.name.as_str())
    }
}

/// See [`GuestModule::graph_fingerprint`].
fn graph_fingerprint(graph: &Graph) -> u64 {
    let mut canonical = String::new();
    for node in &graph.nodes {
        let op = match &node.op {
            Operator::Source(name) => format!("source:{name}"),
            Operator::Transform => "transform".to_owned(),
            Operator::Aggregate(spec) => {
                let window = match spec.window {
                    super::Window::Global => "global".to_owned(),
                    super::Window::Tumbling(ms) => format!("tumbling:{ms}"),
                    super::Window::Sliding(w) => format!("sliding:{}:{}", w.size_ms, w.slide_ms),
                };
                format!("aggregate:{window}:{}", spec.max_out_of_orderness_ms)
            }
            Operator::Sink(name) => format!("sink:{name}"),
        };
        canonical.push_str(&format!("{}|{op}|{:?}\n", node.name, node.inputs));
    }
    xxhash_rust::xxh3::xxh3_64(canonical.as_bytes())
}

fn read_checked(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ModuleError> {
    let read_error = |source| ModuleError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > max_bytes {
        return Err(ModuleError::TooLarge {
            path: path.to_owned(),
            size,
            limit: max_bytes,
        });
    }
    std::fs::read(path).map_err(read_error)
}

/// Checks the size and the preamble: `\0asm`, a version, and the layer (0 for a core module,
/// 1 for a component).
fn check_header(path: &Path, bytes: &[u8], max_bytes: u64) -> Result<(), ModuleError> {
    if bytes.len() as u64 > max_bytes {
        return Err(ModuleError::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
            limit: max_bytes,
        });
    }
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(ModuleError::CoreModule {
            path: path.to_owned(),
        }),
        Some(&[0, b'a', b's', b'm', low, high, 1, 0]) if [low, high] != [0x0d, 0] => {
            Err(ModuleError::Invalid {
                path: path.to_owned(),
                reason: format!(
                    "its component encoding version is {}, and this host reads version 13 \
                     (rebuild the guest with a toolchain that matches this Spillway)",
                    u16::from_le_bytes([low, high])
                ),
            })
        }
        Some([0, b'a', b's', b'm', _, _, 0, 0]) => Err(ModuleError::Invalid {
            path: path.to_owned(),
            reason: "it is a core module of an unknown version".to_owned(),
        }),
        Some([0, b'a', b's', b'm', ..]) => Ok(()),
        _ => Err(ModuleError::NotWasm {
            path: path.to_owned(),
        }),
    }
}

/// Joins the lines of a compiler error into one, for a one-line message.
fn one_line(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    super::truncate(&joined, 600)
}

/// Checks what the host relies on: inputs point to earlier nodes, one input per non-source,
/// unique names, windows of positive size, sliding windows that slide by at most their size.
///
/// # Errors
/// What is wrong, as the end of a sentence ("two nodes are named `x`").
pub fn validate_graph(graph: &Graph) -> Result<(), String> {
    if graph.nodes.is_empty() {
        return Err("it has no nodes".into());
    }
    let mut names = HashSet::new();
    for (index, node) in graph.nodes.iter().enumerate() {
        if !names.insert(node.name.as_str()) {
            return Err(format!("two nodes are named `{}`", node.name));
        }
        let is_source = matches!(node.op, Operator::Source(_));
        match (is_source, node.inputs.as_slice()) {
            (true, []) => {}
            (true, _) => return Err(format!("source `{}` has inputs", node.name)),
            (false, [input]) if (*input as usize) < index => {
                if matches!(graph.nodes[*input as usize].op, Operator::Sink(_)) {
                    return Err(format!("node `{}` reads from a sink", node.name));
                }
            }
            (false, [input]) => {
                return Err(format!(
                    "node `{}` reads from node {input}, which is not an earlier node",
                    node.name
                ));
            }
            (false, inputs) => {
                return Err(format!(
                    "node `{}` has {} inputs; this version supports exactly one",
                    node.name,
                    inputs.len()
                ));
            }
        }
        if let Operator::Aggregate(spec) = &node.op {
            check_window(spec.window)
                .map_err(|problem| format!("aggregate `{}` has {problem}", node.name))?;
        }
    }
    Ok(())
}

/// What is wrong with `window`, as the object of a sentence ("a tumbling window of 0 ms").
fn check_window(window: super::Window) -> Result<(), String> {
    match window {
        super::Window::Tumbling(0) => Err("a tumbling window of 0 ms".into()),
        super::Window::Sliding(w) if w.size_ms == 0 => Err("a sliding window of 0 ms".into()),
        super::Window::Sliding(w) if w.slide_ms == 0 => {
            Err("a sliding window that slides by 0 ms".into())
        }
        super::Window::Sliding(w) if w.slide_ms > w.size_ms => Err(format!(
            "a sliding window that slides by {} ms, more than its size of {} ms \
             (events between windows would belong to none)",
            w.slide_ms, w.size_ms
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{AggregateSpec, Node, SlidingWindow, Window};

    fn graph(window: Window) -> Graph {
        let node = |name: &str, op, inputs: &[u32]| Node {
            name: name.to_owned(),
            op,
            inputs: inputs.to_vec(),
        };
        let spec = AggregateSpec {
            window,
            max_out_of_orderness_ms: 0,
        };
        Graph {
            nodes: vec![
                node("in", Operator::Source("in".to_owned()), &[]),
                node("count", Operator::Aggregate(spec), &[0]),
                node("out", Operator::Sink("out".to_owned()), &[1]),
            ],
        }
    }

    fn sliding(size_ms: u64, slide_ms: u64) -> Window {
        Window::Sliding(SlidingWindow { size_ms, slide_ms })
    }

    #[test]
    fn windows_of_positive_size_are_valid() {
        for window in [
            Window::Global,
            Window::Tumbling(1),
            sliding(10_000, 2_000),
            sliding(10_000, 3_000),
            sliding(5, 5),
            sliding(u64::MAX, 1),
        ] {
            assert_eq!(validate_graph(&graph(window)), Ok(()), "{window:?}");
        }
    }

    #[test]
    fn each_window_has_its_own_graph_fingerprint() {
        let fingerprints: HashSet<u64> = [
            Window::Global,
            Window::Tumbling(10_000),
            sliding(10_000, 10_000),
            sliding(10_000, 2_000),
            sliding(2_000, 2_000),
        ]
        .into_iter()
        .map(|window| graph_fingerprint(&graph(window)))
        .collect();
        assert_eq!(fingerprints.len(), 5);
        assert_eq!(
            graph_fingerprint(&graph(sliding(10_000, 2_000))),
            graph_fingerprint(&graph(sliding(10_000, 2_000)))
        );
    }

    #[test]
    fn empty_or_gapped_windows_are_rejected_by_name() {
        assert_eq!(
            validate_graph(&graph(Window::Tumbling(0))),
            Err("aggregate `count` has a tumbling window of 0 ms".to_owned())
        );
        assert_eq!(
            validate_graph(&graph(sliding(0, 0))),
            Err("aggregate `count` has a sliding window of 0 ms".to_owned())
        );
        assert_eq!(
            validate_graph(&graph(sliding(1_000, 0))),
            Err("aggregate `count` has a sliding window that slides by 0 ms".to_owned())
        );
        assert_eq!(
            validate_graph(&graph(sliding(1_000, 2_000))),
            Err(
                "aggregate `count` has a sliding window that slides by 2000 ms, more than its \
                 size of 1000 ms (events between windows would belong to none)"
                    .to_owned()
            )
        );
    }
}
