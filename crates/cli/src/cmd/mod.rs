//! One module per command beyond summary and diff: its arguments and how it runs.

pub mod dump;
pub mod flamegraph;
pub mod inspect;
pub mod leaks;
pub mod path;
pub mod pprof;
pub mod retained;
pub mod run;
pub mod suspects;
