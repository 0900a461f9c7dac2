//! The sampling heap profiler's Ruby glue (`Heapscope::Native.profiler_*`).
//! The tables, sampler and pprof assembly live in
//! `heapscope_agent::profiler`; this file holds what needs Ruby. It uses
//! only Ruby's public C API, the same from 3.1 to 4.0: no private GC
//! function, no `object_id`, and it never reads the memory of an object it
//! cannot prove alive.
//!
//! - two raw tracepoints, on together in hook windows: NEWOBJ samples
//!   allocations and FREEOBJ reports frees. Their hooks never allocate a Ruby
//!   object, raise or call `ruby_xmalloc`; the common NEWOBJ path is two
//!   relaxed atomics (the Ruby-calls count and the skip counter). A sampled
//!   allocation reads the object Ruby hands the hook, captures frames with
//!   `rb_profile_frames` and records them under a `try_lock`.
//! - while the hooks are on, a tracked object is known by its address, which
//!   stays ours until FREEOBJ names it. Before the hooks turn off (end of a
//!   window, stop, a Ractor), with GC disabled so nothing can be freed
//!   meanwhile, every such object is stored in an `ObjectSpace::WeakMap`
//!   under a fresh Integer key, and from then on it is only ever found
//!   through that map: Ruby clears the entry when the object dies, so a
//!   flush can never read a freed, reused or unmapped slot (see
//!   `heapscope_agent::profiler::Slot`). A FREEOBJ that could not be recorded
//!   makes the profiler drop every addressed object instead of trusting it.
//! - a hidden TypedData "keeper", a GC root by `rb_gc_register_address`,
//!   whose mark function `rb_gc_mark`s (and so pins) every frame VALUE and
//!   every class the allocation totals name, and whose compact function
//!   rewrites addressed objects with `rb_gc_location`. Tracked objects are
//!   not marked: the profiler must not keep them alive.
//! - flushes: with GC disabled and sampling paused, live tracked
//!   objects are found and measured (`rb_obj_memsize_of`), classes and frames
//!   named, then the profile is built and written without touching Ruby.
//!   Objects are also measured before a hand-off and, for the types whose
//!   size comes from their own memory, in the FREEOBJ hook (which Ruby runs
//!   before freeing anything of the object); measuring allocates nothing.
//! - the agent's own allocations: threads running the agent's code
//!   (`OWN_THREADS`) are checked only on a sampled allocation, which is then
//!   counted instead of recorded (`rb_thread_current` only reads).
//! - Ractors: Ruby's allocation hooks are not safe once a second Ractor
//!   runs (Ruby 3.1's own allocation tracing crashes too), and Ruby never
//!   leaves multi-Ractor mode. A TracePoint on `Ractor.new`
//!   (`heapscope/ractor_guard.rb`) turns the hooks off before the first
//!   Ractor is made, and they stay off for the rest of the process.
//!
//! Lock rule: `STATE` is only held by code that cannot allocate Ruby objects,
//! so GC (which runs the mark and compact functions and the FREEOBJ hook) never
//! starts while it is held, and `try_lock` in hooks never fails in practice.

// VALUE is uintptr_t: the u64 casts are no-ops on 64-bit targets but say
// where an address crosses between Ruby and the core tables.
#![allow(clippy::unnecessary_cast)]

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::raw::{c_int, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, Once, TryLockError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::roots::{new_keeper, DataType, GcRoot};
use heapscope_agent::profiler::{
    check_settings, measurable_at_free, type_has_class, write_profile, FrameName, HookWindows,
    Measured, ProfileMeta, Profiler, Slot, Tracked,
};
use magnus::{function, prelude::*, Error, RHash, RModule, RString, Ruby, Value};
use rb_sys::{
    rb_class2name, rb_class_real, rb_funcallv, rb_gc_disable, rb_gc_enable, rb_gc_location,
    rb_gc_mark, rb_intern, rb_profile_frame_first_lineno, rb_profile_frame_full_label,
    rb_profile_frame_path, rb_profile_frames, rb_protect, rb_set_errinfo, rb_thread_current,
    rb_tracearg_event_flag, rb_tracearg_from_tracepoint, rb_tracearg_object, rb_tracepoint_disable,
    rb_tracepoint_enable, rb_tracepoint_new, ruby_value_type, Qnil, Qtrue, ID,
    RUBY_INTERNAL_EVENT_FREEOBJ, RUBY_INTERNAL_EVENT_NEWOBJ, VALUE,
};

extern "C" {
    // Exported by libruby on every version (ext/objspace links against it)
    // but not declared in the public headers rb-sys binds.
    fn rb_obj_memsize_of(obj: VALUE) -> usize;
}

struct State {
    core: Profiler,
    /// Buffers for `rb_profile_frames`, sized `max_frames` once.
    frames: Vec<VALUE>,
    lines: Vec<c_int>,
    pairs: Vec<(u64, i32)>,
    /// Names of `core.interner().values()`, resolved once each (a frame
    /// VALUE is pinned and never changes).
    frame_names: Vec<FrameName>,
    since: Instant,
    /// The hooks were turned off by `profiler_pause` (the heap-dump child):
    /// nothing is found or measured any more.
    paused: bool,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
/// The profiler is started (its hooks may still be off between windows).
static RUNNING: AtomicBool = AtomicBool::new(false);
/// Allocations left before the next sample; the hook's fast path.
static SKIP: AtomicU64 = AtomicU64::new(0);
/// Panics caught in hooks and hooks that found the state busy. Outside the
/// lock: a panic may have happened while holding it.
static HOOK_ERRORS: AtomicU64 = AtomicU64::new(0);
/// A FREEOBJ event could not be recorded: addressed objects can no longer be
/// trusted and are dropped at the next chance.
static FREE_MISSED: AtomicBool = AtomicBool::new(false);
/// The allocation hook is on only in windows (duty below 1): see
/// `heapscope_agent::profiler::HookWindows`.
static WINDOWED: AtomicBool = AtomicBool::new(false);
/// The window duty as f64 bits.
static DUTY_BITS: AtomicU64 = AtomicU64::new(0);
/// Whether the hooks are on now (in a window, or always when not windowed).
static HOOK_ON: AtomicBool = AtomicBool::new(false);
/// Allocations the hook saw, and Ruby's allocation count when counting
/// started: their ratio is the hook's coverage.
static SEEN: AtomicU64 = AtomicU64::new(0);
static BASE_TOTAL: AtomicU64 = AtomicU64::new(0);
/// xorshift state for choosing windows.
static WINDOW_RNG: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
/// A second Ractor was (or is being) made: the hooks stay off for good.
static RACTORS: AtomicBool = AtomicBool::new(false);
/// Address of libruby's `ruby_single_main_ractor` (non-NULL while only the
/// main Ractor exists), found with dlsym; 0 on a Ruby without it.
static SINGLE_MAIN_RACTOR: AtomicUsize = AtomicUsize::new(0);

/// The NEWOBJ and FREEOBJ tracepoints, made on first start.
static NEWOBJ_TP: GcRoot = GcRoot::new();
static FREEOBJ_TP: GcRoot = GcRoot::new();
/// The `ObjectSpace::WeakMap` holding handed-off objects (Integer key →
/// object), made at each start.
static WEAK_MAP: GcRoot = GcRoot::new();
static KEEPER: GcRoot = GcRoot::new();
static ROOTS: Once = Once::new();

/// Threads running the agent's own code, with a nesting depth: the agent's
/// thread for its whole life, an app thread inside `Heapscope.own` (start,
/// stop, dump requests, the middleware's counting). Sampled allocations on
/// them are left out of profiles and only counted. Thread VALUEs are marked
/// (so pinned) by the keeper while listed; dead threads are pruned at
/// flushes. Changed only with the GVL held and never while Ruby allocates.
static OWN_THREADS: Mutex<Vec<(VALUE, u32)>> = Mutex::new(Vec::new());
/// The `profile_agent` setting: the agent's own allocations are sampled like
/// the app's.
static COUNT_AGENT: AtomicBool = AtomicBool::new(false);

static KEEPER_TYPE: DataType = DataType::keeper(c"heapscope_profiler", keeper_mark, keeper_compact);

pub fn init(_ruby: &Ruby, native: RModule) -> Result<(), Error> {
    ROOTS.call_once(|| unsafe {
        for root in [&NEWOBJ_TP, &FREEOBJ_TP, &WEAK_MAP, &KEEPER] {
            root.register();
        }
        // The keeper lives for the whole process; the profiler's data is global.
        KEEPER.set(new_keeper(&KEEPER_TYPE));
        let sym = libc::dlsym(libc::RTLD_DEFAULT, c"ruby_single_main_ractor".as_ptr());
        SINGLE_MAIN_RACTOR.store(sym as usize, Relaxed);
    });
    native.define_singleton_method("profiler_start", function!(start, -1))?;
    native.define_singleton_method("profiler_stop", function!(stop, 0))?;
    native.define_singleton_method("profiler_running?", function!(running, 0))?;
    native.define_singleton_method("profiler_flush", function!(flush, 1))?;
    native.define_singleton_method("profiler_stats", function!(stats, 0))?;
    native.define_singleton_method("profiler_after_fork", function!(after_fork, 0))?;
    native.define_singleton_method("profiler_pause", function!(pause, 0))?;
    native.define_singleton_method("profiler_tick", function!(tick, 0))?;
    native.define_singleton_method("profiler_windowed?", function!(windowed, 0))?;
    native.define_singleton_method("profiler_ractor_started", function!(ractor_started, 0))?;
    native.define_singleton_method("profiler_own", function!(own, 1))?;
    native.define_singleton_method("profiler_own_thread", function!(own_thread, 1))?;
    native.define_singleton_method("profiler_count_agent", function!(count_agent, 1))?;
    Ok(())
}

fn lock() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The state, after dropping addressed objects if a free may have been
/// missed (see `FREE_MISSED`).
fn lock_checked() -> MutexGuard<'static, Option<State>> {
    let mut g = lock();
    if FREE_MISSED.swap(false, Relaxed) {
        if let Some(st) = g.as_mut() {
            st.core.forget_addressed();
        }
    }
    g
}

fn seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ ((std::process::id() as u64) << 32) ^ 0x5851_F42D_4C95_7F2D
}

fn arg_error(ruby: &Ruby, msg: String) -> Error {
    Error::new(ruby.exception_arg_error(), msg)
}

/// Whether only the main Ractor has ever run (as far as we can tell).
pub(crate) fn single_ractor() -> bool {
    if RACTORS.load(Relaxed) {
        return false;
    }
    let p = SINGLE_MAIN_RACTOR.load(Relaxed);
    // The variable holds the main Ractor until a second one starts.
    p == 0 || unsafe { !(*(p as *const *const c_void)).is_null() }
}

/// `profiler_start(rate, max_samples, max_frames, duty = 1.0)` → true.
fn start(ruby: &Ruby, args: &[Value]) -> Result<bool, Error> {
    let args =
        magnus::scan_args::scan_args::<(Value, Value, Value), (Option<Value>,), (), (), (), ()>(
            args,
        )?;
    let (rate, max_samples, max_frames) = args.required;
    let rate = f64::try_convert(rate)
        .map_err(|e| arg_error(ruby, format!("sample rate must be a number: {e}")))?;
    let max_samples = i64::try_convert(max_samples)
        .map_err(|e| arg_error(ruby, format!("max_samples must be an Integer: {e}")))?;
    let max_frames = i64::try_convert(max_frames)
        .map_err(|e| arg_error(ruby, format!("max_frames must be an Integer: {e}")))?;
    let duty = match args.optional.0 {
        Some(v) => f64::try_convert(v)
            .map_err(|e| arg_error(ruby, format!("duty must be a number: {e}")))?,
        None => 1.0,
    };
    check_settings(rate, max_frames, max_samples).map_err(|m| arg_error(ruby, m))?;
    if !(duty > 0.0 && duty <= 1.0) {
        return Err(arg_error(
            ruby,
            format!("duty must be above 0 and at most 1, not {duty}"),
        ));
    }
    if RUNNING.load(Relaxed) {
        return Err(Error::new(
            ruby.exception_runtime_error(),
            "the heap profiler is already running",
        ));
    }
    // Installs the TracePoint that calls `profiler_ractor_started` before
    // any Ractor is made.
    ruby.require("heapscope/ractor_guard")?;
    let windows = HookWindows::plan(rate, duty);
    // Made before taking the lock: creating them allocates Ruby objects.
    let tp = tracepoint(&NEWOBJ_TP, RUBY_INTERNAL_EVENT_NEWOBJ);
    let free_tp = tracepoint(&FREEOBJ_TP, RUBY_INTERNAL_EVENT_FREEOBJ);
    let weak_map = unsafe {
        let mut state: c_int = 0;
        let v = rb_sys::rb_eval_string_protect(c"ObjectSpace::WeakMap.new".as_ptr(), &mut state);
        if state != 0 {
            rb_set_errinfo(Qnil as VALUE);
            return Err(Error::new(
                ruby.exception_runtime_error(),
                "the heap profiler needs ObjectSpace::WeakMap",
            ));
        }
        v
    };
    WEAK_MAP.set(weak_map);
    {
        let max_frames = max_frames as usize;
        let mut core = Profiler::new(
            windows.in_window_rate,
            max_samples as usize,
            max_frames,
            seed(),
        );
        SKIP.store(core.next_skip(), Relaxed);
        HOOK_ERRORS.store(0, Relaxed);
        FREE_MISSED.store(false, Relaxed);
        // Replacing a stopped session frees its tables; its frame VALUEs are
        // no longer marked from the next GC on, which is what we want.
        *lock() = Some(State {
            core,
            frames: vec![0; max_frames],
            lines: vec![0; max_frames],
            pairs: Vec::with_capacity(max_frames),
            frame_names: Vec::new(),
            since: Instant::now(),
            paused: false,
        });
    }
    WINDOWED.store(!windows.always_on(), Relaxed);
    DUTY_BITS.store(windows.duty.to_bits(), Relaxed);
    WINDOW_RNG.store(seed() | 1, Relaxed);
    SEEN.store(0, Relaxed);
    BASE_TOTAL.store(total_allocated(), Relaxed);
    RUNNING.store(true, Relaxed);
    // The first slice is always watched, so a short program is profiled
    // before the agent's thread first ticks; unless Ractors already run.
    if single_ractor() {
        unsafe {
            rb_tracepoint_enable(free_tp);
            rb_tracepoint_enable(tp);
        }
        HOOK_ON.store(true, Relaxed);
    } else {
        note_ractors();
    }
    Ok(true)
}

/// The tracepoint kept in `root`, made on first use.
fn tracepoint(root: &GcRoot, events: u32) -> VALUE {
    if !root.is_set() {
        unsafe {
            root.set(rb_tracepoint_new(
                Qnil as VALUE,
                events,
                Some(hook),
                std::ptr::null_mut(),
            ));
        }
    }
    root.get()
}

/// Ruby's count of objects allocated so far (`GC.stat(:total_allocated_objects)`).
fn total_allocated() -> u64 {
    unsafe {
        let key = rb_sys::rb_id2sym(rb_intern(c"total_allocated_objects".as_ptr()));
        rb_sys::rb_gc_stat(key) as u64
    }
}

/// Turns both hooks off, first handing addressed objects to the weak map
/// (while FREEOBJ is still on). Needs `RubyCalls`: with GC off nothing is
/// freed between the last free event and the hand-off. Safe to repeat (a
/// Ractor may start while the agent's thread is half-way through this).
fn hooks_off() {
    HOOK_ON.store(false, Relaxed);
    unsafe {
        rb_tracepoint_disable(NEWOBJ_TP.get());
    }
    hand_off();
    unsafe {
        rb_tracepoint_disable(FREEOBJ_TP.get());
    }
}

/// Turns both hooks on (FREEOBJ first: an object is never sampled without
/// its free being reported); never once Ractors run.
fn hooks_on() {
    if !single_ractor() || HOOK_ON.swap(true, Relaxed) {
        return;
    }
    unsafe {
        rb_tracepoint_enable(FREEOBJ_TP.get());
        rb_tracepoint_enable(NEWOBJ_TP.get());
    }
}

/// Stores every addressed object in the weak map. Needs `RubyCalls` and the
/// FREEOBJ hook on (or GC off since it was).
fn hand_off() {
    let (pairs, types) = match lock_checked().as_mut() {
        Some(st) if st.paused => {
            st.core.forget_addressed();
            return;
        }
        Some(st) => {
            let types: HashMap<u64, u8> = st
                .core
                .live()
                .into_iter()
                .filter_map(|(slot, t)| match slot {
                    Slot::Addr(a) => Some((a, t.ty)),
                    Slot::Weak(_) => None,
                })
                .collect();
            // Measured now, while known alive (FREEOBJ is on, or GC off
            // since it was): once handed off an object may die unseen, and
            // a Ruby-internal one is forgotten. Measuring allocates nothing.
            for (&addr, &ty) in &types {
                if probe_basic(addr as VALUE).map(|(t, _)| t) == Some(ty) {
                    let size = unsafe { rb_obj_memsize_of(addr as VALUE) } as u64;
                    st.core.set_size(Slot::Addr(addr), size);
                }
            }
            (st.core.hand_off(), types)
        }
        None => return,
    };
    if pairs.is_empty() {
        return;
    }
    // Without the lock: storing allocates (unsampled: a RubyCalls is alive).
    // Only a readable slot still holding an object of the sampled type goes
    // to Ruby (see `probe_basic`).
    let weak_map = WEAK_MAP.get();
    let aset = unsafe { rb_intern(c"[]=".as_ptr()) };
    let failed: Vec<u64> = pairs
        .into_iter()
        .filter(|&(addr, key)| {
            probe_basic(addr as VALUE).map(|(ty, _)| ty) != types.get(&addr).copied()
                || unsafe {
                    protected_call(weak_map, aset, &[fixnum(key), addr as VALUE]).is_none()
                }
        })
        .map(|(_, key)| key)
        .collect();
    if !failed.is_empty() {
        if let Some(st) = lock().as_mut() {
            for key in failed {
                st.core.forget(Slot::Weak(key));
            }
        }
    }
}

/// The object stored under `key` in the weak map, if it is still alive.
/// Needs `RubyCalls` (the object cannot die while we measure it).
unsafe fn weak_get(key: u64) -> Option<VALUE> {
    let aref = rb_intern(c"[]".as_ptr());
    match protected_call(WEAK_MAP.get(), aref, &[fixnum(key)]) {
        Some(v) if v != Qnil as VALUE => Some(v),
        _ => None,
    }
}

fn fixnum(n: u64) -> VALUE {
    unsafe { rb_sys::LONG2FIX(n as std::os::raw::c_long) }
}

struct Call<'a> {
    recv: VALUE,
    mid: ID,
    args: &'a [VALUE],
}

unsafe extern "C" fn call_trampoline(data: VALUE) -> VALUE {
    let c = &*(data as *const Call);
    rb_funcallv(c.recv, c.mid, c.args.len() as c_int, c.args.as_ptr())
}

/// `recv.mid(*args)`, with any exception caught and cleared (None).
unsafe fn protected_call(recv: VALUE, mid: ID, args: &[VALUE]) -> Option<VALUE> {
    let call = Call { recv, mid, args };
    let mut state: c_int = 0;
    let v = rb_protect(
        Some(call_trampoline),
        &call as *const Call as VALUE,
        &mut state,
    );
    if state != 0 {
        rb_set_errinfo(Qnil as VALUE);
        None
    } else {
        Some(v)
    }
}

/// `profiler_stop` → nil. The live set is measured now and kept as fixed
/// rows: with the hooks off, later flushes report those.
fn stop() -> Result<(), Error> {
    if !RUNNING.load(Relaxed) {
        return Ok(());
    }
    let _guard = RubyCalls::begin();
    hooks_off();
    RUNNING.store(false, Relaxed);
    let (live, allocs) = {
        let g = lock_checked();
        let Some(st) = g.as_ref() else { return Ok(()) };
        if st.core.is_frozen() {
            return Ok(());
        }
        let live = if st.paused {
            Vec::new()
        } else {
            st.core.live()
        };
        (live, alloc_classes(&st.core))
    };
    let (measured, gone) = unsafe { find_and_measure(&live) };
    let classes = unsafe { class_names(&measured, &allocs) };
    if let Some(st) = lock().as_mut() {
        for slot in gone {
            st.core.free_slot(slot);
        }
        st.core.freeze(&measured, &classes);
    }
    // Nothing is looked up any more: let Ruby drop the map's entries.
    WEAK_MAP.set(Qnil as VALUE);
    Ok(())
}

fn running() -> bool {
    RUNNING.load(Relaxed)
}

/// `profiler_pause` → nil: in the heap-dump child, only turn the hooks off
/// (nothing is handed off or measured there).
fn pause() {
    if RUNNING.swap(false, Relaxed) {
        if let Some(st) = lock().as_mut() {
            st.paused = true;
            st.core.forget_addressed();
        }
        if HOOK_ON.swap(false, Relaxed) {
            unsafe {
                rb_tracepoint_disable(NEWOBJ_TP.get());
                rb_tracepoint_disable(FREEOBJ_TP.get());
            }
        }
    }
}

/// `profiler_after_fork` → nil: in a forked child, allocations and counters
/// start over; the live set stays; the hooks stay as they were (a
/// tracepoint survives fork).
fn after_fork() {
    // Only the forking thread lives on in the child.
    let current = unsafe { rb_thread_current() };
    own_threads().retain(|&(t, _)| t == current);
    if let Some(st) = lock().as_mut() {
        st.core.after_fork(seed());
        SKIP.store(st.core.next_skip(), Relaxed);
        st.since = Instant::now();
    }
    SEEN.store(0, Relaxed);
    BASE_TOTAL.store(total_allocated(), Relaxed);
    HOOK_ERRORS.store(0, Relaxed);
}

/// `profiler_stats` → `{sampled:, tracked:, freed:, dropped:, untracked:,
/// unmeasured:, agent:, flushes:, hook_errors:, ractors:}`.
fn stats(ruby: &Ruby) -> Result<RHash, Error> {
    // Copy under the lock, then build the Hash (which allocates) without it.
    let (s, tracked) = match lock().as_ref() {
        Some(st) => (st.core.stats(), st.core.tracked_len() as u64),
        None => Default::default(),
    };
    let h = ruby.hash_new();
    for (k, v) in [
        ("sampled", s.sampled),
        ("tracked", tracked),
        ("freed", s.freed),
        ("dropped", s.dropped),
        ("untracked", s.untracked),
        ("unmeasured", s.unmeasured),
        ("agent", s.agent),
        ("flushes", s.flushes),
        ("hook_errors", HOOK_ERRORS.load(Relaxed)),
    ] {
        h.aset(ruby.to_symbol(k), v)?;
    }
    // True once the allocation hook is off for good because of Ractors.
    h.aset(ruby.to_symbol("ractors"), RACTORS.load(Relaxed))?;
    Ok(h)
}

/// `profiler_flush(path)` → path (the caller's String itself: a flush
/// allocates no Ruby object outside its unsampled section).
fn flush(ruby: &Ruby, path_value: RString) -> Result<RString, Error> {
    let path = path_value.to_string()?;
    let profile = {
        let _guard = RubyCalls::begin();
        prune_own_threads();
        // 1. Under the lock: what needs Ruby.
        let (live, allocs, unnamed) = {
            let g = lock_checked();
            let Some(st) = g.as_ref() else {
                return Err(Error::new(
                    ruby.exception_runtime_error(),
                    "the heap profiler was never started",
                ));
            };
            let live = if st.paused || st.core.is_frozen() {
                Vec::new()
            } else {
                st.core.live()
            };
            let unnamed = st.core.interner().values()[st.frame_names.len()..].to_vec();
            (live, alloc_classes(&st.core), unnamed)
        };
        // 2. Without it (GC off, our allocations unsampled): ask Ruby.
        let (measured, gone) = unsafe { find_and_measure(&live) };
        let classes = unsafe { class_names(&measured, &allocs) };
        let names: Vec<FrameName> = unsafe { unnamed.iter().map(|&v| frame_name(v)).collect() };
        // 3. Under the lock again: build the profile; pure Rust.
        let mut g = lock();
        let Some(st) = g.as_mut() else {
            return Err(Error::new(
                ruby.exception_runtime_error(),
                "the heap profiler was reset during a flush",
            ));
        };
        for slot in gone {
            st.core.free_slot(slot);
        }
        st.frame_names.extend(names);
        if WINDOWED.load(Relaxed) {
            let total = total_allocated().saturating_sub(BASE_TOTAL.load(Relaxed));
            st.core.set_coverage(SEEN.load(Relaxed), total);
        }
        // For the profile's comments; these live outside the lock.
        st.core.stats_mut().hook_errors = HOOK_ERRORS.load(Relaxed);
        st.core.set_count_agent(COUNT_AGENT.load(Relaxed));
        let meta = ProfileMeta {
            time_nanos: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0),
            duration_nanos: st.since.elapsed().as_nanos() as i64,
            program: program(),
        };
        let State {
            core, frame_names, ..
        } = st;
        core.build_profile(&measured, frame_names, &classes, &meta)
    };
    write_profile(&PathBuf::from(&path), &profile).map_err(|e| {
        Error::new(
            ruby.exception_io_error(),
            format!("writing the heap profile {path}: {e}"),
        )
    })?;
    Ok(path_value)
}

/// The program for the profile's mapping: Ruby's executable.
fn program() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "ruby".to_string())
}

/// While alive: our allocations are not sampled and GC is off, so no
/// tracked object, class or frame is freed or moved while Ruby is asked
/// about it. Taken before `STATE`: `rb_gc_disable` finishes a lazy sweep,
/// during which objects are freed (and FREEOBJ, if on, takes the lock).
///
/// Calling Ruby methods (the weak map's) may switch threads, so another
/// thread can begin and end its own `RubyCalls` (`ractor_started`)
/// meanwhile, in any order: a depth count keeps GC off and sampling paused
/// until the last one ends, and only then restores GC as the first found it.
struct RubyCalls;

/// Live `RubyCalls`; non-zero pauses sampling (see `on_newobj`).
static RUBY_CALLS: AtomicUsize = AtomicUsize::new(0);
/// GC was already disabled (by the app) when the outermost `RubyCalls` began.
static GC_WAS_DISABLED: AtomicBool = AtomicBool::new(false);

impl RubyCalls {
    fn begin() -> RubyCalls {
        // All under the GVL: no two threads run this at once.
        if RUBY_CALLS.fetch_add(1, Relaxed) == 0 {
            let was = unsafe { rb_gc_disable() };
            GC_WAS_DISABLED.store(was == Qtrue as VALUE, Relaxed);
        }
        RubyCalls
    }
}

impl Drop for RubyCalls {
    fn drop(&mut self) {
        if RUBY_CALLS.fetch_sub(1, Relaxed) == 1 && !GC_WAS_DISABLED.load(Relaxed) {
            unsafe {
                rb_gc_enable();
            }
        }
    }
}

fn alloc_classes(core: &Profiler) -> Vec<u64> {
    let mut v: Vec<u64> = core
        .allocs()
        .keys()
        .map(|k| k.klass)
        .filter(|&k| k != 0)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The object's builtin type and its `klass` field (`struct RBasic`). Only
/// for objects known to be alive: one Ruby just handed a hook, or one
/// found through the weak map or followed by FREEOBJ, with GC off.
unsafe fn basic(obj: VALUE) -> (u8, VALUE) {
    let p = obj as *const VALUE;
    let flags = std::ptr::read_volatile(p);
    let klass = std::ptr::read_volatile(p.add(1));
    ((flags & 0x1f) as u8, klass)
}

/// `basic` for an object followed by address, read without trusting the
/// address: `process_vm_readv` on our own process reports an unmapped page
/// as an error where a plain read would fault. FREEOBJ should report every
/// object freed while we follow it, yet a flush once read a freed, unmapped
/// slot (the allocate-drop-GC stress program on Ruby 3.1, about 1 run in
/// 40), so an addressed object is read only through this. None when the
/// slot cannot be read or the syscall is refused.
fn probe_basic(obj: VALUE) -> Option<(u8, VALUE)> {
    let mut words = [0 as VALUE; 2];
    let local = libc::iovec {
        iov_base: words.as_mut_ptr().cast(),
        iov_len: std::mem::size_of_val(&words),
    };
    let remote = libc::iovec {
        iov_base: obj as *mut libc::c_void,
        iov_len: std::mem::size_of_val(&words),
    };
    // SAFETY: the kernel writes at most 16 bytes into `words`; the remote
    // range is only read, and checked by the kernel.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    (n == std::mem::size_of_val(&words) as isize).then(|| ((words[0] & 0x1f) as u8, words[1]))
}

/// The real class of an object of builtin type `ty`, 0 for none. Safe in the
/// allocation hook: `rb_class_real` only follows superclass pointers.
unsafe fn real_class(ty: u8, klass: VALUE) -> u64 {
    if type_has_class(ty) && klass != 0 {
        rb_class_real(klass) as u64
    } else {
        0
    }
}

/// Finds the live tracked objects (addressed ones directly, weak ones
/// through the weak map) and measures their sizes, current types and
/// classes. Returns them and the slots whose objects are gone. Needs
/// `RubyCalls`.
unsafe fn find_and_measure(live: &[(Slot, Tracked)]) -> (Vec<Measured>, Vec<Slot>) {
    let mut out = Vec::with_capacity(live.len());
    let mut gone = Vec::new();
    for &(slot, t) in live {
        let (obj, (ty, klass)) = match slot {
            Slot::Addr(a) => match probe_basic(a as VALUE) {
                Some(b) => (a as VALUE, b),
                None => {
                    gone.push(slot);
                    continue;
                }
            },
            Slot::Weak(key) => match weak_get(key) {
                Some(obj) => (obj, basic(obj)),
                None => {
                    gone.push(slot);
                    continue;
                }
            },
        };
        // A live object never changes its builtin type.
        if ty != t.ty {
            continue;
        }
        out.push(Measured {
            slot,
            stack: t.stack,
            ty,
            klass: real_class(ty, klass),
            size: rb_obj_memsize_of(obj) as u64,
        });
    }
    (out, gone)
}

/// Names of the classes of `measured` and of `allocs`. Needs GC off
/// (`rb_class2name` may build a String for an anonymous class).
unsafe fn class_names(measured: &[Measured], allocs: &[u64]) -> HashMap<u64, String> {
    let mut out = HashMap::new();
    for k in measured
        .iter()
        .map(|m| m.klass)
        .chain(allocs.iter().copied())
    {
        if k == 0 || out.contains_key(&k) {
            continue;
        }
        let p = rb_class2name(k as VALUE);
        if !p.is_null() {
            out.insert(k, CStr::from_ptr(p).to_string_lossy().into_owned());
        }
    }
    out
}

/// A Ruby String's contents, or "" for anything else (nil for C frames).
unsafe fn string_of(v: VALUE) -> String {
    if v == Qnil as VALUE || rb_sys::RB_TYPE(v) != ruby_value_type::RUBY_T_STRING {
        return String::new();
    }
    let ptr = rb_sys::RSTRING_PTR(v) as *const u8;
    let len = rb_sys::RSTRING_LEN(v) as usize;
    String::from_utf8_lossy(std::slice::from_raw_parts(ptr, len)).into_owned()
}

unsafe fn frame_name(frame: VALUE) -> FrameName {
    let first = rb_profile_frame_first_lineno(frame);
    FrameName {
        label: string_of(rb_profile_frame_full_label(frame)),
        path: string_of(rb_profile_frame_path(frame)),
        first_lineno: if rb_sys::FIXNUM_P(first) {
            rb_sys::FIX2LONG(first) as i64
        } else {
            0
        },
    }
}

/// The raw tracepoint hook. Nothing here allocates a Ruby object or raises;
/// panics are caught and counted.
unsafe extern "C" fn hook(tpval: VALUE, _data: *mut c_void) {
    let caught = std::panic::catch_unwind(|| unsafe {
        let arg = rb_tracearg_from_tracepoint(tpval);
        let event = rb_tracearg_event_flag(arg);
        if event & RUBY_INTERNAL_EVENT_FREEOBJ != 0 {
            on_freeobj(rb_tracearg_object(arg));
        } else if event & RUBY_INTERNAL_EVENT_NEWOBJ != 0 {
            on_newobj(rb_tracearg_object(arg));
        }
    });
    if caught.is_err() {
        HOOK_ERRORS.fetch_add(1, Relaxed);
        // It may have been a free we did not record.
        FREE_MISSED.store(true, Relaxed);
    }
}

/// `try_lock` for hooks: never blocks. Busy means a broken lock rule; count it.
fn hook_lock() -> Option<MutexGuard<'static, Option<State>>> {
    match STATE.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(TryLockError::WouldBlock) => {
            HOOK_ERRORS.fetch_add(1, Relaxed);
            None
        }
    }
}

unsafe fn on_newobj(obj: VALUE) {
    if RUBY_CALLS.load(Relaxed) != 0 {
        return;
    }
    if WINDOWED.load(Relaxed) {
        SEEN.fetch_add(1, Relaxed);
    }
    // The common path: one decrement.
    let skip = SKIP.load(Relaxed);
    if skip > 0 {
        SKIP.store(skip - 1, Relaxed);
        return;
    }
    if !single_ractor() {
        return;
    }
    let Some(mut g) = hook_lock() else { return };
    let Some(st) = g.as_mut() else { return };
    SKIP.store(st.core.next_skip(), Relaxed);
    if on_own_thread() {
        st.core.record_agent_sample();
        return;
    }
    let (ty, klass) = basic(obj);
    let klass = real_class(ty, klass);
    let n = if st.frames.is_empty() {
        0
    } else {
        rb_profile_frames(
            0,
            st.frames.len() as c_int,
            st.frames.as_mut_ptr(),
            st.lines.as_mut_ptr(),
        )
    };
    let n = (n.max(0) as usize).min(st.frames.len());
    st.pairs.clear();
    st.pairs.extend(
        st.frames[..n]
            .iter()
            .zip(&st.lines[..n])
            .map(|(&f, &l)| (f as u64, l)),
    );
    let State { core, pairs, .. } = st;
    core.record_sample(obj as u64, ty, klass, pairs);
}

/// Whether the current thread runs the agent's own code (see
/// `OWN_THREADS`). `rb_thread_current` only reads the running thread.
unsafe fn on_own_thread() -> bool {
    if COUNT_AGENT.load(Relaxed) {
        return false;
    }
    let own = match OWN_THREADS.try_lock() {
        Ok(g) => g,
        Err(TryLockError::Poisoned(e)) => e.into_inner(),
        Err(TryLockError::WouldBlock) => return false,
    };
    if own.is_empty() {
        return false;
    }
    let current = rb_thread_current();
    own.iter().any(|&(t, _)| t == current)
}

/// Whether `thread` runs the agent's own code (whatever `profile_agent`
/// says): the exact report always leaves it out. Safe in hooks.
pub(crate) fn is_agent_thread(thread: VALUE) -> bool {
    match OWN_THREADS.try_lock() {
        Ok(g) => g.iter().any(|&(t, _)| t == thread),
        Err(TryLockError::Poisoned(e)) => e.into_inner().iter().any(|&(t, _)| t == thread),
        Err(TryLockError::WouldBlock) => false,
    }
}

fn own_threads() -> MutexGuard<'static, Vec<(VALUE, u32)>> {
    OWN_THREADS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `profiler_own(on)` → nil: the current thread starts (true) or ends
/// (false) running the agent's own code; nests. `Heapscope.own` wraps it.
fn own(on: bool) {
    let current = unsafe { rb_thread_current() };
    let mut own = own_threads();
    match own.iter().position(|&(t, _)| t == current) {
        Some(i) if on => own[i].1 += 1,
        Some(i) => {
            own[i].1 -= 1;
            if own[i].1 == 0 {
                own.swap_remove(i);
            }
        }
        None if on => own.push((current, 1)),
        None => {}
    }
}

/// `profiler_count_agent(on)` → nil: the `profile_agent` setting.
fn count_agent(on: bool) {
    COUNT_AGENT.store(on, Relaxed);
}

/// `profiler_own_thread(thread)` → nil: `thread` (the agent's, just made,
/// before it runs) runs only the agent's own code, for its whole life.
fn own_thread(thread: Value) {
    let t = magnus::rb_sys::AsRawValue::as_raw(thread);
    let mut own = own_threads();
    if !own.iter().any(|&(x, _)| x == t) {
        own.push((t, 1));
    }
}

/// Drops threads that ended from `OWN_THREADS` (a killed agent thread, a
/// parent's threads after fork). Needs `RubyCalls`.
fn prune_own_threads() {
    let threads: Vec<VALUE> = own_threads().iter().map(|&(t, _)| t).collect();
    if threads.is_empty() {
        return;
    }
    let alive = unsafe { rb_intern(c"alive?".as_ptr()) };
    let dead: Vec<VALUE> = threads
        .into_iter()
        .filter(|&t| unsafe { protected_call(t, alive, &[]) } != Some(Qtrue as VALUE))
        .collect();
    if !dead.is_empty() {
        own_threads().retain(|(t, _)| !dead.contains(t));
    }
}

/// Ruby is about to free `obj`: if we follow it by address, it is gone.
unsafe fn on_freeobj(obj: VALUE) {
    match hook_lock() {
        Some(mut g) => {
            if let Some(st) = g.as_mut() {
                // Measured now, before Ruby frees its buffers, for the types
                // whose size comes from their own memory only.
                let size = match st.core.tracked_at(obj as u64) {
                    Some(t) if measurable_at_free(t.ty) && basic(obj).0 == t.ty => {
                        Some(rb_obj_memsize_of(obj) as u64)
                    }
                    _ => None,
                };
                st.core.record_free_sized(obj as u64, size);
            }
        }
        None => FREE_MISSED.store(true, Relaxed),
    }
}

/// A uniform draw in [0, 1) for window choice (xorshift64*).
fn next_window_draw() -> f64 {
    let mut x = WINDOW_RNG.load(Relaxed);
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    WINDOW_RNG.store(x, Relaxed);
    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

/// `profiler_windowed?` → whether the hooks run in windows (so the agent's
/// thread must call `profiler_tick`).
fn windowed() -> bool {
    WINDOWED.load(Relaxed)
}

/// `profiler_tick` → bool (the hooks are on): the agent's thread calls it
/// about every 100 ms. When windowed, draws whether the next slice is
/// watched, and switches both hooks (see `hooks_off` for what turning them
/// off does). Keeps them off once Ractors run.
fn tick() -> bool {
    if !RUNNING.load(Relaxed) {
        return HOOK_ON.load(Relaxed);
    }
    if !single_ractor() {
        // A Ractor made before the guard was installed, or past it.
        note_ractors();
        if HOOK_ON.load(Relaxed) {
            let _guard = RubyCalls::begin();
            hooks_off();
        }
        return false;
    }
    if !WINDOWED.load(Relaxed) {
        return HOOK_ON.load(Relaxed);
    }
    let want = next_window_draw() < f64::from_bits(DUTY_BITS.load(Relaxed));
    if want == HOOK_ON.load(Relaxed) {
        return want;
    }
    let _guard = RubyCalls::begin();
    if want {
        hooks_on();
    } else {
        hooks_off();
    }
    HOOK_ON.load(Relaxed)
}

/// Whether the allocation hook is off for good because of Ractors (for the
/// statistics record).
pub fn ractors_seen() -> bool {
    RACTORS.load(Relaxed)
}

/// Says once that the allocation hook is off for good because of Ractors.
fn note_ractors() {
    if !RACTORS.swap(true, Relaxed) {
        eprintln!(
            "heapscope: a Ractor started: the heap profiler's allocation hook stays off \
             from now on (Ruby's allocation hooks are not Ractor-safe); dumps and \
             statistics go on"
        );
    }
}

/// `profiler_ractor_started` → nil: called by `heapscope/ractor_guard.rb`
/// just before `Ractor.new` makes a Ractor. Turns the hooks off for good.
fn ractor_started() {
    crate::report::ractor_started();
    if !RUNNING.load(Relaxed) {
        // Loaded for a report only: no profiler hook to speak of.
        RACTORS.store(true, Relaxed);
        return;
    }
    note_ractors();
    if RUNNING.load(Relaxed) {
        let _guard = RubyCalls::begin();
        hooks_off();
    }
}

/// GC mark: pin every frame VALUE and class the tables refer to.
unsafe extern "C" fn keeper_mark(_: *mut c_void) {
    if let Ok(own) = OWN_THREADS.try_lock() {
        for &(t, _) in own.iter() {
            rb_gc_mark(t);
        }
    }
    let Some(g) = hook_lock() else { return };
    if let Some(st) = g.as_ref() {
        st.core.for_each_mark(|v| unsafe { rb_gc_mark(v as VALUE) });
    }
}

/// GC compaction: addressed objects may have moved (weak ones are Ruby's
/// to move).
unsafe extern "C" fn keeper_compact(_: *mut c_void) {
    let Some(mut g) = hook_lock() else {
        FREE_MISSED.store(true, Relaxed);
        return;
    };
    if let Some(st) = g.as_mut() {
        st.core
            .relocate(|a| unsafe { rb_gc_location(a as VALUE) as u64 });
    }
}
