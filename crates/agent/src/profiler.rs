//! The sampling heap profiler's Ruby-independent core: the sampler, frame and
//! stack interning, the table of live sampled objects with its cap, the
//! allocation totals, and assembling a pprof [`Profile`] from names and sizes
//! the extension resolved.
//!
//! The extension (`crates/ruby-ext/src/profiler.rs`) calls into this from its
//! allocation and end-of-marking hooks, so nothing on those paths allocates more than a
//! hash-map entry, and nothing panics on any input.
//!
//! Sizes (Ruby's `rb_obj_memsize_of`, the size `ObjectSpace.memsize_of`
//! reports): a live object is measured at each flush; a freed one when the
//! free hook reports it ([`Profiler::record_free_sized`]), for the types
//! whose size Ruby computes from the object's own memory; otherwise its last
//! measured size counts. Only a sampled object never measured (dropped at the
//! cap, or of a type not measured at free and freed before any flush) counts
//! [`SLOT_SIZE`] bytes, and is counted in the `unmeasured_samples` comment.
//!
//! Words: "live"/"in use" is the shallow size of objects still alive
//! (`inuse_*`), not `heapscope retained`'s dominator-based retained size.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::path::Path;

use heapscope_pprof::{Label, Line, Location, Profile, Sample, StringTable};

/// Bytes counted for a sampled object never measured: one 40-byte slot.
pub const SLOT_SIZE: u64 = 40;

/// Most frames recorded per sample (bounds the hook's buffers).
pub const MAX_FRAMES_LIMIT: usize = 4096;

/// Decides which allocations are sampled: a geometric skip count drawn from
/// the rate, so the per-allocation work is a decrement (kept by the caller)
/// and a draw happens once per sample. Each allocation is sampled
/// independently with probability `rate`.
#[derive(Debug, Clone)]
pub struct Sampler {
    rate: f64,
    /// `ln(1 - rate)`, cached; unused when `rate == 1`.
    ln_q: f64,
    state: u64,
}

impl Sampler {
    /// `rate` must be in (0, 1] (checked by [`check_settings`]).
    pub fn new(rate: f64, seed: u64) -> Sampler {
        Sampler {
            rate,
            ln_q: (-rate).ln_1p(),
            state: seed,
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn reseed(&mut self, seed: u64) {
        self.state = seed;
    }

    /// splitmix64: tiny, fast, and good enough to drive a sampler.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// How many allocations to let pass before the next sampled one:
    /// Geometric(rate) failures before a success.
    pub fn next_skip(&mut self) -> u64 {
        if self.rate >= 1.0 {
            return 0;
        }
        // u in (0, 1], never 0, so ln(u) is finite.
        let u = ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let skip = (u.ln() / self.ln_q).floor();
        if skip.is_finite() && skip >= 0.0 && skip < u64::MAX as f64 {
            skip as u64
        } else {
            u64::MAX
        }
    }
}

/// Checks `profiler_start`'s arguments; the message becomes an ArgumentError.
pub fn check_settings(rate: f64, max_frames: i64, max_samples: i64) -> Result<(), String> {
    if !(rate.is_finite() && rate > 0.0 && rate <= 1.0) {
        return Err(format!("sample rate must be > 0 and <= 1, got {rate}"));
    }
    if max_samples < 0 {
        return Err(format!("max_samples must be >= 0, got {max_samples}"));
    }
    if !(0..=MAX_FRAMES_LIMIT as i64).contains(&max_frames) {
        return Err(format!(
            "max_frames must be between 0 and {MAX_FRAMES_LIMIT}, got {max_frames}"
        ));
    }
    Ok(())
}

/// Ruby's builtin type (the low 5 bits of an object's flags) as a label,
/// spelled as `ObjectSpace.dump` spells it, so agent profiles and
/// `heapscope pprof` of a dump carry the same `type` labels.
pub fn type_name(ty: u8) -> &'static str {
    match ty {
        0x00 => "NONE",
        0x01 => "OBJECT",
        0x02 => "CLASS",
        0x03 => "MODULE",
        0x04 => "FLOAT",
        0x05 => "STRING",
        0x06 => "REGEXP",
        0x07 => "ARRAY",
        0x08 => "HASH",
        0x09 => "STRUCT",
        0x0a => "BIGNUM",
        0x0b => "FILE",
        0x0c => "DATA",
        0x0d => "MATCH",
        0x0e => "COMPLEX",
        0x0f => "RATIONAL",
        0x14 => "SYMBOL",
        0x1a => "IMEMO",
        0x1b => "NODE",
        0x1c => "ICLASS",
        0x1d => "ZOMBIE",
        0x1e => "MOVED",
        _ => "UNKNOWN",
    }
}

/// Whether Ruby computes the size of an object of this builtin type from the
/// object's own memory only (its slot and buffers it alone owns), so that it
/// may be measured in the free hook, which runs before Ruby frees any of
/// it: OBJECT, FLOAT, STRING, REGEXP, ARRAY, HASH, STRUCT, BIGNUM, MATCH,
/// COMPLEX, RATIONAL and IMEMO (Ruby's internal records: environments,
/// method entries, instruction sequences). Classes, DATA (whose size
/// function is another extension's code, which may read objects freed in
/// the same sweep) and FILE are measured only while alive: at flushes and
/// when the hooks turn off.
pub fn measurable_at_free(ty: u8) -> bool {
    matches!(ty, 0x01 | 0x04..=0x0a | 0x0d..=0x0f | 0x1a)
}

/// Whether objects of this builtin type have a real class in their `klass`
/// field (imemo and node objects keep other data there; iclasses are
/// internal).
pub fn type_has_class(ty: u8) -> bool {
    matches!(ty, 0x01..=0x0f | 0x14)
}

/// A rate for comments: 9 significant digits at most, so 0.2 does not read
/// 0.19999999999999998.
fn short(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let digits = 9 - x.abs().log10().ceil() as i32;
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// When the allocation hook is on. While any allocation or GC hook is set,
/// Ruby sends every allocation through its slow path, which cost an
/// allocation-heavy Rack app a fifth of its throughput before any sampling
/// (bench/agent.sh). So below `sample_rate` 1 the hooks are on only in a
/// random share `duty` of short time slices (the agent's thread draws at each
/// tick), sampling at `rate / duty` inside them; estimates are scaled by the
/// share of allocations the hook actually saw ([`Profiler::set_coverage`]),
/// so they stay unbiased whatever the windows were. At `duty` 1 (and at rate
/// 1) the hooks are always on and counts are exact at rate 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HookWindows {
    /// Share of GC intervals with the hook on, in (0, 1].
    pub duty: f64,
    /// Sampling rate while the hook is on, in (0, 1].
    pub in_window_rate: f64,
}

impl HookWindows {
    /// `rate` and `duty` as set: the duty is raised to at least the rate, so
    /// that inside a window at most every allocation is sampled.
    pub fn plan(rate: f64, duty: f64) -> HookWindows {
        let duty = duty.clamp(rate, 1.0);
        HookWindows {
            duty,
            in_window_rate: (rate / duty).min(1.0),
        }
    }

    pub fn always_on(&self) -> bool {
        self.duty >= 1.0
    }
}

/// Hashes object addresses for the tracked table, looked up on every sampled
/// allocation and swept at every GC: a multiply and a fold instead of SipHash
/// (addresses are not attacker-chosen, and 8-aligned, hence the shift).
#[derive(Default, Clone, Copy)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, x: u64) {
        let h = (x >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}

/// The tracked table's map type.
pub type AddrMap<V> = HashMap<u64, V, BuildHasherDefault<AddrHasher>>;

/// A live sampled object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    pub stack: u32,
    /// Builtin type and real class when it was allocated.
    pub ty: u8,
    pub klass: u64,
    /// Last size a flush measured; 0 when none did yet.
    pub size: u64,
    /// False for objects inherited from the parent across a fork: they are
    /// live here, but were not allocated since `after_fork`.
    pub counted: bool,
}

/// How the extension finds a tracked object again.
///
/// While the hooks are on, Ruby reports every free (the FREEOBJ event), so
/// an address stays ours until its free arrives: `Addr`. When the hooks turn
/// off no free is reported any more, and an address alone would let a later
/// flush read a slot that Ruby has freed, reused or even unmapped. So every
/// addressed object is handed to a Ruby `ObjectSpace::WeakMap` under a fresh
/// key before the hooks go off, and found again only through it: `Weak`.
/// Ruby clears a weak entry when its object dies, so a flush never touches
/// an object that is not alive, and needs no object id (which costs a shape
/// transition on Ruby 4.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    Addr(u64),
    Weak(u64),
}

/// What allocation totals are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllocKey {
    pub stack: u32,
    pub ty: u8,
    pub klass: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocTotals {
    /// Sampled allocations.
    pub count: u64,
    /// Bytes of those no longer live (freed or never tracked); live tracked
    /// objects add their size at each flush.
    pub settled_bytes: u64,
}

/// Counters reported by `profiler_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub sampled: u64,
    pub freed: u64,
    pub dropped: u64,
    /// Live sampled objects no longer followed because they cannot carry an
    /// object id (Ruby-internal objects) when the hooks turned off.
    pub untracked: u64,
    pub flushes: u64,
    /// Panics caught in hooks, and hooks skipped because the table was busy.
    pub hook_errors: u64,
    /// Sampled objects counted at [`SLOT_SIZE`] because none was measured.
    pub unmeasured: u64,
    /// Sampled allocations made by the agent itself, left out of the profile.
    pub agent: u64,
}

/// Whether a sample was tracked or dropped at the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Tracked,
    Dropped,
}

/// One live object as a flush (or stop) measured it: its type and real class
/// now (class 0: none), and its size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    pub slot: Slot,
    pub stack: u32,
    pub ty: u8,
    pub klass: u64,
    pub size: u64,
}

/// A live object with its class already named (kept after `stop`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRow {
    pub stack: u32,
    pub ty: u8,
    pub class: Option<String>,
    pub size: u64,
}

/// A frame as the extension resolved it from its frame VALUE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrameName {
    pub label: String,
    pub path: String,
    pub first_lineno: i64,
}

/// Interned frames `(frame VALUE, line)` and stacks (lists of frame ids,
/// innermost first). Frame VALUEs are also kept once each, in first-seen order,
/// for the extension to mark and to resolve.
#[derive(Debug, Default)]
pub struct Interner {
    values: Vec<u64>,
    value_ids: FxHashMap<u64, u32>,
    frames: Vec<(u32, i32)>,
    frame_ids: FxHashMap<(u32, i32), u32>,
    stacks: Vec<Box<[u32]>>,
    stack_ids: FxHashMap<Box<[u32]>, u32>,
    /// Stacks as captured, straight to their id: most samples repeat a stack
    /// seen before, and one hash of the raw pairs is far cheaper than
    /// interning each frame (frame VALUEs are pinned, so raw pairs are stable).
    raw_ids: FxHashMap<Box<[(u64, i32)]>, u32>,
    scratch: Vec<u32>,
}

impl Interner {
    /// The stack id of `frames` (`(frame VALUE, line)`, innermost first).
    pub fn intern(&mut self, frames: &[(u64, i32)]) -> u32 {
        if let Some(&id) = self.raw_ids.get(frames) {
            return id;
        }
        let id = self.intern_frames(frames);
        self.raw_ids.insert(frames.into(), id);
        id
    }

    fn intern_frames(&mut self, frames: &[(u64, i32)]) -> u32 {
        self.scratch.clear();
        for &(value, line) in frames {
            let vid = match self.value_ids.get(&value) {
                Some(&id) => id,
                None => {
                    let id = self.values.len() as u32;
                    self.values.push(value);
                    self.value_ids.insert(value, id);
                    id
                }
            };
            let fid = *self.frame_ids.entry((vid, line)).or_insert_with(|| {
                self.frames.push((vid, line));
                (self.frames.len() - 1) as u32
            });
            self.scratch.push(fid);
        }
        if let Some(&id) = self.stack_ids.get(&self.scratch[..]) {
            return id;
        }
        let id = self.stacks.len() as u32;
        let stack: Box<[u32]> = self.scratch.as_slice().into();
        self.stacks.push(stack.clone());
        self.stack_ids.insert(stack, id);
        id
    }

    /// Every distinct frame VALUE, in the order of their ids.
    pub fn values(&self) -> &[u64] {
        &self.values
    }

    /// A stack as `(frame VALUE id, line)` pairs, innermost first.
    pub fn stack(&self, id: u32) -> impl Iterator<Item = (u32, i32)> + '_ {
        self.stacks
            .get(id as usize)
            .map(|s| &s[..])
            .unwrap_or(&[])
            .iter()
            .map(|&f| self.frames[f as usize])
    }

    /// A stack as `(frame VALUE, line)` pairs (for tests and debugging).
    pub fn stack_values(&self, id: u32) -> Vec<(u64, i32)> {
        self.stack(id)
            .map(|(v, l)| (self.values[v as usize], l))
            .collect()
    }

    pub fn stack_count(&self) -> usize {
        self.stacks.len()
    }
}

/// The whole profiler state, minus anything Ruby.
#[derive(Debug)]
pub struct Profiler {
    sampler: Sampler,
    max_samples: usize,
    max_frames: usize,
    interner: Interner,
    /// Tracked objects the hooks follow by address ([`Slot::Addr`]).
    tracked: AddrMap<Tracked>,
    /// Tracked objects handed to Ruby's weak map, by key ([`Slot::Weak`]).
    weak: FxHashMap<u64, Tracked>,
    next_weak_key: u64,
    allocs: FxHashMap<AllocKey, AllocTotals>,
    /// Share of all allocations the hook saw (1 when it is always on); see
    /// [`HookWindows`].
    coverage: f64,
    /// Set by [`Profiler::freeze`] when the hooks stop: the live set as the
    /// stop measured it, reported by later flushes instead of `tracked`.
    frozen: Option<Vec<LiveRow>>,
    stats: Stats,
    count_agent: bool,
}

impl Profiler {
    pub fn new(rate: f64, max_samples: usize, max_frames: usize, seed: u64) -> Profiler {
        Profiler {
            sampler: Sampler::new(rate, seed),
            max_samples,
            max_frames: max_frames.min(MAX_FRAMES_LIMIT),
            interner: Interner::default(),
            tracked: AddrMap::default(),
            weak: FxHashMap::default(),
            next_weak_key: 1,
            allocs: FxHashMap::default(),
            coverage: 1.0,
            frozen: None,
            stats: Stats::default(),
            count_agent: false,
        }
    }

    /// The share of the allocations the hook sees that are sampled.
    pub fn rate(&self) -> f64 {
        self.sampler.rate()
    }

    /// Sets the share of all allocations the hook saw, `seen / total`, for
    /// scaling estimates; 1 (the default) when the hook is always on.
    pub fn set_coverage(&mut self, seen: u64, total: u64) {
        self.coverage = if seen == 0 || total <= seen {
            1.0
        } else {
            seen as f64 / total as f64
        };
    }

    /// The probability that any one allocation was sampled.
    pub fn effective_rate(&self) -> f64 {
        self.rate() * self.coverage
    }

    pub fn max_frames(&self) -> usize {
        self.max_frames
    }

    /// Allocations to skip before the next sample (see [`Sampler`]).
    pub fn next_skip(&mut self) -> u64 {
        self.sampler.next_skip()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Live sampled objects tracked now (or frozen at stop).
    pub fn tracked_len(&self) -> usize {
        match &self.frozen {
            Some(rows) => rows.len(),
            None => self.tracked.len() + self.weak.len(),
        }
    }

    /// Tracked objects followed by address (see [`Slot`]).
    pub fn tracked(&self) -> &AddrMap<Tracked> {
        &self.tracked
    }

    /// Tracked objects handed to the weak map (see [`Slot`]).
    pub fn weak(&self) -> &FxHashMap<u64, Tracked> {
        &self.weak
    }

    pub fn allocs(&self) -> &FxHashMap<AllocKey, AllocTotals> {
        &self.allocs
    }

    pub fn interner(&self) -> &Interner {
        &self.interner
    }

    /// Records a sampled allocation of the object at `addr`.
    pub fn record_sample(
        &mut self,
        addr: u64,
        ty: u8,
        klass: u64,
        frames: &[(u64, i32)],
    ) -> Outcome {
        let frames = &frames[..frames.len().min(self.max_frames)];
        let stack = self.interner.intern(frames);
        self.stats.sampled += 1;
        let totals = self
            .allocs
            .entry(AllocKey { stack, ty, klass })
            .or_default();
        totals.count += 1;
        // A slot reused without a free event we saw (hooks were off): the old
        // entry is stale, replace it.
        if let Some(old) = self.tracked.remove(&addr) {
            self.settle(&old);
        }
        if self.tracked.len() + self.weak.len() >= self.max_samples {
            self.stats.dropped += 1;
            if let Some(t) = self.allocs.get_mut(&AllocKey { stack, ty, klass }) {
                t.settled_bytes += SLOT_SIZE;
                self.stats.unmeasured += 1;
            }
            return Outcome::Dropped;
        }
        self.tracked.insert(
            addr,
            Tracked {
                stack,
                ty,
                klass,
                size: 0,
                counted: true,
            },
        );
        Outcome::Tracked
    }

    /// Adds a no-longer-live object's bytes to its allocation totals.
    fn settle(&mut self, t: &Tracked) {
        if !t.counted {
            return;
        }
        let key = AllocKey {
            stack: t.stack,
            ty: t.ty,
            klass: t.klass,
        };
        if let Some(totals) = self.allocs.get_mut(&key) {
            totals.settled_bytes += if t.size > 0 {
                t.size
            } else {
                self.stats.unmeasured += 1;
                SLOT_SIZE
            };
        }
    }

    /// A sampled allocation made by the agent itself: not recorded, only
    /// counted (the `agent_allocations` comment).
    pub fn record_agent_sample(&mut self) {
        self.stats.agent += 1;
    }

    /// The object followed at `addr`, if any (for the free hook to decide
    /// whether to measure it).
    pub fn tracked_at(&self, addr: u64) -> Option<&Tracked> {
        self.tracked.get(&addr)
    }

    /// [`Profiler::record_free`] with the size the free hook measured (None:
    /// the last measured size counts).
    pub fn record_free_sized(&mut self, addr: u64, size: Option<u64>) -> bool {
        if let (Some(size), Some(t)) = (size, self.tracked.get_mut(&addr)) {
            t.size = size;
        }
        self.record_free(addr)
    }

    /// Records the size of a followed object measured outside a flush
    /// (before a hand-off: it may die unseen, or be forgotten, after it).
    pub fn set_size(&mut self, slot: Slot, size: u64) {
        let t = match slot {
            Slot::Addr(a) => self.tracked.get_mut(&a),
            Slot::Weak(k) => self.weak.get_mut(&k),
        };
        if let Some(t) = t {
            t.size = size;
        }
    }

    /// The object at `addr` was freed (a FREEOBJ event); true when it was a
    /// tracked one.
    pub fn record_free(&mut self, addr: u64) -> bool {
        self.free_slot(Slot::Addr(addr))
    }

    /// The tracked object in `slot` is gone: freed (its weak entry was
    /// cleared, or a free event named its address).
    pub fn free_slot(&mut self, slot: Slot) -> bool {
        match self.take(slot) {
            Some(t) => {
                self.stats.freed += 1;
                self.settle(&t);
                true
            }
            None => false,
        }
    }

    fn take(&mut self, slot: Slot) -> Option<Tracked> {
        match slot {
            Slot::Addr(a) => self.tracked.remove(&a),
            Slot::Weak(k) => self.weak.remove(&k),
        }
    }

    /// Before the hooks turn off: moves every addressed object that can be
    /// weakly referenced to a fresh weak key, and returns `(address, key)`
    /// for the extension to store in its weak map while the objects are
    /// still known to be alive. Ruby-internal objects (imemo, node, iclass:
    /// no weak reference can hold them) are forgotten. See [`Slot`].
    pub fn hand_off(&mut self) -> Vec<(u64, u64)> {
        let mut out = Vec::with_capacity(self.tracked.len());
        let mut entries: Vec<(u64, Tracked)> = self.tracked.drain().collect();
        // Keys in address order: deterministic for tests, cheap.
        entries.sort_unstable_by_key(|&(a, _)| a);
        for (addr, t) in entries {
            if type_has_class(t.ty) {
                let key = self.next_weak_key;
                self.next_weak_key += 1;
                self.weak.insert(key, t);
                out.push((addr, key));
            } else {
                self.stats.untracked += 1;
                self.settle(&t);
            }
        }
        out
    }

    /// Stops following a live object (one the weak map would not take, or
    /// every addressed one when a free event may have been missed). Its
    /// allocation stays counted; it no longer shows as live.
    pub fn forget(&mut self, slot: Slot) {
        if let Some(t) = self.take(slot) {
            self.stats.untracked += 1;
            self.settle(&t);
        }
    }

    /// Forgets every object followed by address: used when the extension
    /// cannot vouch that it saw every free.
    pub fn forget_addressed(&mut self) {
        let addrs: Vec<u64> = self.tracked.keys().copied().collect();
        for a in addrs {
            self.forget(Slot::Addr(a));
        }
    }

    /// After GC compaction: `location` maps an old address to the new one.
    pub fn relocate(&mut self, mut location: impl FnMut(u64) -> u64) {
        let moved: Vec<(u64, u64)> = self
            .tracked
            .keys()
            .filter_map(|&a| {
                let b = location(a);
                (a != b).then_some((a, b))
            })
            .collect();
        if moved.is_empty() {
            return;
        }
        // Take every moved entry out first: an object may move into the
        // old address of another moved one.
        let entries: Vec<(u64, Tracked)> = moved
            .iter()
            .filter_map(|&(a, b)| self.tracked.remove(&a).map(|t| (b, t)))
            .collect();
        for (b, t) in entries {
            self.tracked.insert(b, t);
        }
    }

    /// Everything the extension must keep alive (and pinned): frame VALUEs and
    /// the classes allocation totals refer to.
    pub fn for_each_mark(&self, mut f: impl FnMut(u64)) {
        for &v in self.interner.values() {
            f(v);
        }
        for k in self.allocs.keys() {
            if k.klass != 0 {
                f(k.klass);
            }
        }
    }

    /// In a forked child: allocation totals and counters start over, the live
    /// set stays (those objects are live in the child too), and the sampler is
    /// reseeded so siblings do not sample the same allocations.
    pub fn after_fork(&mut self, seed: u64) {
        self.allocs.clear();
        self.stats = Stats::default();
        for t in self.tracked.values_mut().chain(self.weak.values_mut()) {
            t.counted = false;
        }
        self.sampler.reseed(seed);
    }

    /// The live tracked objects, for the extension to find and measure.
    pub fn live(&self) -> Vec<(Slot, Tracked)> {
        let addressed = self.tracked.iter().map(|(&a, &t)| (Slot::Addr(a), t));
        let weak = self.weak.iter().map(|(&k, &t)| (Slot::Weak(k), t));
        addressed.chain(weak).collect()
    }

    fn get(&self, slot: Slot) -> Option<&Tracked> {
        match slot {
            Slot::Addr(a) => self.tracked.get(&a),
            Slot::Weak(k) => self.weak.get(&k),
        }
    }

    /// Keeps the sizes a flush measured, for objects freed later.
    pub fn record_sizes(&mut self, measured: &[Measured]) {
        for m in measured {
            let t = match m.slot {
                Slot::Addr(a) => self.tracked.get_mut(&a),
                Slot::Weak(k) => self.weak.get_mut(&k),
            };
            if let Some(t) = t {
                t.size = m.size;
            }
        }
    }

    /// When the hooks stop: the live set becomes fixed rows (frees are no
    /// longer seen, so addresses could not be trusted later).
    pub fn freeze(&mut self, measured: &[Measured], class_names: &HashMap<u64, String>) {
        self.record_sizes(measured);
        let rows = measured
            .iter()
            .map(|m| LiveRow {
                stack: m.stack,
                ty: m.ty,
                class: class_names.get(&m.klass).cloned(),
                size: m.size,
            })
            .collect();
        let live: Vec<Tracked> = self
            .tracked
            .drain()
            .map(|(_, t)| t)
            .chain(self.weak.drain().map(|(_, t)| t))
            .collect();
        for t in &live {
            self.settle(t);
        }
        self.frozen = Some(rows);
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// Builds the profile: in-use values from `measured` (the live objects
    /// a flush measured; ignored after [`Profiler::freeze`]), allocation
    /// values from the totals plus the measured sizes of live objects.
    /// `frame_names[i]` names `interner().values()[i]`; `class_names` maps
    /// real classes to names (absent: no class label). Counts the flush.
    pub fn build_profile(
        &mut self,
        measured: &[Measured],
        frame_names: &[FrameName],
        class_names: &HashMap<u64, String>,
        meta: &ProfileMeta,
    ) -> Profile {
        self.record_sizes(measured);
        self.stats.flushes += 1;
        let scale = 1.0 / self.effective_rate();

        // (stack, type, class) -> the values in SAMPLE_TYPES order:
        // [allocations, allocated bytes, live objects, live bytes]
        let mut rows: HashMap<(u32, u8, Option<String>), [u64; 4]> = HashMap::new();
        match &self.frozen {
            Some(frozen) => {
                for r in frozen {
                    let v = rows.entry((r.stack, r.ty, r.class.clone())).or_default();
                    v[2] += 1;
                    v[3] += r.size;
                }
            }
            None => {
                for m in measured {
                    let v = rows
                        .entry((m.stack, m.ty, class_names.get(&m.klass).cloned()))
                        .or_default();
                    v[2] += 1;
                    v[3] += m.size;
                    // A live object's allocation bytes are its size now.
                    if let Some(t) = self.get(m.slot) {
                        if t.counted {
                            let k = (t.stack, t.ty, class_names.get(&t.klass).cloned());
                            rows.entry(k).or_default()[1] += m.size;
                        }
                    }
                }
            }
        }
        for (k, t) in &self.allocs {
            let v = rows
                .entry((k.stack, k.ty, class_names.get(&k.klass).cloned()))
                .or_default();
            v[0] += t.count;
            v[1] += t.settled_bytes;
        }

        let mut strings = StringTable::new();
        let mut profile = Profile::default();
        heapscope_pprof::set_sample_types(&mut profile, &mut strings, scale.round() as i64);
        profile.time_nanos = meta.time_nanos;
        profile.duration_nanos = meta.duration_nanos;
        let program = strings.get(&meta.program);
        profile.mapping.push(heapscope_pprof::mapping(program));

        let mut functions: HashMap<(String, String, i64), u64> = HashMap::new();
        let mut locations: HashMap<(u64, i64), u64> = HashMap::new();
        let mut stack_locs: HashMap<u32, Vec<u64>> = HashMap::new();
        let type_key = strings.get(heapscope_pprof::LABEL_TYPE);
        let class_key = strings.get(heapscope_pprof::LABEL_CLASS);

        let mut keys: Vec<_> = rows.into_iter().collect();
        keys.sort();
        for ((stack, ty, class), v) in keys {
            if v == [0; 4] {
                continue;
            }
            let loc_ids = stack_locs.entry(stack).or_insert_with(|| {
                let frames: Vec<(FrameName, i64)> = self
                    .interner
                    .stack(stack)
                    .map(|(vid, line)| {
                        let name = frame_names.get(vid as usize).cloned().unwrap_or_default();
                        (name, line as i64)
                    })
                    .collect();
                let mut ids = Vec::with_capacity(frames.len());
                for (i, (name, line)) in frames.iter().enumerate() {
                    let (path, line) = attributed_site(&frames, i, name, *line);
                    let fkey = (name.label.clone(), path.to_string(), name.first_lineno);
                    let next_fid = functions.len() as u64 + 1;
                    let fid = *functions.entry(fkey.clone()).or_insert_with(|| {
                        let name = strings.get(&fkey.0);
                        let file = strings.get(&fkey.1);
                        profile
                            .function
                            .push(heapscope_pprof::function(next_fid, name, file, fkey.2));
                        next_fid
                    });
                    let next_lid = locations.len() as u64 + 1;
                    let lid = *locations.entry((fid, line)).or_insert_with(|| {
                        profile.location.push(Location {
                            id: next_lid,
                            mapping_id: heapscope_pprof::MAPPING_ID,
                            line: vec![Line {
                                function_id: fid,
                                line,
                            }],
                            ..Default::default()
                        });
                        next_lid
                    });
                    ids.push(lid);
                }
                ids
            });
            let mut label = vec![Label {
                key: type_key,
                str: strings.get(type_name(ty)),
                ..Default::default()
            }];
            if let Some(c) = &class {
                label.push(Label {
                    key: class_key,
                    str: strings.get(c),
                    ..Default::default()
                });
            }
            profile.sample.push(Sample {
                location_id: loc_ids.clone(),
                value: v
                    .iter()
                    .map(|&x| (x as f64 * scale).round() as i64)
                    .collect(),
                label,
            });
        }

        let s = self.stats;
        let scaled = |n: u64| (n as f64 * scale).round() as u64;
        for c in [
            "heapscope sampling heap profiler".to_string(),
            format!(
                "sample_rate={} hook_coverage={:.4} effective_rate={}",
                short(self.rate()),
                self.coverage,
                short(self.effective_rate())
            ),
            format!("dropped_samples={}", s.dropped),
            format!("untracked_samples={}", s.untracked),
            format!(
                "sampled={} freed={} tracked={}",
                s.sampled,
                s.freed,
                self.tracked_len()
            ),
            format!("hook_errors={}", s.hook_errors),
            format!(
                "unmeasured_samples={} (alloc_space counts {SLOT_SIZE} bytes for each)",
                s.unmeasured
            ),
            if self.count_agent {
                "agent_allocations=counted (the agent's own allocations are in this profile)"
                    .to_string()
            } else {
                format!(
                    "agent_allocations={} (estimated; the agent's own allocations, left out)",
                    scaled(s.agent)
                )
            },
        ] {
            profile.comment.push(strings.get(&c));
        }
        profile.string_table = strings.into_table();
        profile
    }

    /// Whether the extension counts the agent's own allocations (the
    /// `profile_agent` setting); only changes the `agent_allocations` comment.
    pub fn set_count_agent(&mut self, on: bool) {
        self.count_agent = on;
    }
}

/// The file and line a frame is shown at: its own, or for a C frame (no
/// file) those of the nearest Ruby frame that called it, as memory_profiler
/// and `ObjectSpace.allocation_sourcefile` attribute an allocation in a C
/// method to the Ruby line; the C frame keeps its name.
fn attributed_site<'a>(
    frames: &'a [(FrameName, i64)],
    i: usize,
    name: &'a FrameName,
    line: i64,
) -> (&'a str, i64) {
    if !name.path.is_empty() {
        return (&name.path, line);
    }
    frames[i + 1..]
        .iter()
        .find(|(f, _)| !f.path.is_empty())
        .map(|(f, l)| (f.path.as_str(), *l))
        .unwrap_or(("", line))
}

/// Writes `profile` gzipped to `path` atomically (a private temporary file in the
/// same directory, then a rename), creating parent directories.
pub fn write_profile(path: &Path, profile: &Profile) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::secure::create_private_dir_all(dir)?;
    }
    heapscope_pprof::write_atomic(path, |w| heapscope_pprof::write_gz(profile, w))
}

/// Times and the program written into a profile.
#[derive(Debug, Clone, Default)]
pub struct ProfileMeta {
    pub time_nanos: i64,
    pub duration_nanos: i64,
    /// The profile's mapping file: the program (Ruby's executable).
    pub program: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn names(p: &Profiler) -> Vec<FrameName> {
        p.interner()
            .values()
            .iter()
            .map(|v| FrameName {
                label: format!("f{v}"),
                path: format!("file{}.rb", v % 3),
                first_lineno: *v as i64,
            })
            .collect()
    }

    /// Rows of a profile: (leaf-first "label:line" frames, type, class) -> values.
    fn rows(p: &Profile) -> BTreeMap<(Vec<String>, String, Option<String>), Vec<i64>> {
        let s = |i: i64| p.string_table[i as usize].clone();
        let mut out = BTreeMap::new();
        for sample in &p.sample {
            let frames = sample
                .location_id
                .iter()
                .map(|id| {
                    let loc = &p.location[*id as usize - 1];
                    assert_eq!(loc.id, *id);
                    let f = &p.function[loc.line[0].function_id as usize - 1];
                    format!("{}:{}", s(f.name), loc.line[0].line)
                })
                .collect();
            let mut ty = String::new();
            let mut class = None;
            for l in &sample.label {
                match s(l.key).as_str() {
                    "type" => ty = s(l.str),
                    "class" => class = Some(s(l.str)),
                    k => panic!("unexpected label {k}"),
                }
            }
            let prev = out.insert((frames, ty, class), sample.value.clone());
            assert!(prev.is_none(), "duplicate sample row");
        }
        out
    }

    fn measure_all(p: &Profiler, size: impl Fn(Slot) -> u64) -> Vec<Measured> {
        p.live()
            .into_iter()
            .map(|(slot, t)| Measured {
                slot,
                stack: t.stack,
                ty: t.ty,
                klass: t.klass,
                size: size(slot),
            })
            .collect()
    }

    #[test]
    fn windows_keep_the_overall_rate() {
        let w = HookWindows::plan(0.01, 0.05);
        assert!((w.in_window_rate - 0.2).abs() < 1e-12);
        assert_eq!(w.duty, 0.05);
        assert!(!w.always_on());
        let w = HookWindows::plan(1.0, 0.05);
        assert_eq!((w.duty, w.in_window_rate), (1.0, 1.0));
        assert!(w.always_on());
        let w = HookWindows::plan(0.1, 0.05);
        assert_eq!((w.duty, w.in_window_rate), (0.1, 1.0));
    }

    #[test]
    fn hand_off_moves_objects_to_weak_keys_and_forgets_internal_ones() {
        let mut p = Profiler::new(1.0, 10, 4, 1);
        p.record_sample(0x10, 5, 0, &[(1, 1)]);
        p.record_sample(0x20, 0x1a, 0, &[(1, 2)]);
        p.record_sample(0x30, 7, 0, &[(1, 3)]);
        assert_eq!(p.hand_off(), vec![(0x10, 1), (0x30, 2)]);
        assert!(p.tracked().is_empty());
        assert_eq!(p.weak().len(), 2);
        assert_eq!(p.tracked_len(), 2);
        assert_eq!(p.stats().untracked, 1);
        assert_eq!(p.stats().sampled, 3, "a forgotten object stays allocated");
        // Addresses mean nothing once handed off: a free event at 0x10 is
        // someone else's object now.
        assert!(!p.record_free(0x10));
        assert!(p.free_slot(Slot::Weak(1)));
        assert!(!p.free_slot(Slot::Weak(1)));
        p.record_sample(0x10, 5, 0, &[(1, 1)]);
        assert_eq!(p.hand_off(), vec![(0x10, 3)], "keys are never reused");
        p.forget(Slot::Weak(2));
        assert_eq!(p.stats().untracked, 2);
        assert_eq!(p.tracked_len(), 1);
    }

    #[test]
    fn forget_addressed_keeps_weak_entries() {
        let mut p = Profiler::new(1.0, 10, 4, 1);
        p.record_sample(0x10, 5, 0, &[(1, 1)]);
        p.hand_off();
        p.record_sample(0x20, 5, 0, &[(1, 1)]);
        p.forget_addressed();
        assert_eq!(
            p.live().into_iter().map(|(s, _)| s).collect::<Vec<_>>(),
            vec![Slot::Weak(1)]
        );
    }

    #[test]
    fn coverage_scales_estimates() {
        let mut p = Profiler::new(0.5, 10, 4, 1);
        assert_eq!(p.effective_rate(), 0.5);
        p.set_coverage(250, 1000);
        assert_eq!(p.effective_rate(), 0.125);
        p.set_coverage(0, 1000);
        assert_eq!(p.effective_rate(), 0.5, "no hook events: nothing to scale");
    }

    #[test]
    fn rate_one_samples_everything() {
        let mut s = Sampler::new(1.0, 7);
        assert!((0..1000).all(|_| s.next_skip() == 0));
    }

    #[test]
    fn sampler_hits_the_rate() {
        for &rate in &[0.5, 0.1, 0.01] {
            let mut s = Sampler::new(rate, 42);
            let samples = 20_000u64;
            let allocations: u64 = (0..samples).map(|_| s.next_skip() + 1).sum();
            let observed = samples as f64 / allocations as f64;
            // Mean of the geometric gap is 1/rate; 20k draws pin it to ~1-2%.
            assert!(
                (observed - rate).abs() / rate < 0.05,
                "rate {rate}: observed {observed}"
            );
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(check_settings(0.5, 64, 10).is_ok());
        assert!(check_settings(1.0, 0, 0).is_ok());
        for (r, f, m) in [
            (0.0, 64, 1),
            (1.5, 64, 1),
            (f64::NAN, 64, 1),
            (f64::INFINITY, 64, 1),
            (-0.1, 64, 1),
            (0.5, -1, 1),
            (0.5, 5000, 1),
            (0.5, 64, -1),
        ] {
            assert!(check_settings(r, f, m).is_err(), "{r} {f} {m}");
        }
    }

    #[test]
    fn interning_shares_frames_and_stacks() {
        let mut i = Interner::default();
        let a = i.intern(&[(10, 1), (20, 5)]);
        let b = i.intern(&[(10, 1), (20, 5)]);
        let c = i.intern(&[(10, 2), (20, 5)]);
        let e = i.intern(&[]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(e, a);
        assert_eq!(i.values(), &[10, 20]);
        assert_eq!(i.stack_values(c), vec![(10, 2), (20, 5)]);
        assert_eq!(i.stack_values(e), vec![]);
        assert_eq!(i.stack_count(), 3);
    }

    #[test]
    fn cap_drops_and_counts() {
        let mut p = Profiler::new(1.0, 2, 8, 1);
        assert_eq!(p.record_sample(1, 5, 100, &[(7, 3)]), Outcome::Tracked);
        assert_eq!(p.record_sample(2, 5, 100, &[(7, 3)]), Outcome::Tracked);
        assert_eq!(p.record_sample(3, 5, 100, &[(7, 3)]), Outcome::Dropped);
        assert!(p.record_free(1));
        assert!(!p.record_free(3));
        assert_eq!(p.record_sample(4, 5, 100, &[(7, 3)]), Outcome::Tracked);
        let s = p.stats();
        assert_eq!((s.sampled, s.freed, s.dropped), (4, 1, 1));
        assert_eq!(p.tracked_len(), 2);
        let key = AllocKey {
            stack: 0,
            ty: 5,
            klass: 100,
        };
        // One dropped and one freed unmeasured object: one slot each.
        assert_eq!(p.allocs()[&key].count, 4);
        assert_eq!(p.allocs()[&key].settled_bytes, 2 * SLOT_SIZE);
    }

    #[test]
    fn frames_are_truncated_to_max_frames() {
        let mut p = Profiler::new(1.0, 10, 2, 1);
        p.record_sample(1, 5, 0, &[(1, 1), (2, 2), (3, 3)]);
        assert_eq!(p.interner().stack_values(0), vec![(1, 1), (2, 2)]);
    }

    #[test]
    fn profile_values_and_labels() {
        let mut p = Profiler::new(0.5, 100, 8, 1);
        // Two Strings at f1:10 <- f2:20, one freed; one Array at f1:11.
        p.record_sample(0x100, 0x05, 7, &[(1, 10), (2, 20)]);
        p.record_sample(0x200, 0x05, 7, &[(1, 10), (2, 20)]);
        p.record_sample(0x300, 0x07, 8, &[(1, 11), (2, 20)]);
        p.record_sample(0x400, 0x1a, 0, &[(1, 11), (2, 20)]);
        p.record_free(0x200);
        let measured = measure_all(&p, |s| match s {
            Slot::Addr(a) | Slot::Weak(a) => a / 0x10,
        });
        let classes: HashMap<u64, String> =
            [(7, "String".to_string()), (8, "Array".to_string())].into();
        let fnames = names(&p);
        let prof = p.build_profile(&measured, &fnames, &classes, &ProfileMeta::default());
        let s = |i: i64| prof.string_table[i as usize].as_str();
        let types: Vec<_> = prof
            .sample_type
            .iter()
            .map(|t| (s(t.r#type), s(t.unit)))
            .collect();
        assert_eq!(types, heapscope_pprof::SAMPLE_TYPES);
        assert_eq!(s(prof.default_sample_type), "inuse_space");
        // The Ruby names are left alone by pprof (see heapscope_pprof::function),
        // and every location points at the one named mapping.
        assert!(prof.function.iter().all(|f| f.system_name == 0));
        assert_eq!(prof.mapping.len(), 1);
        assert!(prof.location.iter().all(|l| l.mapping_id == 1));
        let r = rows(&prof);
        let f = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
        // Scaled by 1/0.5 = 2.
        assert_eq!(
            r[&(f("f1:10", "f2:20"), "STRING".into(), Some("String".into()))],
            vec![4, 2 * (0x10 + SLOT_SIZE as i64), 2, 2 * 0x10]
        );
        assert_eq!(
            r[&(f("f1:11", "f2:20"), "ARRAY".into(), Some("Array".into()))],
            vec![2, 2 * 0x30, 2, 2 * 0x30]
        );
        assert_eq!(
            r[&(f("f1:11", "f2:20"), "IMEMO".into(), None)],
            vec![2, 2 * 0x40, 2, 2 * 0x40]
        );
        // One function per frame VALUE, one location per (function, line).
        assert_eq!(prof.function.len(), 2);
        assert_eq!(prof.location.len(), 3);
        assert!(prof.comment.iter().any(|&c| s(c) == "dropped_samples=0"));
        assert_eq!(p.stats().flushes, 1);

        // Freed after being measured: its measured size settles.
        p.record_free(0x100);
        let measured = measure_all(&p, |s| match s {
            Slot::Addr(a) | Slot::Weak(a) => a / 0x10,
        });
        let prof = p.build_profile(&measured, &fnames, &classes, &ProfileMeta::default());
        let r = rows(&prof);
        assert_eq!(
            r[&(f("f1:10", "f2:20"), "STRING".into(), Some("String".into()))],
            vec![4, 2 * (0x10 + SLOT_SIZE as i64), 0, 0]
        );
    }

    #[test]
    fn c_frames_take_the_calling_ruby_line_and_frees_are_measured() {
        let mut p = Profiler::new(1.0, 100, 8, 1);
        // String#* (C, value 1) called from f2 at line 20, itself from f3:30.
        p.record_sample(0x100, 0x05, 7, &[(1, 0), (2, 20), (3, 30)]);
        p.record_sample(0x200, 0x05, 7, &[(1, 0), (2, 20), (3, 30)]);
        assert!(p.record_free_sized(0x100, Some(100_040)));
        assert_eq!(p.tracked_at(0x200).map(|t| t.ty), Some(0x05));
        // Freed unmeasured: a slot, and counted as unmeasured.
        assert!(p.record_free_sized(0x200, None));
        let fnames = vec![
            FrameName {
                label: "String#*".into(),
                path: String::new(),
                first_lineno: 0,
            },
            FrameName {
                label: "block (2 levels) in <main>".into(),
                path: "app.rb".into(),
                first_lineno: 18,
            },
            FrameName {
                label: "<main>".into(),
                path: "app.rb".into(),
                first_lineno: 1,
            },
        ];
        let meta = ProfileMeta {
            program: "/usr/bin/ruby".into(),
            ..Default::default()
        };
        let prof = p.build_profile(&[], &fnames, &HashMap::new(), &meta);
        let s = |i: i64| prof.string_table[i as usize].as_str();
        let leaf = &prof.location[prof.sample[0].location_id[0] as usize - 1];
        let f = &prof.function[leaf.line[0].function_id as usize - 1];
        assert_eq!(
            (s(f.name), s(f.filename), leaf.line[0].line),
            ("String#*", "app.rb", 20)
        );
        assert_eq!(
            prof.sample[0].value,
            vec![2, 100_040 + SLOT_SIZE as i64, 0, 0]
        );
        assert_eq!(s(prof.mapping[0].filename), "/usr/bin/ruby");
        let comments: Vec<&str> = prof.comment.iter().map(|&c| s(c)).collect();
        assert!(
            comments
                .iter()
                .any(|c| c.starts_with("unmeasured_samples=1 ")),
            "{comments:?}"
        );
        assert!(
            comments
                .iter()
                .any(|c| c.starts_with("agent_allocations=0 ")),
            "{comments:?}"
        );
    }

    #[test]
    fn after_fork_keeps_live_objects_but_not_their_allocations() {
        let mut p = Profiler::new(1.0, 100, 8, 1);
        p.record_sample(0x100, 0x05, 7, &[(1, 10)]);
        p.record_sample(0x200, 0x05, 7, &[(1, 10)]);
        p.after_fork(99);
        assert_eq!(p.stats(), Stats::default());
        assert_eq!(p.tracked_len(), 2);
        p.record_sample(0x300, 0x05, 7, &[(1, 10)]);
        p.record_free(0x100);
        let measured = measure_all(&p, |_| 50);
        let prof = p.build_profile(
            &measured,
            &names(&p),
            &HashMap::new(),
            &ProfileMeta::default(),
        );
        let r = rows(&prof);
        assert_eq!(
            r[&(vec!["f1:10".to_string()], "STRING".into(), None)],
            vec![1, 50, 2, 100]
        );
    }

    #[test]
    fn freeze_keeps_the_live_set_for_later_flushes() {
        let mut p = Profiler::new(1.0, 100, 8, 1);
        p.record_sample(0x100, 0x05, 7, &[(1, 10)]);
        let measured = measure_all(&p, |_| 64);
        let classes: HashMap<u64, String> = [(7, "String".to_string())].into();
        p.freeze(&measured, &classes);
        assert!(p.is_frozen());
        assert_eq!(p.tracked_len(), 1);
        assert!(p.tracked().is_empty());
        let prof = p.build_profile(&[], &names(&p), &classes, &ProfileMeta::default());
        let r = rows(&prof);
        assert_eq!(
            r[&(
                vec!["f1:10".to_string()],
                "STRING".into(),
                Some("String".into())
            )],
            vec![1, 64, 1, 64]
        );
    }

    #[test]
    fn write_profile_creates_dirs_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/mem.pprof.gz");
        let mut p = Profiler::new(1.0, 10, 8, 1);
        p.record_sample(1, 5, 0, &[(1, 1)]);
        let measured = measure_all(&p, |_| 40);
        let prof = p.build_profile(
            &measured,
            &names(&p),
            &HashMap::new(),
            &ProfileMeta::default(),
        );
        write_profile(&path, &prof).unwrap();
        let back = heapscope_pprof::read_gz(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, prof);
    }

    #[test]
    fn relocation_handles_chains() {
        let mut p = Profiler::new(1.0, 100, 8, 1);
        p.record_sample(1, 5, 0, &[(1, 1)]);
        p.record_sample(2, 7, 0, &[(1, 1)]);
        // 1 -> 2 and 2 -> 3 in one compaction.
        p.relocate(|a| if a <= 2 { a + 1 } else { a });
        let mut live: Vec<_> = p.live().into_iter().map(|(a, t)| (a, t.ty)).collect();
        live.sort();
        assert_eq!(live, vec![(Slot::Addr(2), 5), (Slot::Addr(3), 7)]);
    }

    /// The model's live object: slot, type, stack, allocated since the fork.
    type ModelObject = (Slot, u8, Vec<(u64, i32)>, bool);

    #[derive(Debug, Clone)]
    enum Event {
        Alloc {
            addr: u64,
            ty: u8,
            stack: Vec<(u64, i32)>,
        },
        Free {
            addr: u64,
        },
        Compact {
            shift: u64,
        },
        /// The hooks turn off: addressed objects go to the weak map.
        HandOff,
        /// Ruby cleared the weak entries whose keys have these low bits set.
        WeakDie {
            dead_mask: u64,
        },
        Fork,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            4 => (0u64..40, prop_oneof![Just(5u8), Just(7u8), Just(8u8), Just(0x1au8)],
                  prop::collection::vec((0u64..4, 0i32..3), 0..4))
                .prop_map(|(addr, ty, stack)| Event::Alloc { addr, ty, stack }),
            3 => (0u64..40).prop_map(|addr| Event::Free { addr }),
            1 => (1u64..5).prop_map(|shift| Event::Compact { shift }),
            1 => Just(Event::HandOff),
            1 => (0u64..8).prop_map(|dead_mask| Event::WeakDie { dead_mask }),
            1 => Just(Event::Fork),
        ]
    }

    proptest! {
        /// Replays random events against an obviously-correct model: a list
        /// of live objects and a list of allocation records.
        #[test]
        fn table_matches_a_replayed_model(
            events in prop::collection::vec(event(), 0..200),
            cap in 0usize..30,
            max_frames in 0usize..4,
        ) {
            let mut p = Profiler::new(1.0, cap, max_frames, 3);
            // Model: live (addr, ty, stack, counted) in insertion order.
            let mut live: Vec<ModelObject> = Vec::new();
            // Allocation records (ty, stack, tracked) since the last fork.
            let mut allocated: Vec<(u8, Vec<(u64, i32)>)> = Vec::new();
            let (mut dropped, mut freed, mut untracked) = (0u64, 0u64, 0u64);
            for e in &events {
                match e {
                    Event::Alloc { addr, ty, stack } => {
                        let stack: Vec<_> = stack.iter().take(max_frames).cloned().collect();
                        live.retain(|l| l.0 != Slot::Addr(*addr));
                        allocated.push((*ty, stack.clone()));
                        let out = p.record_sample(*addr, *ty, 0, &stack);
                        if live.len() >= cap {
                            dropped += 1;
                            prop_assert_eq!(out, Outcome::Dropped);
                        } else {
                            live.push((Slot::Addr(*addr), *ty, stack, true));
                            prop_assert_eq!(out, Outcome::Tracked);
                        }
                    }
                    Event::Free { addr } => {
                        let was = live.iter().any(|l| l.0 == Slot::Addr(*addr));
                        live.retain(|l| l.0 != Slot::Addr(*addr));
                        if was { freed += 1; }
                        prop_assert_eq!(p.record_free(*addr), was);
                    }
                    Event::HandOff => {
                        let pairs = p.hand_off();
                        let before = live.len();
                        live.retain(|l| !matches!(l.0, Slot::Addr(_)) || type_has_class(l.1));
                        untracked += (before - live.len()) as u64;
                        let mut handed: Vec<u64> = pairs.iter().map(|&(a, _)| a).collect();
                        handed.sort();
                        let mut want: Vec<u64> = live.iter().filter_map(|l| match l.0 {
                            Slot::Addr(a) => Some(a),
                            Slot::Weak(_) => None,
                        }).collect();
                        want.sort();
                        prop_assert_eq!(handed, want);
                        for (a, k) in pairs {
                            prop_assert!(live.iter().all(|l| l.0 != Slot::Weak(k)), "key reused");
                            for l in &mut live {
                                if l.0 == Slot::Addr(a) { l.0 = Slot::Weak(k); }
                            }
                        }
                    }
                    Event::WeakDie { dead_mask } => {
                        let mask = *dead_mask;
                        let dead = |s: Slot| matches!(s, Slot::Weak(k) if mask != 0 && k & mask == mask);
                        let gone: Vec<Slot> = live.iter().map(|l| l.0).filter(|&s| dead(s)).collect();
                        live.retain(|l| !dead(l.0));
                        freed += gone.len() as u64;
                        for s in gone {
                            prop_assert!(p.free_slot(s));
                        }
                    }
                    Event::Compact { shift } => {
                        // Moves every addressed object to addr + 1000 * shift
                        // (injective); Ruby moves weak entries itself.
                        for l in &mut live {
                            if let Slot::Addr(a) = &mut l.0 { *a += 1000 * shift; }
                        }
                        p.relocate(|a| a + 1000 * shift);
                    }
                    Event::Fork => {
                        for l in &mut live { l.3 = false; }
                        allocated.clear();
                        dropped = 0;
                        freed = 0;
                        untracked = 0;
                        p.after_fork(5);
                    }
                }
            }
            prop_assert_eq!(p.tracked_len(), live.len());
            prop_assert_eq!(p.stats().dropped, dropped);
            prop_assert_eq!(p.stats().freed, freed);
            prop_assert_eq!(p.stats().untracked, untracked);
            prop_assert_eq!(p.stats().sampled, allocated.len() as u64);
            let mut got: Vec<_> = p.live().into_iter()
                .map(|(a, t)| (a, t.ty, p.interner().stack_values(t.stack), t.counted))
                .collect();
            got.sort();
            let mut want = live.clone();
            want.sort();
            prop_assert_eq!(&got, &want);

            // The profile: in use = live, allocations = records; sizes are
            // addr-independent here (every live object measures 100 bytes),
            // and unmeasured dead ones a slot each.
            let measured = measure_all(&p, |_| 100);
            let fnames = names(&p);
            let prof = p.build_profile(&measured, &fnames, &HashMap::new(), &ProfileMeta::default());
            let key = |ty: u8, st: &[(u64, i32)]| {
                let frames: Vec<String> = st.iter().map(|(v, l)| format!("f{v}:{l}")).collect();
                (frames, type_name(ty).to_string(), None::<String>)
            };
            let mut model: BTreeMap<_, Vec<i64>> = BTreeMap::new();
            // Values in SAMPLE_TYPES order: alloc objects/bytes, in-use objects/bytes.
            for (_, ty, st, counted) in &live {
                let v = model.entry(key(*ty, st)).or_insert(vec![0; 4]);
                v[2] += 1;
                v[3] += 100;
                if *counted { v[1] += 100; }
            }
            let mut live_by_key: BTreeMap<_, i64> = BTreeMap::new();
            for (_, ty, st, counted) in &live {
                if *counted { *live_by_key.entry(key(*ty, st)).or_default() += 1; }
            }
            for (ty, st) in &allocated {
                let v = model.entry(key(*ty, st)).or_insert(vec![0; 4]);
                v[0] += 1;
            }
            // Dead or dropped allocations: count minus still-live ones, a slot each.
            for (k, v) in model.iter_mut() {
                let live_n = live_by_key.get(k).copied().unwrap_or(0);
                v[1] += (v[0] - live_n) * SLOT_SIZE as i64;
            }
            model.retain(|_, v| v.iter().any(|&x| x != 0));
            prop_assert_eq!(rows(&prof), model);
        }
    }
}
