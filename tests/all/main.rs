//! Spillway's integration tests: one binary, each test in its own temporary directory,
//! driving the real `spillway` binary over guests built from `examples/` and `tests/guests/`.

mod access_log;
mod bad_input;
mod nexmark;
mod persistence;
mod polyglot;
mod sandbox;
mod scaling;
mod util;
mod windows;
mod wordcount;
