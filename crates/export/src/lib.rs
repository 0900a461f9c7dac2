//! Flame graphs and pprof profiles of a heap.
