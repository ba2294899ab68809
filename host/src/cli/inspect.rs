//! `spillway inspect`: validate a component and print its graph.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::config::Limits;
use crate::runtime::{self, GuestModule, Operator, Window};

#[derive(Debug, Args)]
pub struct InspectCommand {
    /// The pipeline component (.wasm).
    pipeline: PathBuf,
}

impl InspectCommand {
    pub fn execute(self) -> Result<()> {
        let engine = runtime::engine()?;
        let module = GuestModule::load(&engine, &self.pipeline, &Limits::default())?;
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
