//! The Ruby-independent core of the heapscope agent (the native extension in
//! `crates/ruby-ext` is a thin shell over it): settings ([`config`]), the
//! announcement file that `heapscope dump` reads ([`state`]), dump file names
//! and retention ([`dumpfiles`]), process memory from /proc ([`procmem`]), the statistics record ([`stats`]),
//! private files and process identity ([`secure`]), and
//! the sampling heap profiler's tables and pprof assembly ([`profiler`]).
//!
//! Everything here is plain Rust, tested without Ruby.

pub mod config;
pub mod dumpfiles;
pub mod procmem;
pub mod profiler;
pub mod report;
pub mod secure;
pub mod state;
pub mod stats;
