//! One module per graph command: its arguments and how it runs.

pub mod flamegraph;
pub mod inspect;
pub mod leaks;
pub mod path;
pub mod pprof;
pub mod retained;
pub mod suspects;
