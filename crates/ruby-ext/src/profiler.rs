//! The sampling heap profiler's Ruby glue (`Heapscope::Native.profiler_*`).
//! The tables, sampler and pprof assembly live in
//! `heapscope_agent::profiler`; this file holds what needs Ruby:
//!
//! - one raw tracepoint on `RUBY_INTERNAL_EVENT_NEWOBJ | GC_END_MARK`. Its
//!   hook never allocates a Ruby object, raises or calls `ruby_xmalloc`: the
//!   common path is two relaxed atomics (the in-flush flag and the skip
//!   counter); a sampled allocation reads the object's flags and class,
//!   captures frames with `rb_profile_frames` and records them under a
//!   `try_lock`.
//! - frees are learnt at the end of each GC's marking: a tracked object
//!   whose mark bit is clear then is garbage that this GC's sweep frees. A
//!   FREEOBJ hook would be exact too, but Ruby dispatches it for every freed
//!   object, which cost a Rack app about as much as all the rest of the
//!   profiler (bench/agent.sh); this costs one bit test per tracked object
//!   per GC.
//! - a hidden TypedData "keeper" registered with `rb_gc_register_mark_object`
//!   whose mark function `rb_gc_mark`s (and so pins) every frame VALUE and
//!   every class the allocation totals name, and whose compact function
//!   rewrites tracked addresses with `rb_gc_location`. Tracked objects are not
//!   marked: the profiler must not keep them alive.
//! - flushes: with GC disabled and the in-flush flag set, live tracked objects
//!   are measured (`rb_obj_memsize_of`), classes and frames named, then the
//!   profile is built and written without touching Ruby.
//!
//! Lock rule: `STATE` is only held by code that cannot allocate Ruby objects,
//! so GC (which runs the mark and compact functions and the end-of-marking hook) never
//! starts while it is held, and `try_lock` in hooks never fails in practice.

// VALUE is uintptr_t: the u64 casts are no-ops on 64-bit targets but say
// where an address crosses between Ruby and the core tables.
#![allow(clippy::unnecessary_cast)]

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::raw::{c_int, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use heapscope_agent::profiler::{
    check_settings, type_has_class, write_profile, FrameName, HookWindows, Measured, ProfileMeta,
    Profiler, Tracked,
};
use magnus::{function, prelude::*, Error, RHash, RModule, RString, Ruby, Value};
use rb_sys::{
    rb_class2name, rb_class_real, rb_data_type_struct__bindgen_ty_1, rb_data_type_t,
    rb_data_typed_object_wrap, rb_gc_disable, rb_gc_enable, rb_gc_location, rb_gc_mark,
    rb_gc_register_mark_object, rb_profile_frame_first_lineno, rb_profile_frame_full_label,
    rb_profile_frame_path, rb_profile_frames, rb_tracearg_event_flag, rb_tracearg_from_tracepoint,
    rb_tracearg_object, rb_tracepoint_disable, rb_tracepoint_enable, rb_tracepoint_new,
    ruby_value_type, Qnil, Qtrue, RUBY_INTERNAL_EVENT_GC_END_MARK, RUBY_INTERNAL_EVENT_NEWOBJ,
    VALUE,
};

extern "C" {
    // Exported by libruby (ext/objspace uses it) but not declared in the
    // public headers rb-sys binds.
    fn rb_obj_memsize_of(obj: VALUE) -> usize;
    // Exported likewise: whether the GC's mark bit is set (read at the end
    // of marking, it says whether the object survives this GC).
    fn rb_objspace_marked_object_p(obj: VALUE) -> c_int;
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
    /// The hooks were turned off by `profiler_pause`: frees are not seen, so
    /// tracked addresses can no longer be trusted.
    paused: bool,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
/// The hooks are enabled.
static RUNNING: AtomicBool = AtomicBool::new(false);
/// A flush (or stop) is calling Ruby: its own allocations are not sampled.
static IN_FLUSH: AtomicBool = AtomicBool::new(false);
/// Allocations left before the next sample; the hook's fast path.
static SKIP: AtomicU64 = AtomicU64::new(0);
/// Panics caught in hooks and hooks that found the state busy. Outside the
/// lock: a panic may have happened while holding it.
static HOOK_ERRORS: AtomicU64 = AtomicU64::new(0);
/// The allocation tracepoint (a Ruby object kept by
/// `rb_gc_register_mark_object`), made on first start; 0 until then.
static TRACEPOINT: AtomicU64 = AtomicU64::new(0);
/// The end-of-marking tracepoint (it learns frees), on with the allocation
/// one; 0 until first start.
static GC_TRACEPOINT: AtomicU64 = AtomicU64::new(0);
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

/// `rb_data_type_t` holds raw pointers; this one is immutable and static.
struct DataType(rb_data_type_t);
unsafe impl Sync for DataType {}

static KEEPER_TYPE: DataType = DataType(rb_data_type_t {
    wrap_struct_name: c"heapscope_profiler".as_ptr(),
    function: rb_data_type_struct__bindgen_ty_1 {
        dmark: Some(keeper_mark),
        dfree: None,
        dsize: None,
        dcompact: Some(keeper_compact),
        reserved: [std::ptr::null_mut()],
    },
    parent: std::ptr::null(),
    data: std::ptr::null_mut(),
    flags: 0,
});

/// The keeper's data pointer: Ruby skips mark and compact functions of
/// DATA objects whose pointer is NULL, so it points at this.
static KEEPER_TAG: u8 = 0;

pub fn init(_ruby: &Ruby, native: RModule) -> Result<(), Error> {
    // The keeper lives for the whole process; the profiler's data is global.
    unsafe {
        let keeper =
            rb_data_typed_object_wrap(0, &KEEPER_TAG as *const u8 as *mut c_void, &KEEPER_TYPE.0);
        rb_gc_register_mark_object(keeper);
    }
    native.define_singleton_method("profiler_start", function!(start, -1))?;
    native.define_singleton_method("profiler_stop", function!(stop, 0))?;
    native.define_singleton_method("profiler_running?", function!(running, 0))?;
    native.define_singleton_method("profiler_flush", function!(flush, 1))?;
    native.define_singleton_method("profiler_stats", function!(stats, 0))?;
    native.define_singleton_method("profiler_after_fork", function!(after_fork, 0))?;
    native.define_singleton_method("profiler_pause", function!(pause, 0))?;
    native.define_singleton_method("profiler_tick", function!(tick, 0))?;
    native.define_singleton_method("profiler_windowed?", function!(windowed, 0))?;
    Ok(())
}

fn lock() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
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
    let windows = HookWindows::plan(rate, duty);
    // Made before taking the lock: creating them allocates Ruby objects.
    let tp = tracepoint(&TRACEPOINT, RUBY_INTERNAL_EVENT_NEWOBJ);
    let gc_tp = tracepoint(&GC_TRACEPOINT, RUBY_INTERNAL_EVENT_GC_END_MARK);
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
    // The first slice is always watched, so a short program is profiled
    // before the agent's thread first ticks.
    HOOK_ON.store(true, Relaxed);
    unsafe {
        rb_tracepoint_enable(gc_tp);
        rb_tracepoint_enable(tp);
    }
    RUNNING.store(true, Relaxed);
    Ok(true)
}

/// The tracepoint kept in `slot`, made (and kept alive) on first use.
fn tracepoint(slot: &AtomicU64, events: u32) -> VALUE {
    let mut tp = slot.load(Relaxed) as VALUE;
    if tp == 0 {
        unsafe {
            tp = rb_tracepoint_new(Qnil as VALUE, events, Some(hook), std::ptr::null_mut());
            rb_gc_register_mark_object(tp);
        }
        slot.store(tp as u64, Relaxed);
    }
    tp
}

/// Ruby's count of objects allocated so far (`GC.stat(:total_allocated_objects)`).
fn total_allocated() -> u64 {
    unsafe {
        let key = rb_sys::rb_id2sym(rb_sys::rb_intern(c"total_allocated_objects".as_ptr()));
        rb_sys::rb_gc_stat(key) as u64
    }
}

fn disable_hooks() {
    if RUNNING.swap(false, Relaxed) {
        for slot in [&TRACEPOINT, &GC_TRACEPOINT] {
            let tp = slot.load(Relaxed) as VALUE;
            if tp != 0 {
                unsafe {
                    rb_tracepoint_disable(tp);
                }
            }
        }
        HOOK_ON.store(false, Relaxed);
    }
}

/// `profiler_stop` → nil. The live set is measured now and kept as fixed
/// rows: with the hooks off, later flushes could not tell a tracked
/// object from a reused slot.
fn stop() -> Result<(), Error> {
    let was_running = RUNNING.load(Relaxed);
    disable_hooks();
    if !was_running {
        return Ok(());
    }
    let _guard = RubyCalls::begin();
    if WINDOWED.load(Relaxed) {
        drop_replaced();
    }
    let (live, allocs) = {
        let g = lock();
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
    let measured = unsafe { measure(&live) };
    let classes = unsafe { class_names(&measured, &allocs) };
    if let Some(st) = lock().as_mut() {
        st.core.freeze(&measured, &classes);
    }
    Ok(())
}

fn running() -> bool {
    RUNNING.load(Relaxed)
}

/// `profiler_pause` → nil: in the heap-dump child, only turn the hooks off.
fn pause() {
    if RUNNING.load(Relaxed) {
        disable_hooks();
        if let Some(st) = lock().as_mut() {
            st.paused = true;
        }
    }
}

/// `profiler_after_fork` → nil: in a forked child, allocations and counters
/// start over; the live set stays; the hooks stay on (a tracepoint survives
/// fork).
fn after_fork() {
    if let Some(st) = lock().as_mut() {
        st.core.after_fork(seed());
        SKIP.store(st.core.next_skip(), Relaxed);
        st.since = Instant::now();
    }
    SEEN.store(0, Relaxed);
    BASE_TOTAL.store(total_allocated(), Relaxed);
    HOOK_ERRORS.store(0, Relaxed);
}

/// `profiler_stats` → `{sampled:, tracked:, freed:, dropped:, flushes:, hook_errors:}`.
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
        ("flushes", s.flushes),
        ("hook_errors", HOOK_ERRORS.load(Relaxed)),
    ] {
        h.aset(ruby.to_symbol(k), v)?;
    }
    Ok(h)
}

/// `profiler_flush(path)` → path (the caller's String itself: a flush
/// allocates no Ruby object outside its unsampled section).
fn flush(ruby: &Ruby, path_value: RString) -> Result<RString, Error> {
    let path = path_value.to_string()?;
    let profile = {
        let _guard = RubyCalls::begin();
        if WINDOWED.load(Relaxed) {
            drop_replaced();
        }
        // 1. Under the lock: what needs Ruby.
        let (live, allocs, unnamed) = {
            let g = lock();
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
        let measured = unsafe { measure(&live) };
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
        st.frame_names.extend(names);
        if WINDOWED.load(Relaxed) {
            let total = total_allocated().saturating_sub(BASE_TOTAL.load(Relaxed));
            st.core.set_coverage(SEEN.load(Relaxed), total);
        }
        // For the profile's comment; the counter itself lives outside the lock.
        st.core.stats_mut().hook_errors = HOOK_ERRORS.load(Relaxed);
        let meta = ProfileMeta {
            time_nanos: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0),
            duration_nanos: st.since.elapsed().as_nanos() as i64,
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

/// While alive: our allocations are not sampled and GC is off (restored to
/// its previous state on drop), so no tracked object, class or frame is
/// freed or moved while Ruby is asked about it. Taken before `STATE`:
/// `rb_gc_disable` finishes a lazy sweep, during which objects are freed.
struct RubyCalls {
    gc_was_disabled: bool,
}

impl RubyCalls {
    fn begin() -> RubyCalls {
        IN_FLUSH.store(true, Relaxed);
        let was = unsafe { rb_gc_disable() };
        RubyCalls {
            gc_was_disabled: was == Qtrue as VALUE,
        }
    }
}

impl Drop for RubyCalls {
    fn drop(&mut self) {
        if !self.gc_was_disabled {
            unsafe {
                rb_gc_enable();
            }
        }
        IN_FLUSH.store(false, Relaxed);
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

/// The object's builtin type and its `klass` field (`struct RBasic`).
unsafe fn basic(obj: VALUE) -> (u8, VALUE) {
    let p = obj as *const VALUE;
    let flags = std::ptr::read_volatile(p);
    let klass = std::ptr::read_volatile(p.add(1));
    ((flags & 0x1f) as u8, klass)
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

/// Sizes, current types and classes of live tracked objects. Needs GC off.
unsafe fn measure(live: &[(u64, Tracked)]) -> Vec<Measured> {
    let mut out = Vec::with_capacity(live.len());
    for &(addr, t) in live {
        let obj = addr as VALUE;
        let (ty, klass) = basic(obj);
        // Defensive: a live object never changes its builtin type, so a
        // mismatch (or a free/zombie/moved slot) means a stale entry.
        if ty != t.ty || matches!(ty, 0x00 | 0x1d | 0x1e) {
            continue;
        }
        out.push(Measured {
            addr,
            stack: t.stack,
            ty,
            klass: real_class(ty, klass),
            size: rb_obj_memsize_of(obj) as u64,
        });
    }
    out
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
        // rb_tracearg_object raises for GC events: only ask on NEWOBJ.
        if event & RUBY_INTERNAL_EVENT_NEWOBJ != 0 {
            on_newobj(rb_tracearg_object(arg));
        } else if event & RUBY_INTERNAL_EVENT_GC_END_MARK != 0 {
            on_end_mark();
        }
    });
    if caught.is_err() {
        HOOK_ERRORS.fetch_add(1, Relaxed);
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
    if IN_FLUSH.load(Relaxed) {
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
    let Some(mut g) = hook_lock() else { return };
    let Some(st) = g.as_mut() else { return };
    SKIP.store(st.core.next_skip(), Relaxed);
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

/// Marking is complete: tracked objects left unmarked are about to be swept.
unsafe fn on_end_mark() {
    if let Some(mut g) = hook_lock() {
        if let Some(st) = g.as_mut() {
            st.core
                .sweep(|a| unsafe { rb_objspace_marked_object_p(a as VALUE) != 0 });
        }
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
/// watched, and switches both hooks. Turning them off gives every tracked
/// object an object id, since no GC hook will report its free; turning them
/// on first drops the tracked objects that were freed meanwhile, since the
/// GC hook would take a new object in the same slot for ours.
fn tick() -> bool {
    if !RUNNING.load(Relaxed) || !WINDOWED.load(Relaxed) {
        return HOOK_ON.load(Relaxed);
    }
    let want = next_window_draw() < f64::from_bits(DUTY_BITS.load(Relaxed));
    if want == HOOK_ON.load(Relaxed) {
        return want;
    }
    let (tp, gc_tp) = (
        TRACEPOINT.load(Relaxed) as VALUE,
        GC_TRACEPOINT.load(Relaxed) as VALUE,
    );
    let _guard = RubyCalls::begin();
    if want {
        drop_replaced();
        unsafe {
            rb_tracepoint_enable(gc_tp);
            rb_tracepoint_enable(tp);
        }
    } else {
        unsafe {
            rb_tracepoint_disable(tp);
            rb_tracepoint_disable(gc_tp);
        }
        identify_tracked();
    }
    HOOK_ON.store(want, Relaxed);
    want
}

/// Gives tracked objects without one an object id; forgets those that
/// cannot carry one (Ruby-internal objects). Needs `RubyCalls`.
fn identify_tracked() {
    let pending = match lock().as_ref() {
        Some(st) if !st.paused => st.core.unidentified(),
        _ => return,
    };
    // Ids are made without the lock: rb_obj_id inserts into Ruby's tables.
    let ids: Vec<(u64, Option<u64>)> = pending
        .iter()
        .map(|&(addr, ty)| {
            let id = if type_has_class(ty) {
                unsafe { fixnum_id(rb_sys::rb_obj_id(addr as VALUE)) }
            } else {
                None
            };
            (addr, id)
        })
        .collect();
    if let Some(st) = lock().as_mut() {
        for (addr, id) in ids {
            match id {
                Some(id) => st.core.set_id(addr, id),
                None => st.core.forget(addr),
            }
        }
    }
}

/// Frees, as far as the tables go, identified objects whose slot no longer
/// holds them. Needs `RubyCalls` (GC off: slots cannot change meanwhile).
fn drop_replaced() {
    let identified = match lock().as_ref() {
        Some(st) => st.core.identified(),
        None => return,
    };
    let gone: Vec<u64> = identified
        .into_iter()
        .filter(|&(addr, id)| unsafe { !still_holds(addr, id) })
        .map(|(addr, _)| addr)
        .collect();
    if let Some(st) = lock().as_mut() {
        for addr in gone {
            st.core.record_free(addr);
        }
    }
}

/// Whether the slot at `addr` still holds the object whose id is `id`: a
/// live object that has an id (the flag is tested first, so asking never
/// gives a new object an id) and that id.
unsafe fn still_holds(addr: u64, id: u64) -> bool {
    let flags = std::ptr::read_volatile(addr as *const VALUE) as u64;
    let ty = (flags & 0x1f) as u8;
    // T_NONE (free slot), T_ZOMBIE, T_MOVED.
    if matches!(ty, 0x00 | 0x1d | 0x1e) || !type_has_class(ty) {
        return false;
    }
    if flags & rb_sys::ruby_fl_type::RUBY_FL_SEEN_OBJ_ID as u64 == 0 {
        return false;
    }
    fixnum_id(rb_sys::rb_obj_id(addr as VALUE)) == Some(id)
}

/// An object id as a number (ids are Fixnums until 2**62 objects).
unsafe fn fixnum_id(v: VALUE) -> Option<u64> {
    rb_sys::FIXNUM_P(v).then(|| rb_sys::FIX2LONG(v) as u64)
}

/// GC mark: pin every frame VALUE and class the tables refer to.
unsafe extern "C" fn keeper_mark(_: *mut c_void) {
    let Some(g) = hook_lock() else { return };
    if let Some(st) = g.as_ref() {
        st.core.for_each_mark(|v| unsafe { rb_gc_mark(v as VALUE) });
    }
}

/// GC compaction: tracked objects may have moved.
unsafe extern "C" fn keeper_compact(_: *mut c_void) {
    let Some(mut g) = hook_lock() else { return };
    if let Some(st) = g.as_mut() {
        st.core
            .relocate(|a| unsafe { rb_gc_location(a as VALUE) as u64 });
    }
}
