//! Line-oriented text: a file or standard input read as one event per line, and a file or
//! standard output written as one record per line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};

use anyhow::{Context, Result};

use crate::config::{SinkBinding, SourceBinding};

/// Reads events, one per line, without the line terminator (`\n` or `\r\n`).
pub struct LineSource {
    reader: Box<dyn BufRead + Send>,
    line: Vec<u8>,
    describe: String,
}

impl LineSource {
    pub fn open(binding: &SourceBinding) -> Result<Self> {
        let (reader, describe): (Box<dyn BufRead + Send>, String) = match binding {
            SourceBinding::File(path) => {
                let file = File::open(path)
                    .with_context(|| format!("cannot open source file {}", path.display()))?;
                (
                    Box::new(BufReader::with_capacity(1 << 16, file)),
                    path.display().to_string(),
                )
            }
            SourceBinding::Stdin => (
                Box::new(BufReader::new(io::stdin())),
                "standard input".to_owned(),
            ),
        };
        Ok(Self {
            reader,
            line: Vec::new(),
            describe,
        })
    }

    /// Appends up to `max` lines to `batch` as events (no key, time 0) and returns how many
    /// it read; 0 means the input has ended.
    pub fn read_batch(&mut self, max: usize, batch: &mut Vec<u8>) -> Result<usize> {
        for count in 0..max {
            self.line.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.line)
                .with_context(|| format!("cannot read {}", self.describe))?;
            if read == 0 {
                return Ok(count);
            }
            let mut line = self.line.as_slice();
            line = line.strip_suffix(b"\n").unwrap_or(line);
            line = line.strip_suffix(b"\r").unwrap_or(line);
            spillway_frame::write_event(batch, None, 0, line);
        }
        Ok(max)
    }
}

/// Writes one record per line.
pub struct LineSink {
    writer: Box<dyn Write>,
    describe: String,
}

impl LineSink {
    /// Creates (or truncates) the file.
    pub fn create(binding: &SinkBinding) -> Result<Self> {
        let writer: Box<dyn Write> = match binding {
            SinkBinding::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).with_context(|| {
                        format!("cannot create directory {} for a sink", parent.display())
                    })?;
                }
                let file = File::create(path)
                    .with_context(|| format!("cannot create sink file {}", path.display()))?;
                Box::new(BufWriter::with_capacity(1 << 16, file))
            }
            SinkBinding::Stdout => Box::new(BufWriter::new(io::stdout())),
        };
        Ok(Self {
            writer,
            describe: binding.to_string(),
        })
    }

    pub fn write_record(&mut self, record: &[u8]) -> Result<()> {
        self.writer
            .write_all(record)
            .and_then(|()| self.writer.write_all(b"\n"))
            .with_context(|| format!("cannot write to {}", self.describe))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.writer
            .flush()
            .with_context(|| format!("cannot write to {}", self.describe))
    }
}
