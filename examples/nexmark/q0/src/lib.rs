//! Nexmark q0, pass-through: `events` → `out`, every record unchanged. It measures what
//! moving a record through Spillway costs, with no work of its own.

use spillway_guest::Pipeline;

/// Declares the pipeline.
pub fn build(p: &mut Pipeline) {
    p.source("events")
        .transform("pass", |event, out| {
            out.emit(None, event.time, event.value)
        })
        .sink("out");
}

spillway_guest::export_pipeline!(build);

#[cfg(test)]
mod tests {
    use super::*;
    use spillway_guest::local;

    #[test]
    fn passes_every_record_unchanged() {
        let records: &[&[u8]] = &[b"P,1,a", b"B,2,3", b""];
        let run = local::run(&Pipeline::build(build), &[("events", records)]).unwrap();
        assert_eq!(run.sinks["out"], records);
    }
}
