//! Sliding windows through the real host, with the `sliding-count` guest (`tests/guests/`):
//! 10 s windows starting every 2 s, no out-of-orderness allowed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::util::{LAYOUTS, build_guests, job, line_counts, repo, run_ok, spillway};

const SIZE: i64 = 10_000;
const SLIDE: i64 = 2_000;

fn sliding_count() -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    build_guests(&BUILT, "tests/guests");
    repo().join("tests/guests/target/wasm32-wasip2/release/sliding_count.wasm")
}

/// The guest's output for `events`, computed independently: every multiple of the slide
/// within one window size before each event time starts a window holding it.
fn expected_counts(events: &[(&str, i64)]) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<(&str, i64), u64> = BTreeMap::new();
    for &(key, time) in events {
        for start in (time - SIZE + 1..=time).filter(|s| s.rem_euclid(SLIDE) == 0) {
            *counts.entry((key, start)).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|((key, start), count)| (format!("{key} {start} {} {count}", start + SIZE), 1))
        .collect()
}

fn write_input(path: &Path, events: &[(&str, i64)]) {
    let text: String = events.iter().map(|(k, t)| format!("{k} {t}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn sliding_counts_match_an_independent_count_in_every_layout() {
    let guest = sliding_count();
    let inspect = run_ok(spillway().arg("inspect").arg(&guest));
    let inspect = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        inspect.contains("window: sliding 10000 ms every 2000 ms"),
        "{inspect}"
    );
    // In time order, so that with no out-of-orderness allowed none is late, whatever the
    // epochs; windows close while the input goes on.
    let keys = ["a", "b", "c"];
    let events: Vec<(&str, i64)> = (0..600i64)
        .map(|i| (keys[(i * 7 % 3) as usize], -30_000 + i * 173))
        .collect();
    let expected = expected_counts(&events);
    assert!(expected.len() > 100, "{} windows", expected.len());
    for &layout in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        write_input(&input, &events);
        let counts = dir.path().join("counts.txt");
        let mut command = job(
            layout,
            &guest,
            &[
                ("--source", format!("lines={}", input.display())),
                ("--sink", format!("counts={}", counts.display())),
            ],
        );
        command.args(["--epoch-records", "50"]);
        let output = run_ok(&mut command);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(" 0 late;"), "layout {layout:?}: {stderr}");
        assert_eq!(line_counts(&counts), expected, "layout {layout:?}");
    }
}

#[test]
fn late_events_miss_only_the_windows_already_closed() {
    let guest = sliding_count();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    // One event per epoch. After 100_000 the windows up to [90_000, 100_000) are closed:
    // 95_000 misses 86_000..=90_000 but joins 92_000 and 94_000; 0 misses all of its windows.
    write_input(&input, &[("a", 100_000), ("a", 95_000), ("a", 0)]);
    let counts = dir.path().join("counts.txt");
    let mut command = job(
        ("run", 1, 1),
        &guest,
        &[
            ("--source", format!("lines={}", input.display())),
            ("--sink", format!("counts={}", counts.display())),
        ],
    );
    command.args(["--batch-size", "1", "--epoch-records", "1"]);
    let output = run_ok(&mut command);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(" 2 late;"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&counts).unwrap(),
        "a 92000 102000 2\na 94000 104000 2\na 96000 106000 1\na 98000 108000 1\n\
         a 100000 110000 1\n"
    );
}
