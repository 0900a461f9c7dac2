//! The heapscope agent as a native Ruby extension: `require "heapscope"`
//! loads `ruby/lib/heapscope.rb`, which loads this library as
//! `heapscope/heapscope_native.so` and defines `Heapscope::Native`.
//!
//! - [`profiler`]: the sampling heap profiler (allocation and free hooks,
//!   stacks, flushes to pprof).
//! - [`report`]: exact allocation reports of a block (`Heapscope.report`).
//! - [`runtime`]: settings, the dump signal, fork handling, process memory.
//! - [`analyze`]: the live-heap summary of a dump for the Rack
//!   `?hs=analyze-memory` page (heapscope's reader, without the GVL).
//!
//! Rules for everything here: no panic crosses into Ruby (magnus turns a
//! panic in a method into a Ruby exception; raw hooks catch their own), and
//! nothing called from an allocation, free or signal hook allocates a Ruby
//! object or raises.

use magnus::{prelude::*, Error, Ruby};

mod analyze;
mod profiler;
mod report;
mod roots;
mod runtime;

#[magnus::init(name = "heapscope_native")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let heapscope = ruby.define_module("Heapscope")?;
    let native = heapscope.define_module("Native")?;
    runtime::init(ruby, native)?;
    profiler::init(ruby, native)?;
    analyze::init(ruby, native)?;
    report::init(ruby, native)?;
    Ok(())
}
