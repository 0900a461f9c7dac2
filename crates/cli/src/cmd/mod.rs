//! One module per command beyond summary and diff: its arguments and how it runs.

pub mod bench;
pub mod dump;
pub mod flamegraph;
pub mod import;
pub mod inspect;
pub mod leaks;
pub mod path;
pub mod plot;
pub mod pprof;
pub mod profile;
pub mod require_mem;
pub mod retained;
pub mod run;
pub mod serve;
pub mod suspects;
pub mod trace;
pub mod trend;
pub mod watch;
