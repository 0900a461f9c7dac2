//! Flame graphs and pprof profiles of a heap.
//!
//! - [`flame`]: the dominator tree as folded stacks (one line per distinct
//!   dominator chain, valued by the shallow bytes of the objects at its end,
//!   so a frame's width is what it retains), and their SVG rendering.
//! - [`pprof`]: live objects by allocation site as a gzipped `profile.proto`.
//! - [`plot`] and [`memplot`]: charts of dump series and of process memory
//!   over time.
//!
//! The functions here are pure over a [`heapscope_heap::Heap`] (and its
//! graph); [`write_atomic`] is the one helper that touches the file system.

pub mod flame;
pub mod memplot;
pub mod plot;
pub mod pprof;

pub use heapscope_pprof::write_atomic;
