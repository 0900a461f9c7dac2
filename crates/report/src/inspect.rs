//! Rendering of `heapscope inspect`.
