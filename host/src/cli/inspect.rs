//! `spillway inspect`: validate a component and print its graph.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use crate::config::{self, Limits};
use crate::runtime::{self, GuestModule, Operator, Window};

#[derive(Debug, Args)]
pub struct InspectCommand {
    /// The pipeline component (.wasm).
    pipeline: PathBuf,
    /// Largest accepted pipeline file, in MiB [default: 64].
    #[arg(long, value_name = "MIB")]
    max_module_mib: Option<u64>,
    /// Compiled-module cache directory, or `off` [default: $XDG_CACHE_HOME/spillway or
    /// ~/.cache/spillway].
    #[arg(long, value_name = "DIR", env = "SPILLWAY_COMPILE_CACHE")]
    compile_cache: Option<String>,
}

impl InspectCommand {
    pub fn execute(self) -> Result<()> {
        let defaults = Limits::default();
        let limits = Limits {
            max_module_bytes: self
                .max_module_mib
                .map_or(defaults.max_module_bytes, |m| m << 20),
            compile_cache: config::compile_cache_dir(self.compile_cache.as_deref(), Path::new("")),
            ..defaults
        };
        let engine = runtime::engine(&limits)?;
        let module = GuestModule::load(&engine, &self.pipeline, &limits)?;
        println!(
            "{}: a valid spillway:pipeline component",
            module.path().display()
        );
        println!("fingerprint: {:016x}", module.fingerprint());
        let nodes = &module.graph().nodes;
        for (index, node) in nodes.iter().enumerate() {
            let what = match &node.op {
                Operator::Source(name) => format!("source `{name}`"),
                Operator::Transform => "transform".to_owned(),
                Operator::Aggregate(spec) => {
                    let window = match spec.window {
                        Window::Global => "whole input".to_owned(),
                        Window::Tumbling(ms) => format!("tumbling {ms} ms"),
                        Window::Sliding(w) => {
                            format!("sliding {} ms every {} ms", w.size_ms, w.slide_ms)
                        }
                    };
                    format!(
                        "keyed aggregate, window: {window}, out-of-orderness: {} ms",
                        spec.max_out_of_orderness_ms
                    )
                }
                Operator::Sink(name) => format!("sink `{name}`"),
            };
            let from = node
                .inputs
                .iter()
                .map(|&i| nodes.get(i as usize).map_or("?", |n| n.name.as_str()))
                .collect::<Vec<_>>();
            let from = if from.is_empty() {
                String::new()
            } else {
                format!(" <- {}", from.join(", "))
            };
            println!("  [{index}] {}: {what}{from}", node.name);
        }
        Ok(())
    }
}
