//! Rendering of `heapscope path`.
