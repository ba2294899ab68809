//! `spillway-bench`: runs the Nexmark queries and wordcount on Spillway and as native Rust
//! loops, and prints one table with throughput per core, the ratio to native, CPU time, peak
//! memory and the cost of snapshots, followed by the targets met or missed.
//!
//! Every figure comes from a child process measured from the outside (wall clock, and CPU
//! time and peak RSS from `wait4`), so Spillway and the baselines are measured alike. Run it
//! through `scripts/bench.sh`, which builds everything it needs in release mode.

mod measure;
mod native;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, ValueEnum};

use measure::Measured;

#[derive(Parser)]
#[command(about = "Benchmarks Spillway against native Rust baselines")]
struct Args {
    /// Nexmark events per run.
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Copies of the access log in the wordcount input (10,000 lines each).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    copies: u32,
    /// Queries to run, separated by commas.
    #[arg(long, value_delimiter = ',', default_values_t = Query::all())]
    queries: Vec<Query>,
    /// Runs of each configuration; the fastest is reported.
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// The spillway binary (a release build).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/spillway"))]
    spillway: PathBuf,
    /// Where the guests' .wasm files are.
    #[arg(
        long,
        default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/target/wasm32-wasip2/release")
    )]
    guests: PathBuf,
    /// The text that the wordcount input repeats.
    #[arg(
        long,
        default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/access-log/data/apache_access.log")
    )]
    text: PathBuf,
    /// Internal: run one native baseline in this process and print its counts.
    #[arg(long, hide = true)]
    native_child: Option<Query>,
    /// Internal: the wordcount input of a native child.
    #[arg(long, hide = true)]
    input: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Query {
    Q0,
    Q1,
    Q2,
    Q5,
    Q7,
    Wordcount,
}

impl Query {
    fn all() -> Vec<Self> {
        Self::value_variants().to_vec()
    }

    fn guest(self) -> &'static str {
        match self {
            Self::Q0 => "nexmark_q0.wasm",
            Self::Q1 => "nexmark_q1.wasm",
            Self::Q2 => "nexmark_q2.wasm",
            Self::Q5 => "nexmark_q5.wasm",
            Self::Q7 => "nexmark_q7.wasm",
            Self::Wordcount => "wordcount.wasm",
        }
    }

    /// The guest's source and sink names.
    fn ports(self) -> (&'static str, &'static str) {
        match self {
            Self::Q5 => ("events", "hot_items"),
            Self::Q7 => ("events", "highest_bids"),
            Self::Wordcount => ("lines", "counts"),
            _ => ("events", "out"),
        }
    }

    /// The throughput target per core, in input records (words for wordcount) per second.
    fn target_per_core(self) -> f64 {
        match self {
            Self::Q5 | Self::Q7 => 300_000.0,
            _ => 1_000_000.0,
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            self.to_possible_value()
                .expect("no skipped variants")
                .get_name(),
        )
    }
}

/// One way of running a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    Native,
    Spillway {
        processes: u32,
        /// `--epoch-records`, when not the default (100,000).
        epoch_records: Option<u64>,
        /// Persistence to a local folder: one snapshot per epoch.
        snapshots: bool,
    },
}

impl Setup {
    /// Whether this is a Spillway run with `processes`, epochs of about a second or not,
    /// and snapshots or not.
    fn is(&self, processes: u32, long_epochs: bool, snapshots: bool) -> bool {
        matches!(*self, Self::Spillway { processes: p, epoch_records, snapshots: s }
            if p == processes && epoch_records.is_some() == long_epochs && s == snapshots)
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Native => f.write_str("native"),
            Self::Spillway {
                processes,
                epoch_records,
                snapshots,
            } => {
                write!(f, "-n {processes} -t 1")?;
                if epoch_records.is_some() {
                    f.write_str(" 1s-epochs")?;
                }
                if *snapshots {
                    f.write_str(" +snap")?;
                }
                Ok(())
            }
        }
    }
}

/// One row of the table.
struct Row {
    query: Query,
    setup: Setup,
    /// Input records: events, or words for wordcount.
    records: u64,
    out: u64,
    run: Measured,
}

impl Row {
    fn cores(&self) -> f64 {
        match self.setup {
            Setup::Native => 1.0,
            Setup::Spillway { processes, .. } => f64::from(processes),
        }
    }

    fn rate(&self) -> f64 {
        self.records as f64 / self.run.wall.as_secs_f64()
    }

    fn rate_per_core(&self) -> f64 {
        self.rate() / self.cores()
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(query) = args.native_child {
        let input = args.input.unwrap_or_default();
        let (out, records) = native::run(query, args.events, &input)?;
        println!("{out} {records}");
        return Ok(());
    }
    for query in &args.queries {
        let guest = args.guests.join(query.guest());
        ensure!(
            guest.is_file(),
            "no guest {}; build the guests first (scripts/bench.sh does)",
            guest.display()
        );
    }
    ensure!(
        args.spillway.is_file(),
        "no spillway binary at {}; build it with `cargo build --release -p spillway`",
        args.spillway.display()
    );
    let scratch = tempfile::tempdir()?;
    let words = scratch.path().join("wordcount-input.txt");
    let lines = match args.queries.contains(&Query::Wordcount) {
        true => write_wordcount_input(&args.text, args.copies, &words)?,
        false => 0,
    };
    print_machine();
    let mut rows = Vec::new();
    for &query in &args.queries {
        let native = best_of(args.runs, || run_native(&args, query, &words))?;
        let records = native.records;
        eprintln!("{query}: native {:.0} records/s", native.rate());
        rows.push(native);
        // Source records per second of the plain -n 1 run: the size of epochs of a second.
        let mut per_second = None;
        let source_records = match query {
            Query::Wordcount => lines,
            _ => args.events,
        };
        for (processes, long_epochs, snapshots) in SPILLWAY_RUNS {
            let epoch_records = long_epochs.then(|| per_second.expect("the -n 1 run is first"));
            let setup = Setup::Spillway {
                processes,
                epoch_records,
                snapshots,
            };
            let row = best_of(args.runs, || {
                run_spillway(
                    &args,
                    query,
                    setup,
                    &words,
                    records,
                    source_records,
                    &scratch,
                )
            })?;
            eprintln!("{query}: {setup} {:.0} records/s", row.rate());
            if setup.is(1, false, false) {
                let rate = source_records as f64 / row.run.wall.as_secs_f64();
                per_second = Some((rate as u64).max(1_000));
            }
            rows.push(row);
        }
    }
    print_table(&rows);
    print_targets(&rows);
    if rows
        .iter()
        .any(|r| r.setup.is(1, false, false) && r.run.wall.as_secs_f64() < 2.0)
    {
        println!(
            "\nnote: some runs took under 2 s, where start-up and single-epoch effects decide \
             the verdicts; use --events 3000000 --copies 60 or more for figures worth quoting."
        );
    }
    Ok(())
}

/// The Spillway runs of each query as (processes, epochs of about a second, snapshots):
/// -n 1, -n 2, then -n 1 with epochs of a second without and with snapshots (their
/// difference is the cost of snapshotting every second).
const SPILLWAY_RUNS: [(u32, bool, bool); 4] = [
    (1, false, false),
    (2, false, false),
    (1, true, false),
    (1, true, true),
];

fn best_of(runs: u32, mut run: impl FnMut() -> Result<Row>) -> Result<Row> {
    let mut best: Option<Row> = None;
    for _ in 0..runs.max(1) {
        let row = run()?;
        if best.as_ref().is_none_or(|b| row.run.wall < b.run.wall) {
            best = Some(row);
        }
    }
    Ok(best.expect("at least one run"))
}

fn run_native(args: &Args, query: Query, words: &Path) -> Result<Row> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("--native-child")
        .arg(query.to_string())
        .arg("--events")
        .arg(args.events.to_string())
        .arg("--input")
        .arg(words);
    let run = measure::run(&mut command)?;
    let counts: Vec<u64> = run
        .stdout
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("native {query} printed `{}`", run.stdout.trim()))?;
    let [out, records] = counts[..] else {
        bail!("native {query} printed `{}`", run.stdout.trim());
    };
    Ok(Row {
        query,
        setup: Setup::Native,
        records,
        out,
        run,
    })
}

fn run_spillway(
    args: &Args,
    query: Query,
    setup: Setup,
    words: &Path,
    records: u64,
    source_records: u64,
    scratch: &tempfile::TempDir,
) -> Result<Row> {
    let Setup::Spillway {
        processes,
        epoch_records,
        snapshots,
    } = setup
    else {
        unreachable!("native runs are not spillway runs")
    };
    let (source, sink) = query.ports();
    let input = match query {
        Query::Wordcount => format!("{source}={}", words.display()),
        _ => format!("{source}=nexmark:?events={}", args.events),
    };
    let mut command = Command::new(&args.spillway);
    command
        .arg("spawn")
        .args(["-n", &processes.to_string(), "-t", "1"])
        .arg(args.guests.join(query.guest()))
        .args(["--source", &input])
        .args(["--sink", &format!("{sink}=null:")]);
    if let Some(records) = epoch_records {
        command.args(["--epoch-records", &records.to_string()]);
    }
    if snapshots {
        let store = scratch.path().join(format!("snapshots-{query}"));
        command
            .arg("--persistence")
            .arg(&store)
            .arg("--fresh-start")
            .args(["--snapshot-interval-ms", "1000"]);
    }
    let run = measure::run(&mut command)?;
    let count = |label| {
        summary_count(&run.stderr, label)
            .with_context(|| format!("no summary from spillway:\n{}", run.stderr))
    };
    let read = count(" events in")?;
    ensure!(
        read == source_records,
        "{query} {setup}: spillway read {read} records, expected {source_records}:\n{}",
        run.stderr
    );
    let out = count(" out,")?;
    Ok(Row {
        query,
        setup,
        records,
        out,
        run,
    })
}

/// The number just before `label` in spillway's `done in ...` line.
fn summary_count(stderr: &str, label: &str) -> Option<u64> {
    let line = stderr.lines().rev().find(|l| l.starts_with("done in"))?;
    let before = &line[..line.find(label)?];
    before.rsplit(' ').next()?.parse().ok()
}

/// The wordcount input: the real access log, `copies` times over; returns its line count.
/// Written a copy at a time: children inherit this process's peak memory in their own figure.
fn write_wordcount_input(text: &Path, copies: u32, path: &Path) -> Result<u64> {
    let text = std::fs::read(text).with_context(|| format!("cannot read {}", text.display()))?;
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    for _ in 0..copies {
        file.write_all(&text)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let lines = text.iter().filter(|&&b| b == b'\n').count() as u64;
    Ok(lines * u64::from(copies))
}

fn print_machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cores} cores, {cpu}");
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<10} {:<26} {:>10} {:>8} {:>12} {:>14} {:>9} {:>8} {:>9} {:>10}",
        "query",
        "setup",
        "records",
        "wall s",
        "records/s",
        "per core",
        "/native",
        "CPU s",
        "peak MiB",
        "out"
    );
    for row in rows {
        let native = rows
            .iter()
            .find(|r| r.query == row.query && r.setup == Setup::Native)
            .expect("every query has a native row");
        let agrees = if row.out == native.out {
            ""
        } else {
            " (differs!)"
        };
        println!(
            "{:<10} {:<26} {:>10} {:>8.2} {:>12.0} {:>14.0} {:>9.2} {:>8.2} {:>9.1} {:>10}{agrees}",
            row.query.to_string(),
            row.setup.to_string(),
            row.records,
            row.run.wall.as_secs_f64(),
            row.rate(),
            row.rate_per_core(),
            row.rate_per_core() / native.rate_per_core(),
            row.run.cpu.as_secs_f64(),
            row.run.peak_rss_kib as f64 / 1024.0,
            row.out,
        );
    }
    println!();
    println!(
        "records = Nexmark events, or words for wordcount. per core = records/s ÷ processes. \
         /native = per-core rate ÷ the native loop's. CPU s = user + system time of all \
         processes. peak MiB = largest resident set of any one process. out = output records \
         (counts only are compared with native). Epochs end every 100,000 source records (a \
         file source also after a second); 1s-epochs: every second's worth of records. +snap = \
         persistence to a local folder, one snapshot per epoch."
    );
}

fn print_targets(rows: &[Row]) {
    let find = |query: Query, run: (u32, bool, bool)| {
        rows.iter()
            .find(|r| r.query == query && r.setup.is(run.0, run.1, run.2))
    };
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!();
    println!("targets:");
    let queries: Vec<Query> = rows
        .iter()
        .filter(|r| r.setup == Setup::Native)
        .map(|r| r.query)
        .collect();
    for &query in &queries {
        let [Some(one), Some(two), Some(long), Some(snap)] = SPILLWAY_RUNS.map(|r| find(query, r))
        else {
            continue;
        };
        let per_core = one.rate_per_core();
        let target = query.target_per_core();
        println!(
            "  {query:<9} -n 1: {:>9.0}/s per core, target >= {:.0}: {}",
            per_core,
            target,
            verdict(per_core >= target)
        );
        let scaling = two.rate() / one.rate();
        println!(
            "  {query:<9} -n 2 / -n 1 = {scaling:.2}x, target >= 1.8x: {}",
            verdict(scaling >= 1.8)
        );
        let overhead = 1.0 - snap.rate() / long.rate();
        println!(
            "  {query:<9} snapshots every second cost {:.1}%, target <= 10%: {}",
            overhead * 100.0,
            verdict(overhead <= 0.10)
        );
    }
    if queries.contains(&Query::Wordcount) {
        println!(
            "  (wordcount vs Pathway, target >= 3x: see scripts/pathway-wordcount.sh; not run here)"
        );
    }
}
