//! The Nexmark benchmark's events (persons, auctions, bids), generated rather than read.
//!
//! Unlike the line sources, every worker generates: worker `w` of `p` takes the events
//! numbered `w, w + p, w + 2p, ...` of one reproducible sequence, so generation scales with
//! the workers. All workers advance through the global sequence in the same steps, so a
//! position is one number, the count of global events done, valid for any worker count.

use anyhow::{Result, bail};
use nexmark::EventGenerator;
use spillway_nexmark::{generate, record};

use super::Read;
use crate::state::SourcePosition;

pub struct NexmarkSource {
    /// Global events done by every worker: the position.
    done: u64,
    /// Global event count at which the input ends (`None`: never).
    end: Option<u64>,
    /// This worker's share, positioned at its first event at or after `done`.
    generator: EventGenerator,
}

impl NexmarkSource {
    /// Opens the source for worker `worker` of `peers`, positioned at `from` when resuming.
    pub fn open(
        events: Option<u64>,
        worker: usize,
        peers: usize,
        from: Option<&SourcePosition>,
    ) -> Result<Self> {
        let done = match from {
            None => 0,
            Some(SourcePosition::Generated { events }) => *events,
            Some(other) => bail!("snapshot holds {other:?} for a nexmark source"),
        };
        Ok(Self {
            done,
            end: events,
            generator: generate::events(done, worker as u64, peers as u64),
        })
    }

    /// Appends this worker's events among the next `span` global events, never passing
    /// global event `until`, each as a record with no key and time 0.
    pub fn read_batch(&mut self, span: u64, until: u64, batch: &mut Vec<u8>) -> Read {
        let limit = self.end.map_or(until, |end| end.min(until));
        if self.done >= limit {
            return match self.end {
                Some(end) if self.done >= end => Read::Ended,
                _ => Read::Records(0),
            };
        }
        self.done = limit.min(self.done.saturating_add(span.max(1)));
        let mut count = 0;
        while self.generator.offset() < self.done {
            let event = self.generator.next().expect("the generator never ends");
            spillway_frame::write_event_with(batch, None, 0, |value| record::write(&event, value));
            count += 1;
        }
        Read::Records(count)
    }

    /// Global events done: where a restart resumes.
    pub fn position(&self) -> SourcePosition {
        SourcePosition::Generated { events: self.done }
    }

    /// Global events done by every worker.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Global events not generated yet (0 for an endless source).
    pub fn unread(&self) -> u64 {
        self.end.map_or(0, |end| end.saturating_sub(self.done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(source: &mut NexmarkSource, span: u64, until: u64) -> (Read, Vec<Vec<u8>>) {
        let mut batch = Vec::new();
        let read = source.read_batch(span, until, &mut batch);
        let records = spillway_frame::EventReader::new(&batch)
            .map(|e| e.unwrap().value.to_vec())
            .collect();
        (read, records)
    }

    #[test]
    fn two_workers_generate_the_one_sequence_between_them() {
        let mut alone = NexmarkSource::open(Some(10), 0, 1, None).unwrap();
        let (_, whole) = records(&mut alone, 100, u64::MAX);
        assert_eq!(whole.len(), 10);
        let mut even = NexmarkSource::open(Some(10), 0, 2, None).unwrap();
        let mut odd = NexmarkSource::open(Some(10), 1, 2, None).unwrap();
        let (read, first) = records(&mut even, 6, u64::MAX);
        assert_eq!((read, first.len()), (Read::Records(3), 3));
        assert_eq!(first, [&whole[0][..], &whole[2], &whole[4]]);
        let (_, rest) = records(&mut even, 6, u64::MAX);
        assert_eq!(rest, [&whole[6][..], &whole[8]]);
        assert_eq!(records(&mut even, 6, u64::MAX).0, Read::Ended);
        let (_, odds) = records(&mut odd, 100, u64::MAX);
        assert_eq!(
            odds,
            [&whole[1][..], &whole[3], &whole[5], &whole[7], &whole[9]]
        );
    }

    #[test]
    fn stops_at_the_bound_and_resumes_from_the_position() {
        let mut first = NexmarkSource::open(None, 0, 1, None).unwrap();
        let (read, head) = records(&mut first, 100, 4);
        assert_eq!(read, Read::Records(4));
        assert_eq!(records(&mut first, 100, 4).0, Read::Records(0));
        assert_eq!(first.position(), SourcePosition::Generated { events: 4 });
        let (_, tail) = records(&mut first, 3, 100);
        // A restart with two workers at the same position carries on the same sequence.
        let position = first.position();
        let mut resumed = NexmarkSource::open(None, 1, 2, Some(&position)).unwrap();
        let (_, next) = records(&mut resumed, 2, 100);
        let mut again = NexmarkSource::open(None, 0, 1, None).unwrap();
        let (_, whole) = records(&mut again, 9, 100);
        assert_eq!([head, tail].concat(), whole[..7]);
        assert_eq!(next, [&whole[8][..]]);
    }
}
