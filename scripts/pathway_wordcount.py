#!/usr/bin/env python3
"""Helper for scripts/pathway-wordcount.sh: Spillway vs Pathway on the same wordcount.

Subcommands:

  make-input SOURCE OUT WORDS
      Writes OUT with exactly WORDS lines, one word per line: the words of SOURCE (each
      line split on whitespace, lower-cased), repeated as many times as needed (the last
      copy cut short). Reuses OUT when its sidecar OUT.json says it was made from the same
      SOURCE with the same WORDS and OUT still has the recorded size.

  pathway INPUT OUTPUT STATS
      The Pathway side (run with the venv's python): reads INPUT (one record per line),
      groups by the line, counts, writes OUTPUT as CSV, and writes timings to STATS (JSON).

  bench --spillway BIN --wasm WASM --python VENV_PY --input INPUT --words N --runs R --out DIR
      Runs each engine R times (alternating), checks that every run produced the same
      word -> count map as the other engine, and prints the table (best of R).

Only the `pathway` subcommand imports pathway; the rest needs the standard library alone.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

# --------------------------------------------------------------------------- input


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_input(source: Path, out: Path, words: int) -> None:
    if words <= 0:
        sys.exit(f"error: WORDS must be a positive number of words, got {words}")
    meta_path = out.with_name(out.name + ".json")
    source_sha = sha256_of(source)
    want = {"source": str(source), "source_sha256": source_sha, "words": words}
    if out.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
        if (
            all(meta.get(k) == v for k, v in want.items())
            and meta.get("bytes") == out.stat().st_size
        ):
            print(f"input: reusing {out} ({words:,} words, {meta['bytes']:,} bytes)")
            return

    # Decode as UTF-8 (invalid bytes -> U+FFFD, as the Spillway guest does), split on
    # whitespace and lower-case. The access log is ASCII, so Python's and Rust's notions
    # of whitespace and lower case agree on it.
    text = source.read_bytes().decode("utf-8", errors="replace")
    vocab = [w.lower() for w in text.split()]
    if not vocab:
        sys.exit(f"error: {source} has no words")
    block = ("\n".join(vocab) + "\n").encode("utf-8")
    full, rest = divmod(words, len(vocab))
    tail = ("\n".join(vocab[:rest]) + "\n").encode("utf-8") if rest else b""

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("wb") as f:
        for _ in range(full):
            f.write(block)
        f.write(tail)
    tmp.replace(out)
    size = out.stat().st_size
    meta_path.write_text(json.dumps({**want, "bytes": size}, indent=2) + "\n")
    print(
        f"input: wrote {out}: {words:,} words ({len(vocab):,} words per copy of "
        f"{source.name}, {full} full copies + {rest:,}), {size:,} bytes"
    )


# --------------------------------------------------------------------------- pathway


def run_pathway(input_path: str, output_path: str, stats_path: str) -> None:
    t0 = time.perf_counter()
    import pathway as pw  # noqa: PLC0415 (only this subcommand needs it)

    t_import = time.perf_counter()
    words = pw.io.plaintext.read(input_path, mode="static")
    counts = words.groupby(words.data).reduce(word=words.data, count=pw.reducers.count())
    pw.io.csv.write(counts, output_path)
    t_built = time.perf_counter()
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    t_run = time.perf_counter()

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats = {
        "pathway_version": pw.__version__,
        "import_s": t_import - t0,
        "build_s": t_built - t_import,
        "run_s": t_run - t_built,
        "cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
        "threads_env": os.environ.get("PATHWAY_THREADS"),
    }
    Path(stats_path).write_text(json.dumps(stats) + "\n")


# --------------------------------------------------------------------------- outputs


def read_spillway(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            word, count = rec["word"], int(rec["count"])
            if word in counts:
                raise SystemExit(f"error: {path}:{n}: word {word!r} appears twice")
            counts[word] = count
    return counts


def read_pathway(path: Path) -> dict[str, int]:
    # Pathway's CSV output is a change log: word,count,time,diff. In static mode every
    # word gets one insertion (diff 1), but fold the log anyway: a retraction (diff -1)
    # removes the row it names.
    rows: dict[tuple[str, int], int] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for rec in csv.DictReader(f):
            key = (rec["word"], int(rec["count"]))
            rows[key] = rows.get(key, 0) + int(rec["diff"])
    counts: dict[str, int] = {}
    for (word, count), mult in rows.items():
        if mult == 0:
            continue
        if mult != 1 or word in counts:
            raise SystemExit(f"error: {path}: word {word!r} has an inconsistent change log")
        counts[word] = count
    return counts


def compare(spillway: dict[str, int], pathway: dict[str, int], words: int) -> list[str]:
    problems = []
    only_s = sorted(set(spillway) - set(pathway))
    only_p = sorted(set(pathway) - set(spillway))
    differ = sorted(w for w in set(spillway) & set(pathway) if spillway[w] != pathway[w])
    if only_s:
        problems.append(f"{len(only_s)} words only in Spillway's output, e.g. {only_s[:5]!r}")
    if only_p:
        problems.append(f"{len(only_p)} words only in Pathway's output, e.g. {only_p[:5]!r}")
    for w in differ[:10]:
        problems.append(f"word {w!r}: Spillway {spillway[w]}, Pathway {pathway[w]}")
    if len(differ) > 10:
        problems.append(f"... and {len(differ) - 10} more words with different counts")
    for name, m in (("Spillway", spillway), ("Pathway", pathway)):
        total = sum(m.values())
        if total != words:
            problems.append(f"{name}'s counts add up to {total:,}, not the {words:,} input words")
    return problems


# --------------------------------------------------------------------------- bench


def timed(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float, float, int]:
    """Runs cmd; returns (wall s, CPU s of the process and its children, peak RSS MiB, rc)."""
    with log.open("wb") as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    p.returncode = rc
    # ru_maxrss is in KiB on Linux.
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, rc


def fail_run(name: str, cmd: list[str], log: Path, rc: int) -> None:
    tail = log.read_text(errors="replace").splitlines()[-20:]
    print(f"error: the {name} run failed (exit code {rc}): {' '.join(cmd)}", file=sys.stderr)
    print(f"--- last lines of {log} ---", file=sys.stderr)
    print("\n".join(tail), file=sys.stderr)
    sys.exit(1)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


DONE_RE = re.compile(r"done in ([0-9.]+)(ms|s)\b")


def bench(a: argparse.Namespace) -> None:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    s_out, p_out = out / "spillway-counts.jsonl", out / "pathway-counts.csv"
    p_stats = out / "pathway-stats.json"
    s_cmd = [
        a.spillway, "run", "--threads", "1",
        "--source", f"lines={a.input}", "--sink", f"counts={s_out}",
        a.wasm,
    ]  # fmt: skip
    p_cmd = [a.python, os.path.abspath(__file__), "pathway", a.input, str(p_out), str(p_stats)]
    env = dict(os.environ)
    env.pop("PATHWAY_LICENSE_KEY", None)
    p_env = {**env, "PATHWAY_THREADS": "1", "PATHWAY_PROCESSES": "1"}

    results: dict[str, list[dict]] = {"Spillway": [], "Pathway": []}
    for i in range(1, a.runs + 1):
        # Spillway: one process, one worker thread (-t 1).
        s_out.unlink(missing_ok=True)
        log = out / "spillway.log"
        wall, cpu, rss, rc = timed(s_cmd, env, log)
        if rc != 0:
            fail_run("Spillway", s_cmd, log, rc)
        m = DONE_RE.search(log.read_text(errors="replace"))
        inner = None
        if m:
            inner = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
        results["Spillway"].append({"wall": wall, "inner": inner, "cpu": cpu, "rss": rss})
        print(f"run {i}/{a.runs}: Spillway {wall:7.2f} s wall, {cpu:6.2f} s CPU", flush=True)

        # Pathway: one process, one worker thread (PATHWAY_THREADS=1).
        p_out.unlink(missing_ok=True)
        p_stats.unlink(missing_ok=True)
        log = out / "pathway.log"
        wall, cpu, rss, rc = timed(p_cmd, p_env, log)
        if rc != 0:
            fail_run("Pathway", p_cmd, log, rc)
        st = json.loads(p_stats.read_text())
        results["Pathway"].append(
            {"wall": wall, "inner": st["run_s"], "cpu": cpu, "rss": rss, "stats": st}
        )
        print(
            f"run {i}/{a.runs}: Pathway  {wall:7.2f} s wall, {cpu:6.2f} s CPU "
            f"(import {st['import_s']:.2f} s, pw.run() {st['run_s']:.2f} s)",
            flush=True,
        )

        problems = compare(read_spillway(s_out), read_pathway(p_out), a.words)
        if problems:
            print(f"MISMATCH in run {i}: Spillway and Pathway counted differently:", file=sys.stderr)
            for p in problems:
                print(f"  {p}", file=sys.stderr)
            print(f"  outputs: {s_out} and {p_out}", file=sys.stderr)
            sys.exit(1)

    distinct = len(read_spillway(s_out))
    print(
        f"\ncounts match: {distinct:,} distinct words, {a.words:,} words in all, "
        f"identical word -> count maps in {plural(a.runs, 'run')}"
    )

    def best(rs: list[dict], key: str) -> float | None:
        vals = [r[key] for r in rs if r[key] is not None]
        return min(vals) if vals else None

    rows = []
    for name in ("Spillway", "Pathway"):
        rs = results[name]
        b = min(rs, key=lambda r: r["wall"])
        inner = best(rs, "inner")
        rows.append(
            {
                "engine": name,
                "wall": b["wall"],
                "wps": a.words / b["wall"],
                "inner": inner,
                "inner_wps": a.words / inner if inner else None,
                "cpu": b["cpu"],
                "rss": b["rss"],
            }
        )

    pv = results["Pathway"][0]["stats"]["pathway_version"]
    print(
        f"\nwordcount, {a.words:,} words, 1 worker thread each, best of {plural(a.runs, 'run')} "
        f"(Pathway {pv})"
    )
    hdr = (
        f"{'engine':<9} {'words':>11} {'wall s':>8} {'words/s':>12} "
        f"{'pipeline s':>11} {'words/s':>12} {'CPU s':>7} {'peak RSS':>9}"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        inner = f"{r['inner']:.2f}" if r["inner"] else "-"
        iwps = f"{r['inner_wps']:,.0f}" if r["inner_wps"] else "-"
        print(
            f"{r['engine']:<9} {a.words:>11,} {r['wall']:>8.2f} {r['wps']:>12,.0f} "
            f"{inner:>11} {iwps:>12} {r['cpu']:>7.2f} {r['rss']:>6.0f} MiB"
        )
    s, p = rows
    print(f"\nratio Spillway/Pathway (words/s, whole process): {s['wps'] / p['wps']:.2f}x")
    if s["inner_wps"] and p["inner_wps"]:
        print(
            f"ratio Spillway/Pathway (words/s, pipeline only): "
            f"{s['inner_wps'] / p['inner_wps']:.2f}x"
        )
    print(
        f"ratio Spillway/Pathway (words per CPU-second):   {p['cpu'] / s['cpu']:.2f}x"
    )
    print(
        "\nwall s: the whole process, start-up included (for Pathway, `import pathway` "
        "alone takes about\n"
        f"{min(r['stats']['import_s'] for r in results['Pathway']):.1f} s). pipeline s: "
        "Spillway's own `done in` figure; Pathway's pw.run().\n"
        "CPU s: user + system time of the process and its children (the wall-time-best run)."
    )
    summary = {"words": a.words, "runs": a.runs, "distinct": distinct, "rows": rows}
    (out / "pathway-wordcount-summary.json").write_text(json.dumps(summary, indent=2) + "\n")


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-input")
    m.add_argument("source", type=Path)
    m.add_argument("out", type=Path)
    m.add_argument("words", type=int)
    p = sub.add_parser("pathway")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("stats")
    b = sub.add_parser("bench")
    b.add_argument("--spillway", required=True)
    b.add_argument("--wasm", required=True)
    b.add_argument("--python", required=True)
    b.add_argument("--input", required=True)
    b.add_argument("--words", type=int, required=True)
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.cmd == "make-input":
        make_input(a.source, a.out, a.words)
    elif a.cmd == "pathway":
        run_pathway(a.input, a.output, a.stats)
    else:
        if a.runs < 1:
            sys.exit("error: RUNS must be at least 1")
        bench(a)


if __name__ == "__main__":
    main()
