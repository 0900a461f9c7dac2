//! Exact allocation reports (`Heapscope.report { }`): every allocation of a
//! block, with GC left on. Separate from the sampling profiler (its own two
//! tracepoints, its own state), so both can run at once: the profiler's
//! numbers are not touched.
//!
//! - NEWOBJ records each visible object (not IMEMO, NODE or ICLASS) by
//!   address with its allocation file and line (`rb_tracearg_path`, as
//!   objspace's allocation tracing does: no allocation). Paths are interned
//!   as bytes in Rust. Hooks never allocate a Ruby object.
//! - FREEOBJ, which Ruby runs before it frees anything of the object, folds
//!   a freed object into its site: real class read from the object then,
//!   size from `rb_obj_memsize_of` for the types whose size is their own
//!   memory (`measurable_at_free`; DATA, classes and FILE, whose size may
//!   depend on memory freed earlier in the same sweep, were measured at the
//!   last GC start, when they were alive: a GC_START hook), and a String's
//!   value (first 200 characters); a String sharing another's buffer, which
//!   the same sweep may already have freed, was read at that GC start.
//! - At the end: NEWOBJ off, a full GC (`GC.start` from the Ruby layer, FREEOBJ
//!   still on), then GC off and
//!   FREEOBJ off: every object still recorded is alive, so it is read and
//!   measured as retained. Only then are Ruby objects built.
//! - A hidden keeper marks the classes the totals name (their names are
//!   read at the end) and the filtered thread, and follows compaction.
//! - The agent's own threads (`Heapscope.own`, the agent thread) are left
//!   out, as in the profiler.

#![allow(clippy::unnecessary_cast)]

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::os::raw::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, Once, TryLockError};

use crate::roots::{new_keeper, DataType, GcRoot};
use heapscope_agent::profiler::{measurable_at_free, type_name, AddrHasher, SLOT_SIZE};
use heapscope_agent::report::{write_report_profile, SiteRow};
use magnus::{function, prelude::*, Error, RArray, RModule, Ruby, Value};
use rb_sys::{
    rb_cString, rb_class_real, rb_gc_disable, rb_gc_enable, rb_gc_location, rb_gc_mark,
    rb_thread_current, rb_tracearg_event_flag, rb_tracearg_from_tracepoint, rb_tracearg_lineno,
    rb_tracearg_object, rb_tracearg_path, rb_tracepoint_disable, rb_tracepoint_enable,
    rb_tracepoint_new, ruby_value_type, Qnil, Qtrue, RUBY_INTERNAL_EVENT_FREEOBJ,
    RUBY_INTERNAL_EVENT_GC_START, RUBY_INTERNAL_EVENT_NEWOBJ, VALUE,
};

extern "C" {
    fn rb_obj_memsize_of(obj: VALUE) -> usize;
}

type AddrMap<V> = HashMap<u64, V, BuildHasherDefault<AddrHasher>>;

/// Characters of a String's value kept for the string report (as
/// memory_profiler shows).
const STRING_CHARS: usize = 200;
/// Flag bits from the headers of the Ruby being built against (they move:
/// `FL_SINGLETON` is `FL_USER0` up to 3.3, `FL_USER1` in 3.4). A string
/// shares another's buffer when `ELTS_SHARED` (`STR_SHARED`) is set on a
/// non-embedded string (before 3.2 an embedded string keeps its length in
/// those bits).
const FL_SINGLETON: VALUE = rb_sys::ruby_fl_type::RUBY_FL_SINGLETON as VALUE;
const STR_NOEMBED: VALUE = rb_sys::ruby_rstring_flags::RSTRING_NOEMBED as VALUE;
const STR_SHARED: VALUE = rb_sys::ruby_fl_type::RUBY_ELTS_SHARED as VALUE;

#[derive(Clone, Copy)]
struct Rec {
    file: u32,
    line: u32,
    ty: u8,
}

#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct SiteKey {
    klass: u64,
    file: u32,
    line: u32,
    ty: u8,
}

/// (string id + 1, or 0 when unreadable; file; line).
type StringSite = (u32, u32, u32);

#[derive(Default, Clone, Copy)]
struct Totals {
    count: u64,
    bytes: u64,
    retained: u64,
    retained_bytes: u64,
}

#[derive(Default)]
struct Interner {
    ids: HashMap<Vec<u8>, u32>,
    values: Vec<Vec<u8>>,
}

impl Interner {
    fn intern(&mut self, bytes: &[u8]) -> u32 {
        if let Some(&id) = self.ids.get(bytes) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(bytes.to_vec());
        self.ids.insert(bytes.to_vec(), id);
        id
    }
}

struct State {
    objs: AddrMap<Rec>,
    /// Recorded objects not measurable at free (DATA, classes, FILE): their
    /// size at the last GC start, when they were surely alive (0: none yet).
    later: AddrMap<u64>,
    /// Value ids (+1) of recorded Strings that shared another's buffer at a
    /// GC start (read then, when both were alive): read at free, the buffer
    /// may already be gone.
    shared: AddrMap<u32>,
    /// File 0 is "no Ruby frame".
    files: Interner,
    sites: HashMap<SiteKey, Totals>,
    strings: Interner,
    /// → (allocated, retained).
    string_sites: HashMap<StringSite, (u64, u64)>,
    /// Only this thread's allocations (`threads: :current`), else 0.
    thread: VALUE,
    live: u64,
    peak: u64,
    recording: bool,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Hook calls that could not record (busy lock, a caught panic).
static MISSED: AtomicU64 = AtomicU64::new(0);
/// A Ractor started during the report: its hooks went off, its numbers are
/// incomplete.
static BROKEN: AtomicBool = AtomicBool::new(false);

static NEWOBJ_TP: GcRoot = GcRoot::new();
static FREEOBJ_TP: GcRoot = GcRoot::new();
static GCSTART_TP: GcRoot = GcRoot::new();
static KEEPER: GcRoot = GcRoot::new();
static ROOTS: Once = Once::new();

static KEEPER_TYPE: DataType = DataType::keeper(c"heapscope_report", keeper_mark, keeper_compact);

pub fn init(_ruby: &Ruby, native: RModule) -> Result<(), Error> {
    ROOTS.call_once(|| unsafe {
        for root in [&NEWOBJ_TP, &FREEOBJ_TP, &GCSTART_TP, &KEEPER] {
            root.register();
        }
        KEEPER.set(new_keeper(&KEEPER_TYPE));
        NEWOBJ_TP.set(rb_tracepoint_new(
            Qnil as VALUE,
            RUBY_INTERNAL_EVENT_NEWOBJ,
            Some(hook),
            std::ptr::null_mut(),
        ));
        FREEOBJ_TP.set(rb_tracepoint_new(
            Qnil as VALUE,
            RUBY_INTERNAL_EVENT_FREEOBJ,
            Some(hook),
            std::ptr::null_mut(),
        ));
        GCSTART_TP.set(rb_tracepoint_new(
            Qnil as VALUE,
            RUBY_INTERNAL_EVENT_GC_START,
            Some(hook),
            std::ptr::null_mut(),
        ));
    });
    native.define_singleton_method("report_start", function!(start, 1))?;
    native.define_singleton_method("report_pause", function!(pause, 0))?;
    native.define_singleton_method("report_stop", function!(stop, 0))?;
    native.define_singleton_method("report_abort", function!(abort, 0))?;
    native.define_singleton_method("report_active?", function!(active, 0))?;
    native.define_singleton_method("report_pprof", function!(pprof, 2))?;
    Ok(())
}

fn lock() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

fn hook_lock() -> Option<MutexGuard<'static, Option<State>>> {
    match STATE.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(TryLockError::WouldBlock) => {
            MISSED.fetch_add(1, Relaxed);
            None
        }
    }
}

fn active() -> bool {
    ACTIVE.load(Relaxed)
}

/// `report_start(current_thread_only)` → true. Allocates no Ruby object
/// after the hooks are on.
fn start(ruby: &Ruby, current_only: bool) -> Result<bool, Error> {
    if ACTIVE.swap(true, Relaxed) {
        return Err(Error::new(
            ruby.exception_runtime_error(),
            "a heapscope report is already running in this process",
        ));
    }
    // Ruby's allocation hooks are not Ractor-safe: the guard turns them off
    // before a Ractor starts (`ractor_started`), and none may run now.
    if let Err(e) = ruby.require("heapscope/ractor_guard") {
        ACTIVE.store(false, Relaxed);
        return Err(e);
    }
    if !crate::profiler::single_ractor() {
        ACTIVE.store(false, Relaxed);
        return Err(Error::new(
            ruby.exception_runtime_error(),
            "Heapscope.report cannot run once a Ractor has started (Ruby's allocation hooks \
             are not Ractor-safe)",
        ));
    }
    MISSED.store(0, Relaxed);
    BROKEN.store(false, Relaxed);
    let mut files = Interner::default();
    files.intern(b"");
    *lock() = Some(State {
        objs: AddrMap::default(),
        later: AddrMap::default(),
        shared: AddrMap::default(),
        files,
        sites: HashMap::new(),
        strings: Interner::default(),
        string_sites: HashMap::new(),
        thread: if current_only {
            unsafe { rb_thread_current() }
        } else {
            0
        },
        live: 0,
        peak: 0,
        recording: true,
    });
    unsafe {
        rb_tracepoint_enable(GCSTART_TP.get());
        rb_tracepoint_enable(FREEOBJ_TP.get());
        rb_tracepoint_enable(NEWOBJ_TP.get());
    }
    Ok(true)
}

/// `report_pause` → nil: no more allocations are recorded (frees still are),
/// before the Ruby-level full GC of the end.
fn pause() {
    if !ACTIVE.load(Relaxed) {
        return;
    }
    unsafe {
        rb_tracepoint_disable(NEWOBJ_TP.get());
    }
    if let Some(st) = lock().as_mut() {
        st.recording = false;
    }
}

/// Called before a Ractor is made: every hook off; the report will fail.
pub(crate) fn ractor_started() {
    if ACTIVE.load(Relaxed) && !BROKEN.swap(true, Relaxed) {
        unsafe {
            rb_tracepoint_disable(NEWOBJ_TP.get());
            rb_tracepoint_disable(FREEOBJ_TP.get());
            rb_tracepoint_disable(GCSTART_TP.get());
        }
    }
}

/// Turns both hooks off and forgets everything (a block that raised).
fn abort() {
    if !ACTIVE.load(Relaxed) {
        return;
    }
    unsafe {
        rb_tracepoint_disable(NEWOBJ_TP.get());
        rb_tracepoint_disable(FREEOBJ_TP.get());
        rb_tracepoint_disable(GCSTART_TP.get());
    }
    *lock() = None;
    ACTIVE.store(false, Relaxed);
}

/// `report_stop` → `[sites, strings, stats]`:
/// sites `[[class or nil, file, line, type, count, bytes, retained, retained_bytes], ...]`,
/// strings `[[value or nil, file, line, allocated, retained], ...]`,
/// stats `{peak_live:, missed:}`.
fn stop(ruby: &Ruby) -> Result<RArray, Error> {
    if !ACTIVE.load(Relaxed) {
        return Err(Error::new(
            ruby.exception_runtime_error(),
            "no heapscope report is running",
        ));
    }
    if BROKEN.load(Relaxed) {
        abort();
        return Err(Error::new(
            ruby.exception_runtime_error(),
            "a Ractor started during the report: Ruby's allocation hooks are not \
             Ractor-safe, so the report was abandoned",
        ));
    }
    pause();
    // The Ruby layer ran a full GC after `report_pause` (FREEOBJ on: what
    // died then was counted as freed). Ruby's `GC.start` rather than
    // `rb_gc` from here: called from this C frame, the block's last
    // temporaries were still found on the machine stack and kept.
    // GC off (finishing any lazy sweep first) so nothing recorded can die
    // unseen once FREEOBJ is off.
    let was_disabled = unsafe { rb_gc_disable() } == Qtrue as VALUE;
    unsafe {
        rb_tracepoint_disable(FREEOBJ_TP.get());
        rb_tracepoint_disable(GCSTART_TP.get());
    }
    let taken = lock().take();
    let Some(mut st) = taken else {
        ACTIVE.store(false, Relaxed);
        return Err(Error::new(
            ruby.exception_runtime_error(),
            "the heapscope report lost its state",
        ));
    };
    // Every object still recorded is alive: retained.
    let objs = std::mem::take(&mut st.objs);
    for (addr, rec) in objs {
        unsafe { fold(&mut st, addr as VALUE, rec, true) };
    }
    // Class VALUEs stay alive (the keeper marks them while in `sites`):
    // copy the totals out, then build Ruby objects without the lock.
    let peak = st.peak;
    let sites: Vec<(SiteKey, Totals)> = st.sites.iter().map(|(k, v)| (*k, *v)).collect();
    let string_sites: Vec<(StringSite, (u64, u64))> =
        st.string_sites.iter().map(|(k, v)| (*k, *v)).collect();
    let files = std::mem::take(&mut st.files.values);
    let strings = std::mem::take(&mut st.strings.values);
    // Keep the classes marked until the rows hold them.
    *lock() = Some(State {
        objs: AddrMap::default(),
        later: AddrMap::default(),
        shared: AddrMap::default(),
        files: Interner::default(),
        sites: st.sites,
        strings: Interner::default(),
        string_sites: HashMap::new(),
        thread: 0,
        live: 0,
        peak: 0,
        recording: false,
    });
    if !was_disabled {
        unsafe {
            rb_gc_enable();
        }
    }
    let result = (|| -> Result<RArray, Error> {
        // Ruby arrays, not Vecs: a Vec on the Rust heap is invisible to the
        // GC, which may run while the rows below are built and free them.
        let file_strs = ruby.ary_new_capa(files.len());
        for f in &files {
            if f.is_empty() {
                file_strs.push(ruby.qnil())?;
            } else {
                file_strs.push(ruby.str_from_slice(f))?;
            }
        }
        let rows = ruby.ary_new_capa(sites.len());
        for (k, t) in &sites {
            let klass: Value = if k.klass == 0 {
                ruby.qnil().as_value()
            } else {
                unsafe { <Value as magnus::rb_sys::FromRawValue>::from_raw(k.klass as VALUE) }
            };
            let row = ruby.ary_new_capa(8);
            row.push(klass)?;
            row.push(file_strs.entry::<Value>(k.file as isize)?)?;
            row.push(k.line)?;
            row.push(type_name(k.ty))?;
            row.push(t.count)?;
            row.push(t.bytes)?;
            row.push(t.retained)?;
            row.push(t.retained_bytes)?;
            rows.push(row)?;
        }
        let srows = ruby.ary_new_capa(string_sites.len());
        let values = ruby.ary_new_capa(strings.len());
        for v in &strings {
            values.push(ruby.str_from_slice(v))?;
        }
        for ((s, f, l), (a, r)) in &string_sites {
            let row = ruby.ary_new_capa(5);
            if *s == 0 {
                row.push(ruby.qnil())?;
            } else {
                row.push(values.entry::<Value>(*s as isize - 1)?)?;
            }
            row.push(file_strs.entry::<Value>(*f as isize)?)?;
            row.push(*l)?;
            row.push(*a)?;
            row.push(*r)?;
            srows.push(row)?;
        }
        let stats = ruby.hash_new();
        stats.aset(ruby.to_symbol("peak_live"), peak)?;
        stats.aset(ruby.to_symbol("missed"), MISSED.load(Relaxed))?;
        let out = ruby.ary_new_capa(3);
        out.push(rows)?;
        out.push(srows)?;
        out.push(stats)?;
        std::hint::black_box((file_strs, values));
        Ok(out)
    })();
    *lock() = None;
    ACTIVE.store(false, Relaxed);
    result
}

/// Whether an object of this type with this `klass` word is one Ruby shows
/// (`ObjectSpace.each_object`): not internal, not hidden.
fn visible(ty: u8, klass: VALUE, flags: VALUE) -> bool {
    match ty {
        0x00 | 0x1a..=0x1e => false,
        0x02 if flags & FL_SINGLETON != 0 => false,
        _ => klass != 0,
    }
}

/// Folds a dying (or, at the end, live) object into its site. The object
/// must be alive or inside its FREEOBJ hook.
unsafe fn fold(st: &mut State, obj: VALUE, rec: Rec, retained: bool) {
    let p = obj as *const VALUE;
    let flags = std::ptr::read_volatile(p);
    let klass = std::ptr::read_volatile(p.add(1));
    let ty = (flags & 0x1f) as u8;
    st.live = st.live.saturating_sub(1);
    if ty != rec.ty || !visible(ty, klass, flags) {
        return;
    }
    let klass = rb_class_real(klass) as u64;
    let later = st.later.remove(&(obj as u64));
    let size = if retained || measurable_at_free(ty) {
        rb_obj_memsize_of(obj) as u64
    } else {
        // Measured at the last GC start (alive then), else the slot.
        later.filter(|&n| n > 0).unwrap_or(SLOT_SIZE)
    };
    let t = st
        .sites
        .entry(SiteKey {
            klass,
            file: rec.file,
            line: rec.line,
            ty,
        })
        .or_default();
    t.count += 1;
    t.bytes += size;
    if retained {
        t.retained += 1;
        t.retained_bytes += size;
    }
    if klass == rb_cString as u64 && ty == ruby_value_type::RUBY_T_STRING as u8 {
        // A shared string's buffer belongs to another string, which this
        // sweep may have freed already: its value is not read at free but
        // taken from the GC start before (a shared string's contents cannot
        // change without unsharing it first).
        let shared_id = st.shared.remove(&(obj as u64));
        let sid = if retained || !is_shared(flags) {
            string_id(st, obj)
        } else {
            shared_id.unwrap_or(0)
        };
        let e = st
            .string_sites
            .entry((sid, rec.file, rec.line))
            .or_default();
        e.0 += 1;
        if retained {
            e.1 += 1;
        }
    }
}

fn is_shared(flags: VALUE) -> bool {
    flags & STR_NOEMBED != 0 && flags & STR_SHARED != 0
}

/// The value id (+1) of a String known alive with its buffer.
unsafe fn string_id(st: &mut State, obj: VALUE) -> u32 {
    let ptr = rb_sys::RSTRING_PTR(obj) as *const u8;
    let len = rb_sys::RSTRING_LEN(obj) as usize;
    let bytes = if ptr.is_null() {
        &[][..]
    } else {
        std::slice::from_raw_parts(ptr, len)
    };
    st.strings.intern(prefix(bytes)) + 1
}

/// The first `STRING_CHARS` characters of UTF-8 text (counting lead bytes;
/// continuation bytes are 10xxxxxx).
fn prefix(bytes: &[u8]) -> &[u8] {
    if bytes.len() <= STRING_CHARS {
        return bytes;
    }
    let mut chars = 0;
    for (i, b) in bytes.iter().enumerate() {
        if b & 0xc0 != 0x80 {
            if chars == STRING_CHARS {
                return &bytes[..i];
            }
            chars += 1;
        }
    }
    bytes
}

unsafe extern "C" fn hook(tpval: VALUE, _data: *mut c_void) {
    let caught = std::panic::catch_unwind(|| unsafe {
        let arg = rb_tracearg_from_tracepoint(tpval);
        let event = rb_tracearg_event_flag(arg);
        if event & RUBY_INTERNAL_EVENT_FREEOBJ != 0 {
            on_free(rb_tracearg_object(arg));
        } else if event & RUBY_INTERNAL_EVENT_NEWOBJ != 0 {
            on_new(arg);
        } else if event & RUBY_INTERNAL_EVENT_GC_START != 0 {
            on_gc_start();
        }
    });
    if caught.is_err() {
        MISSED.fetch_add(1, Relaxed);
    }
}

unsafe fn on_new(arg: *mut rb_sys::rb_trace_arg_t) {
    let obj = rb_tracearg_object(arg);
    let flags = std::ptr::read_volatile(obj as *const VALUE);
    let ty = (flags & 0x1f) as u8;
    if matches!(ty, 0x1a..=0x1c) {
        return;
    }
    let Some(mut g) = hook_lock() else { return };
    let Some(st) = g.as_mut() else { return };
    if !st.recording {
        return;
    }
    let current = rb_thread_current();
    if st.thread != 0 && st.thread != current {
        return;
    }
    if crate::profiler::is_agent_thread(current) {
        return;
    }
    let path = rb_tracearg_path(arg);
    let (file, line) =
        if path != Qnil as VALUE && rb_sys::RB_TYPE(path) == ruby_value_type::RUBY_T_STRING {
            let ptr = rb_sys::RSTRING_PTR(path) as *const u8;
            let len = rb_sys::RSTRING_LEN(path) as usize;
            let file = st.files.intern(std::slice::from_raw_parts(ptr, len));
            let line = rb_tracearg_lineno(arg);
            let line = if rb_sys::FIXNUM_P(line) {
                rb_sys::FIX2LONG(line).max(0) as u32
            } else {
                0
            };
            (file, line)
        } else {
            (0, 0)
        };
    st.objs.insert(obj as u64, Rec { file, line, ty });
    if !measurable_at_free(ty) {
        st.later.insert(obj as u64, 0);
    }
    st.live += 1;
    st.peak = st.peak.max(st.live);
}

/// A GC starts: every recorded object is alive (FREEOBJ said which died),
/// so those whose size cannot be taken at free are measured now.
unsafe fn on_gc_start() {
    let Some(mut g) = hook_lock() else { return };
    let Some(st) = g.as_mut() else { return };
    if MISSED.load(Relaxed) != 0 {
        // A free may have gone unrecorded: an address may be dead.
        return;
    }
    for (&addr, size) in st.later.iter_mut() {
        *size = rb_obj_memsize_of(addr as VALUE) as u64;
    }
    // Shared Strings not read yet: read now, while their buffer's owner is
    // alive too (it is referenced by them).
    let string = ruby_value_type::RUBY_T_STRING as u8;
    let found: Vec<u64> = st
        .objs
        .iter()
        .filter(|(addr, rec)| rec.ty == string && !st.shared.contains_key(addr))
        .map(|(&addr, _)| addr)
        .filter(|&addr| {
            let p = addr as *const VALUE;
            let flags = std::ptr::read_volatile(p);
            let klass = std::ptr::read_volatile(p.add(1));
            is_shared(flags) && klass != 0 && rb_class_real(klass) == rb_cString
        })
        .collect();
    for addr in found {
        let id = string_id(st, addr as VALUE);
        st.shared.insert(addr, id);
    }
}

unsafe fn on_free(obj: VALUE) {
    let Some(mut g) = hook_lock() else { return };
    let Some(st) = g.as_mut() else { return };
    if let Some(rec) = st.objs.remove(&(obj as u64)) {
        fold(st, obj, rec, false);
    }
}

/// GC mark: the classes named by the totals and the filtered thread.
unsafe extern "C" fn keeper_mark(_: *mut c_void) {
    let Some(g) = hook_lock() else { return };
    if let Some(st) = g.as_ref() {
        if st.thread != 0 {
            rb_gc_mark(st.thread);
        }
        for k in st.sites.keys() {
            if k.klass != 0 {
                rb_gc_mark(k.klass as VALUE);
            }
        }
    }
}

/// GC compaction: recorded objects may have moved.
unsafe extern "C" fn keeper_compact(_: *mut c_void) {
    let Some(mut g) = hook_lock() else { return };
    if let Some(st) = g.as_mut() {
        let objs = std::mem::take(&mut st.objs);
        st.objs = objs
            .into_iter()
            .map(|(a, r)| (rb_gc_location(a as VALUE) as u64, r))
            .collect();
        let later = std::mem::take(&mut st.later);
        st.later = later
            .into_iter()
            .map(|(a, n)| (rb_gc_location(a as VALUE) as u64, n))
            .collect();
        let shared = std::mem::take(&mut st.shared);
        st.shared = shared
            .into_iter()
            .map(|(a, n)| (rb_gc_location(a as VALUE) as u64, n))
            .collect();
    }
}

/// `report_pprof(path, [[file, line, class_name, type, count, bytes,
/// retained, retained_bytes], ...])` → path: writes the report's sites as
/// pprof (see `heapscope_agent::report`).
fn pprof(ruby: &Ruby, path: String, rows: RArray) -> Result<String, Error> {
    let mut sites = Vec::with_capacity(rows.len());
    for row in rows.into_iter() {
        let (file, line, class, ty, count, bytes, retained, retained_bytes): (
            String,
            i64,
            String,
            String,
            u64,
            u64,
            u64,
            u64,
        ) = magnus::TryConvert::try_convert(row)?;
        sites.push(SiteRow {
            file,
            line,
            class,
            ty,
            count,
            bytes,
            retained,
            retained_bytes,
        });
    }
    let program = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "ruby".to_string());
    write_report_profile(std::path::Path::new(&path), &sites, &program).map_err(|e| {
        Error::new(
            ruby.exception_io_error(),
            format!("writing the report's profile {path}: {e}"),
        )
    })?;
    Ok(path)
}
