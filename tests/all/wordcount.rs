//! Word counts over the whole input.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::{LAYOUTS, access_log, guest, job, line_counts, run_ok};

/// Word counts computed independently of Spillway.
fn expected_counts(input: &Path) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let bytes = std::fs::read(input).unwrap();
    for line in bytes.split(|&b| b == b'\n') {
        for word in String::from_utf8_lossy(line).split_whitespace() {
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(word, count)| {
            let word = serde_json::Value::from(word).to_string();
            (format!(r#"{{"word":{word},"count":{count}}}"#), 1)
        })
        .collect()
}

#[test]
fn word_counts_match_an_independent_fold_in_every_layout() {
    let guest = guest("wordcount");
    let expected = expected_counts(&access_log());
    assert!(expected.len() > 1000);
    for &layout in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let counts = dir.path().join("counts.jsonl");
        run_ok(&mut job(
            layout,
            &guest,
            &[
                ("--source", format!("lines={}", access_log().display())),
                ("--sink", format!("counts={}", counts.display())),
            ],
        ));
        assert_eq!(line_counts(&counts), expected, "layout {layout:?}");
    }
}

#[test]
fn small_batches_and_epochs_change_nothing() {
    let guest = guest("wordcount");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a B b\n\nc  a\tA\r\nb\n").unwrap();
    let counts = dir.path().join("counts.jsonl");
    let mut command = job(
        ("spawn", 2, 1),
        &guest,
        &[
            ("--source", format!("lines={}", input.display())),
            ("--sink", format!("counts={}", counts.display())),
        ],
    );
    command.args(["--batch-size", "1", "--epoch-records", "2"]);
    run_ok(&mut command);
    let expected: BTreeMap<String, usize> = [
        r#"{"count":3,"word":"a"}"#,
        r#"{"count":3,"word":"b"}"#,
        r#"{"count":1,"word":"c"}"#,
    ]
    .into_iter()
    .map(|l| (l.to_owned(), 1))
    .collect();
    let got: BTreeMap<String, usize> = line_counts(&counts)
        .into_keys()
        .map(|l| {
            (
                serde_json::from_str::<serde_json::Value>(&l)
                    .unwrap()
                    .to_string(),
                1,
            )
        })
        .collect();
    assert_eq!(got, expected);
}
