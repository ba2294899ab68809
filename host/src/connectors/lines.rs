//! Line-oriented text: a file (read to its end, or followed as it grows), a directory of
//! files, or standard input read as one event per line; and a file or standard output
//! written as one record per line. Sources report their position in whole lines so a
//! restart can resume exactly there; file sinks can be truncated to a committed length.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::{SinkBinding, SourceBinding};
use crate::state::SourcePosition;

/// What a read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// This many events were appended.
    Records(usize),
    /// A followed input has no new complete line yet.
    Idle,
    /// The input has ended.
    Ended,
}

/// Reads events, one per line, without the line terminator (`\n` or `\r\n`).
pub struct LineSource {
    input: Input,
    /// Bytes of a line read so far, waiting for its newline (followed inputs only).
    partial: Vec<u8>,
    /// Lines consumed from a file since the job began (resumed from the snapshot).
    lines: u64,
}

enum Input {
    File {
        reader: BufReader<File>,
        path: PathBuf,
        offset: u64,
        follow: bool,
    },
    Directory {
        dir: PathBuf,
        current: Option<(String, BufReader<File>)>,
        offset: u64,
    },
    Stdin {
        reader: BufReader<io::Stdin>,
        records: u64,
    },
}

impl LineSource {
    /// Opens `binding`, positioned at `from` when resuming.
    pub fn open(binding: &SourceBinding, from: Option<&SourcePosition>) -> Result<Self> {
        let input = match (binding, from) {
            (
                SourceBinding::File(path)
                | SourceBinding::Tail(path)
                | SourceBinding::Replay { path, .. },
                position,
            ) => {
                let offset = match position {
                    None => 0,
                    Some(SourcePosition::File { offset, .. }) => *offset,
                    Some(other) => bail!("snapshot holds {other:?} for file {}", path.display()),
                };
                let reader = open_at(path, offset)?;
                let follow = matches!(binding, SourceBinding::Tail(_));
                Input::File {
                    reader,
                    path: path.clone(),
                    offset,
                    follow,
                }
            }
            (SourceBinding::Directory(dir), position) => {
                let (current, offset) = match position {
                    None => (None, 0),
                    Some(SourcePosition::Directory { file, .. }) if file.is_empty() => (None, 0),
                    Some(SourcePosition::Directory { file, offset }) => {
                        let reader = open_at(&dir.join(file), *offset)?;
                        (Some((file.clone(), reader)), *offset)
                    }
                    Some(other) => {
                        bail!("snapshot holds {other:?} for directory {}", dir.display())
                    }
                };
                Input::Directory {
                    dir: dir.clone(),
                    current,
                    offset,
                }
            }
            (SourceBinding::Stdin, Some(_)) => {
                bail!("standard input cannot be resumed from a snapshot; bind the source to a file")
            }
            (SourceBinding::Stdin, None) => Input::Stdin {
                reader: BufReader::new(io::stdin()),
                records: 0,
            },
            (SourceBinding::Nexmark { .. }, _) => bail!("a nexmark source has no lines"),
        };
        let lines = match from {
            Some(SourcePosition::File { lines, .. }) => *lines,
            _ => 0,
        };
        Ok(Self {
            input,
            partial: Vec::new(),
            lines,
        })
    }

    /// Where the next read starts.
    pub fn position(&self) -> SourcePosition {
        match &self.input {
            Input::File { offset, .. } => SourcePosition::File {
                offset: *offset,
                lines: self.lines,
            },
            Input::Directory {
                current, offset, ..
            } => SourcePosition::Directory {
                file: current
                    .as_ref()
                    .map(|(name, _)| name.clone())
                    .unwrap_or_default(),
                offset: *offset,
            },
            Input::Stdin { records, .. } => SourcePosition::Stdin { records: *records },
        }
    }

    /// Lines consumed from a file since the job began.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Lines of the current file not read yet, estimated from the bytes left and the mean
    /// line length so far (0 for standard input).
    pub fn unread_lines(&self) -> u64 {
        let (path, offset) = match &self.input {
            Input::File { path, offset, .. } => (path.clone(), *offset),
            Input::Directory {
                dir,
                current: Some((name, _)),
                offset,
            } => (dir.join(name), *offset),
            _ => return 0,
        };
        let unread = std::fs::metadata(path).map_or(0, |m| m.len().saturating_sub(offset));
        let mean_line = if self.lines > 0 && offset > 0 {
            (offset / self.lines).max(1)
        } else {
            100
        };
        unread.div_ceil(mean_line)
    }

    /// Appends up to `max` lines to `batch` as events (no key, time 0).
    pub fn read_batch(&mut self, max: usize, batch: &mut Vec<u8>) -> Result<Read> {
        let mut count = 0;
        while count < max {
            match self.read_line()? {
                Some(line) => {
                    spillway_frame::write_event(batch, None, 0, trim_newline(&line));
                    count += 1;
                    self.lines += 1;
                }
                None if count > 0 => break,
                None => {
                    return Ok(if self.follows() {
                        Read::Idle
                    } else {
                        Read::Ended
                    });
                }
            }
        }
        Ok(Read::Records(count))
    }

    fn follows(&self) -> bool {
        matches!(
            self.input,
            Input::File { follow: true, .. } | Input::Directory { .. }
        )
    }

    /// The next complete line, advancing the position past it; `None` at the end (for
    /// now, when following).
    fn read_line(&mut self) -> Result<Option<Vec<u8>>> {
        let follows = self.follows();
        loop {
            let (reader, offset, describe): (&mut dyn BufRead, &mut u64, String) =
                match &mut self.input {
                    Input::File {
                        reader,
                        path,
                        offset,
                        ..
                    } => (reader, offset, path.display().to_string()),
                    Input::Stdin { reader, records } => {
                        let mut line = Vec::new();
                        let read = reader
                            .read_until(b'\n', &mut line)
                            .context("cannot read standard input")?;
                        if read == 0 {
                            return Ok(None);
                        }
                        *records += 1;
                        return Ok(Some(line));
                    }
                    Input::Directory {
                        dir,
                        current,
                        offset,
                    } => {
                        if current.is_none() && !advance_directory(dir, current, offset, None)? {
                            return Ok(None);
                        }
                        let (name, reader) = current.as_mut().expect("a current file");
                        (
                            reader,
                            offset,
                            dir.join(name.as_str()).display().to_string(),
                        )
                    }
                };
            reader
                .read_until(b'\n', &mut self.partial)
                .with_context(|| format!("cannot read {describe}"))?;
            // Without a newline, read_until stopped at the end of the input.
            if self.partial.ends_with(b"\n") || (!follows && !self.partial.is_empty()) {
                *offset += self.partial.len() as u64;
                return Ok(Some(std::mem::take(&mut self.partial)));
            }
            // At the end for now; a directory moves on once a later file exists.
            if let Input::Directory {
                dir,
                current,
                offset,
            } = &mut self.input
            {
                let name = current.as_ref().map(|(name, _)| name.clone());
                if advance_directory(dir, current, offset, name.as_deref())? {
                    // A later file exists, so this one is complete, last line included.
                    if !self.partial.is_empty() {
                        return Ok(Some(std::mem::take(&mut self.partial)));
                    }
                    continue;
                }
            }
            return Ok(None);
        }
    }
}

/// Opens the first file of `dir` that sorts after `after`; false if there is none yet.
fn advance_directory(
    dir: &Path,
    current: &mut Option<(String, BufReader<File>)>,
    offset: &mut u64,
    after: Option<&str>,
) -> Result<bool> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.') && after.is_none_or(|after| name.as_str() > after))
        .collect();
    names.sort();
    let Some(next) = names.into_iter().next() else {
        return Ok(false);
    };
    let reader = open_at(&dir.join(&next), 0)?;
    *current = Some((next, reader));
    *offset = 0;
    Ok(true)
}

fn open_at(path: &Path, offset: u64) -> Result<BufReader<File>> {
    let mut file =
        File::open(path).with_context(|| format!("cannot open source file {}", path.display()))?;
    let length = file.metadata()?.len();
    if offset > length {
        bail!(
            "source file {} is {length} bytes, shorter than the {offset} bytes already read \
             (was it replaced or truncated?)",
            path.display()
        );
    }
    file.seek(SeekFrom::Start(offset))?;
    Ok(BufReader::with_capacity(1 << 16, file))
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Writes one record per line.
pub struct LineSink {
    writer: Box<dyn Write>,
    describe: String,
    /// Bytes in the file (records written, flushed or not).
    length: u64,
}

impl LineSink {
    /// Opens the sink. A file is truncated to `committed` bytes (0 for a fresh start), so
    /// output after the last snapshot is written again exactly once.
    pub fn open(binding: &SinkBinding, committed: u64) -> Result<Self> {
        let writer: Box<dyn Write> = match binding {
            SinkBinding::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).with_context(|| {
                        format!("cannot create directory {} for a sink", parent.display())
                    })?;
                }
                let mut file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(committed == 0)
                    .open(path)
                    .with_context(|| format!("cannot create sink file {}", path.display()))?;
                let length = file.metadata()?.len();
                if length < committed {
                    bail!(
                        "sink file {} is {length} bytes, shorter than the {committed} bytes \
                         committed by the snapshot (was it changed by hand?)",
                        path.display()
                    );
                }
                file.set_len(committed)?;
                file.seek(SeekFrom::Start(committed))?;
                Box::new(BufWriter::with_capacity(1 << 16, file))
            }
            SinkBinding::Stdout => Box::new(BufWriter::new(io::stdout())),
            SinkBinding::Discard => Box::new(io::sink()),
        };
        Ok(Self {
            writer,
            describe: binding.to_string(),
            length: committed,
        })
    }

    pub fn write_record(&mut self, record: &[u8]) -> Result<()> {
        self.writer
            .write_all(record)
            .and_then(|()| self.writer.write_all(b"\n"))
            .with_context(|| format!("cannot write to {}", self.describe))?;
        self.length += record.len() as u64 + 1;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.writer
            .flush()
            .with_context(|| format!("cannot write to {}", self.describe))
    }

    /// Bytes written so far, including what was committed before this run.
    pub fn length(&self) -> u64 {
        self.length
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(source: &mut LineSource) -> (Vec<String>, Read) {
        let mut batch = Vec::new();
        let outcome = source.read_batch(100, &mut batch).unwrap();
        let lines = spillway_frame::EventReader::new(&batch)
            .map(|e| String::from_utf8(e.unwrap().value.to_vec()).unwrap())
            .collect();
        (lines, outcome)
    }

    #[test]
    fn file_resumes_at_its_position_and_emits_a_last_line_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "one\r\ntwo\nthree").unwrap();
        let binding = SourceBinding::File(path);
        let mut source = LineSource::open(&binding, None).unwrap();
        let mut batch = Vec::new();
        assert_eq!(source.read_batch(1, &mut batch).unwrap(), Read::Records(1));
        let position = source.position();
        assert_eq!(
            position,
            SourcePosition::File {
                offset: 5,
                lines: 1
            }
        );
        let mut resumed = LineSource::open(&binding, Some(&position)).unwrap();
        assert_eq!(
            read_all(&mut resumed),
            (vec!["two".into(), "three".into()], Read::Records(2))
        );
        assert_eq!(read_all(&mut resumed).1, Read::Ended);
    }

    #[test]
    fn tail_waits_for_the_rest_of_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grow.txt");
        std::fs::write(&path, "a\nhal").unwrap();
        let mut source = LineSource::open(&SourceBinding::Tail(path.clone()), None).unwrap();
        assert_eq!(read_all(&mut source), (vec!["a".into()], Read::Records(1)));
        assert_eq!(read_all(&mut source).1, Read::Idle);
        assert_eq!(
            source.position(),
            SourcePosition::File {
                offset: 2,
                lines: 1
            }
        );
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"f\nb\n").unwrap();
        assert_eq!(
            read_all(&mut source),
            (vec!["half".into(), "b".into()], Read::Records(2))
        );
        assert_eq!(
            source.position(),
            SourcePosition::File {
                offset: 9,
                lines: 3
            }
        );
    }

    #[test]
    fn directory_reads_files_in_name_order_and_picks_up_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.log"), "b1\n").unwrap();
        std::fs::write(dir.path().join("a.log"), "a1\na2\n").unwrap();
        let binding = SourceBinding::Directory(dir.path().to_owned());
        let mut source = LineSource::open(&binding, None).unwrap();
        assert_eq!(read_all(&mut source).0, ["a1", "a2", "b1"]);
        assert_eq!(read_all(&mut source).1, Read::Idle);
        std::fs::write(dir.path().join("c.log"), "c1\n").unwrap();
        let position = source.position();
        assert_eq!(read_all(&mut source).0, ["c1"]);
        let mut resumed = LineSource::open(&binding, Some(&position)).unwrap();
        assert_eq!(read_all(&mut resumed).0, ["c1"]);
    }

    #[test]
    fn sink_truncates_to_the_committed_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "kept\nuncommitted\n").unwrap();
        let binding = SinkBinding::File(path.clone());
        let mut sink = LineSink::open(&binding, 5).unwrap();
        sink.write_record(b"again").unwrap();
        sink.flush().unwrap();
        assert_eq!(sink.length(), 11);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "kept\nagain\n");
        let error = LineSink::open(&binding, 100).err().unwrap().to_string();
        assert!(error.contains("shorter than the 100 bytes"), "{error}");
    }
}
