//! Builds arbitrary pipeline graphs (what a guest's `describe` returns) and validates them:
//! the validation must never panic, and a graph it accepts must satisfy what the dataflow
//! builder relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spillway::runtime::{
    AggregateSpec, Graph, Node, Operator, SlidingWindow, Window, validate_graph,
};

fuzz_target!(|data: &[u8]| {
    let mut nodes = Vec::new();
    for chunk in data.chunks(4).take(64) {
        let [kind, name, a, b] = [0, 1, 2, 3].map(|i| chunk.get(i).copied().unwrap_or(0));
        let op = match kind % 4 {
            0 => Operator::Source(format!("s{}", name % 4)),
            1 => Operator::Transform,
            2 => Operator::Aggregate(AggregateSpec {
                window: match a % 3 {
                    0 => Window::Global,
                    1 => Window::Tumbling(u64::from(b % 3)),
                    _ => Window::Sliding(SlidingWindow {
                        size_ms: u64::from(b % 4),
                        slide_ms: u64::from(b / 4 % 4),
                    }),
                },
                max_out_of_orderness_ms: u64::from(b),
            }),
            _ => Operator::Sink(format!("k{}", name % 4)),
        };
        let inputs = (0..kind / 64)
            .map(|i| u32::from(a.wrapping_add(i)))
            .collect();
        nodes.push(Node {
            name: format!("n{}", name % 32),
            op,
            inputs,
        });
    }
    let graph = Graph { nodes };
    if validate_graph(&graph).is_ok() {
        for (index, node) in graph.nodes.iter().enumerate() {
            let is_source = matches!(node.op, Operator::Source(_));
            assert_eq!(node.inputs.is_empty(), is_source);
            for &input in &node.inputs {
                assert!((input as usize) < index);
                assert!(!matches!(graph.nodes[input as usize].op, Operator::Sink(_)));
            }
            if let Operator::Aggregate(spec) = &node.op {
                match spec.window {
                    Window::Global => {}
                    Window::Tumbling(size) => assert!(size > 0),
                    Window::Sliding(w) => assert!(0 < w.slide_ms && w.slide_ms <= w.size_ms),
                }
            }
        }
    }
});
