//! Byte-string interning: every distinct byte string is stored once in one arena
//! and named by a dense `u32` id.

use hashbrown::HashTable;
use std::hash::{BuildHasher, Hasher};

/// Id of an interned byte string. [`StrId::NONE`] stands for "absent".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StrId(pub u32);

impl Default for StrId {
    fn default() -> Self {
        StrId::NONE
    }
}

impl StrId {
    pub const NONE: StrId = StrId(u32::MAX);
    pub fn is_none(self) -> bool {
        self == StrId::NONE
    }
    pub fn get(self) -> Option<StrId> {
        (!self.is_none()).then_some(self)
    }
}

/// FxHash-like multiplicative hash: fast for the short keys interned here, and
/// deterministic so results never depend on hashing order.
#[derive(Default, Clone, Copy)]
pub struct FastHash;

pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // Final avalanche so that the low bits hashbrown uses are well mixed.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64)
    }
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64)
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i)
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64)
    }
}

impl FastHasher {
    #[inline]
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl BuildHasher for FastHash {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

/// A fast hash map keyed by small plain values (addresses, ids).
pub type FastMap<K, V> = hashbrown::HashMap<K, V, FastHash>;

pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = FastHash.build_hasher();
    h.write(bytes);
    h.finish()
}

/// Interner with all strings in one contiguous arena (no per-string allocation).
#[derive(Default)]
pub struct Interner {
    arena: Vec<u8>,
    /// `ends[i]` is the end of string i in `arena`; it starts where i-1 ends.
    ends: Vec<usize>,
    table: HashTable<u32>,
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, id: StrId) -> &[u8] {
        let i = id.0 as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.arena[start..self.ends[i]]
    }

    /// The string as text, with bytes that are not UTF-8 replaced.
    pub fn text(&self, id: StrId) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.get(id))
    }

    pub fn intern(&mut self, s: &[u8]) -> StrId {
        self.intern_hashed(s, hash_bytes(s))
    }

    pub fn intern_hashed(&mut self, s: &[u8], hash: u64) -> StrId {
        let Self { arena, ends, table } = self;
        let lookup = |id: &u32| {
            let i = *id as usize;
            let start = if i == 0 { 0 } else { ends[i - 1] };
            &arena[start..ends[i]] == s
        };
        if let Some(id) = table.find(hash, lookup) {
            return StrId(*id);
        }
        let id = ends.len() as u32;
        assert!(id != u32::MAX, "more than 4 billion distinct strings");
        arena.extend_from_slice(s);
        ends.push(arena.len());
        let (arena, ends) = (&*arena, &*ends);
        table.insert_unique(hash, id, |id| {
            let i = *id as usize;
            let start = if i == 0 { 0 } else { ends[i - 1] };
            hash_bytes(&arena[start..ends[i]])
        });
        StrId(id)
    }

    pub fn find(&self, s: &[u8]) -> Option<StrId> {
        let hash = hash_bytes(s);
        self.table
            .find(hash, |id| self.get(StrId(*id)) == s)
            .map(|id| StrId(*id))
    }

    pub fn iter(&self) -> impl Iterator<Item = (StrId, &[u8])> {
        (0..self.ends.len() as u32).map(move |i| (StrId(i), self.get(StrId(i))))
    }

    /// Bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.ends.capacity() * std::mem::size_of::<usize>()
            + self.table.capacity() * (std::mem::size_of::<u32>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_dedups() {
        let mut i = Interner::new();
        let a = i.intern(b"alpha");
        let b = i.intern(b"");
        let c = i.intern(b"\xff\xfe");
        assert_eq!(i.intern(b"alpha"), a);
        assert_eq!(i.intern(b""), b);
        assert_eq!(i.get(a), b"alpha");
        assert_eq!(i.get(b), b"");
        assert_eq!(i.get(c), b"\xff\xfe");
        assert_eq!(i.find(b"alpha"), Some(a));
        assert_eq!(i.find(b"beta"), None);
        assert_eq!(i.len(), 3);
        for n in 0..10_000u32 {
            let id = i.intern(n.to_string().as_bytes());
            assert_eq!(i.get(id), n.to_string().as_bytes());
        }
        assert_eq!(i.intern(b"alpha"), a);
    }
}
