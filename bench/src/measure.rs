//! Runs a child process and measures it from the outside: wall time, and from `wait4` the
//! CPU time and peak resident set of the child and of every descendant it waited for.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

#[derive(Debug, Clone)]
pub struct Measured {
    pub wall: Duration,
    /// User plus system time.
    pub cpu: Duration,
    /// Largest resident set of the child or any one waited-for descendant. Linux counts the
    /// parent's peak at the time of the spawn too, so the caller keeps its own small.
    pub peak_rss_kib: u64,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end; an unsuccessful exit is an error that shows its stderr.
pub fn run(command: &mut Command) -> Result<Measured> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {command:?}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).map(|_| text)
    });
    let mut out_text = String::new();
    stdout.read_to_string(&mut out_text)?;
    let err_text = err_reader.join().expect("stderr reader")?;
    let (status, usage) = wait4(child.id())?;
    let wall = started.elapsed();
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{command:?} failed (wait status {status}):\n{err_text}");
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    Ok(Measured {
        wall,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        peak_rss_kib: usage.ru_maxrss as u64,
        stdout: out_text,
        stderr: err_text,
    })
}

#[allow(unsafe_code)]
fn wait4(pid: u32) -> Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, and wait4 only writes to the two
    // pointers, which outlive the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    if reaped < 0 {
        bail!("wait4 on {pid}: {}", std::io::Error::last_os_error());
    }
    Ok((status, usage))
}
