//! Guest stdout and stderr: captured in memory, bounded, and sent to the host log after each
//! call, tagged with the worker and the operator. Nothing a guest prints reaches the host's
//! own stdout or stderr directly.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of guest output kept per call; the rest of the call's output is dropped.
pub const CALL_OUTPUT_LIMIT: usize = 16 << 10;
/// Bytes of guest output logged per instance; after that, output is dropped.
pub const INSTANCE_OUTPUT_LIMIT: u64 = 1 << 20;
/// Bytes of the end of a call's stderr kept for the error message when the call fails.
const STDERR_TAIL: usize = 2 << 10;

/// Which of the guest's two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The output of one guest instance, shared by its two streams and the host.
#[derive(Clone, Default)]
pub struct GuestOutput {
    captured: Arc<Mutex<Captured>>,
}

#[derive(Default)]
struct Captured {
    /// This call's output so far, in order, as (stream, bytes) runs.
    runs: Vec<(Stream, Vec<u8>)>,
    call_bytes: usize,
    /// Bytes of this call that did not fit.
    dropped: u64,
    /// Output of this instance kept so far, over all calls.
    instance_bytes: u64,
    /// The last bytes of this call's stderr, kept whatever the limits.
    stderr_tail: Vec<u8>,
}

/// One line of guest output, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub stream: Stream,
    pub text: String,
}

/// What a call printed, taken after the call.
#[derive(Debug, Default)]
pub struct CallOutput {
    pub lines: Vec<OutputLine>,
    /// Bytes dropped by the per-call or per-instance limit.
    pub dropped: u64,
    /// The last lines of stderr (such as a panic message), without Rust's backtrace hint.
    pub stderr_tail: Vec<String>,
}

impl GuestOutput {
    /// A stream for the guest's `stream`.
    pub fn stream(&self, stream: Stream) -> GuestStream {
        GuestStream {
            output: self.clone(),
            stream,
        }
    }

    fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut captured = self.captured.lock().unwrap();
        if stream == Stream::Stderr {
            let tail = &mut captured.stderr_tail;
            tail.extend_from_slice(bytes);
            if tail.len() > STDERR_TAIL {
                tail.drain(..tail.len() - STDERR_TAIL);
            }
        }
        let room_in_call = CALL_OUTPUT_LIMIT.saturating_sub(captured.call_bytes);
        let room_in_instance = INSTANCE_OUTPUT_LIMIT.saturating_sub(captured.instance_bytes);
        let keep = bytes.len().min(room_in_call).min(room_in_instance as usize);
        captured.dropped += (bytes.len() - keep) as u64;
        if keep == 0 {
            return;
        }
        captured.call_bytes += keep;
        captured.instance_bytes += keep as u64;
        match captured.runs.last_mut() {
            Some((last, run)) if *last == stream => run.extend_from_slice(&bytes[..keep]),
            _ => captured.runs.push((stream, bytes[..keep].to_vec())),
        }
    }

    /// Takes what the call printed, and starts the next call afresh.
    pub fn take_call(&self) -> CallOutput {
        let mut captured = self.captured.lock().unwrap();
        let runs = std::mem::take(&mut captured.runs);
        let tail = std::mem::take(&mut captured.stderr_tail);
        let dropped = std::mem::take(&mut captured.dropped);
        captured.call_bytes = 0;
        drop(captured);
        let lines = runs
            .iter()
            .flat_map(|(stream, bytes)| {
                String::from_utf8_lossy(bytes)
                    .lines()
                    .filter(|line| !line.trim().is_empty())
                    .map(|text| OutputLine {
                        stream: *stream,
                        text: text.to_owned(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let stderr_tail = String::from_utf8_lossy(&tail)
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("note: run with `RUST_BACKTRACE"))
            .map(str::to_owned)
            .collect::<Vec<_>>();
        // The tail may start in the middle of a line; keep the last few whole lines.
        let skip = stderr_tail.len().saturating_sub(4);
        CallOutput {
            lines,
            dropped,
            stderr_tail: stderr_tail[skip..].to_vec(),
        }
    }
}

/// One of a guest's output streams (what WASI hands the guest as stdout or stderr).
pub struct GuestStream {
    output: GuestOutput,
    stream: Stream,
}

/// The stream the WASI context hands out: a fresh [`GuestStream`] each time.
pub struct GuestStdio {
    output: GuestOutput,
    stream: Stream,
}

impl GuestStdio {
    pub fn new(output: &GuestOutput, stream: Stream) -> Self {
        Self {
            output: output.clone(),
            stream,
        }
    }
}

impl IsTerminal for GuestStdio {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStdio {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.output.stream(self.stream))
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.output.stream(self.stream))
    }
}

impl OutputStream for GuestStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.output.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready: what does not fit the limits is dropped, never an error for the guest.
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.output.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_in_order_and_drops_past_the_call_limit() {
        let output = GuestOutput::default();
        output.write(Stream::Stdout, b"one\n");
        output.write(Stream::Stderr, b"two\nthree\n");
        output.write(Stream::Stdout, &vec![b'x'; CALL_OUTPUT_LIMIT]);
        let call = output.take_call();
        assert_eq!(call.lines[0].text, "one");
        assert_eq!(call.lines[1].stream, Stream::Stderr);
        assert_eq!(call.lines[2].text, "three");
        assert_eq!(call.dropped, 14);
        assert_eq!(call.stderr_tail, ["two", "three"]);
        // The next call starts afresh.
        output.write(
            Stream::Stderr,
            b"thread '<unnamed>' panicked at src/lib.rs:1:1:\nboom\n",
        );
        output.write(
            Stream::Stderr,
            b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        );
        let call = output.take_call();
        assert_eq!(call.dropped, 0);
        assert_eq!(
            call.stderr_tail,
            ["thread '<unnamed>' panicked at src/lib.rs:1:1:", "boom"]
        );
    }

    #[test]
    fn stops_keeping_output_past_the_instance_limit() {
        let output = GuestOutput::default();
        let chunk = vec![b'y'; CALL_OUTPUT_LIMIT];
        let calls = INSTANCE_OUTPUT_LIMIT as usize / CALL_OUTPUT_LIMIT;
        for _ in 0..calls {
            output.write(Stream::Stdout, &chunk);
            assert_eq!(output.take_call().dropped, 0);
        }
        output.write(Stream::Stdout, b"more\n");
        let call = output.take_call();
        assert!(call.lines.is_empty());
        assert_eq!(call.dropped, 5);
    }
}
