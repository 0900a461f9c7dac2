//! Rendering of `heapscope suspects`.
