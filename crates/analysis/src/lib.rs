//! Analyses over a [`heapscope_heap::Heap`]: grouped summaries, dump diffs, and
//! attribution of source paths to gems, Ruby's stdlib or the application.

pub mod diff;
pub mod group;
pub mod inspect;
pub mod leaks;
pub mod memseries;
pub mod memtrend;
pub mod origin;
pub mod paths;
pub mod requires;
pub mod retained;
pub mod summary;
pub mod suspects;
pub mod trend;
