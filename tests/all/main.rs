//! Spillway's integration tests: one binary, each test in its own temporary directory,
//! driving the real `spillway` binary over guests built from `examples/`.

mod access_log;
mod bad_input;
mod persistence;
mod polyglot;
mod sandbox;
mod scaling;
mod util;
mod wordcount;
