//! The byte-string interner.

use std::collections::HashMap;

use heapscope_heap::{hash_bytes, Interner, StrId};
use proptest::prelude::*;

#[test]
fn none_is_not_an_id() {
    assert!(StrId::NONE.is_none());
    assert_eq!(StrId::NONE.get(), None);
    assert_eq!(StrId::default(), StrId::NONE);
    assert_eq!(StrId(0).get(), Some(StrId(0)));
}

#[test]
fn empty_non_utf8_and_text() {
    let mut i = Interner::new();
    assert!(i.is_empty());
    assert_eq!(i.find(b""), None);
    let e = i.intern(b"");
    let x = i.intern(b"caf\xe9");
    let u = i.intern("café".as_bytes());
    assert_eq!(i.len(), 3);
    assert_eq!(i.get(e), b"");
    assert_eq!(i.get(x), b"caf\xe9");
    assert_eq!(i.text(x), "caf\u{fffd}");
    assert_eq!(i.text(u), "café");
    assert_ne!(x, u);
    assert_eq!(i.find(b""), Some(e));
    let all: Vec<(StrId, &[u8])> = i.iter().collect();
    assert_eq!(
        all,
        vec![(e, &b""[..]), (x, &b"caf\xe9"[..]), (u, "café".as_bytes())]
    );
}

#[test]
fn hashing_is_deterministic_and_length_aware() {
    assert_eq!(hash_bytes(b"abc"), hash_bytes(b"abc"));
    assert_ne!(hash_bytes(b"a"), hash_bytes(b"a\0"));
    assert_ne!(hash_bytes(b""), hash_bytes(b"\0"));
    assert_ne!(hash_bytes(b"12345678"), hash_bytes(b"123456780"));
}

#[test]
fn intern_hashed_agrees_with_intern() {
    let mut i = Interner::new();
    let a = i.intern_hashed(b"/app/models/user.rb", hash_bytes(b"/app/models/user.rb"));
    assert_eq!(i.intern(b"/app/models/user.rb"), a);
    assert_eq!(i.find(b"/app/models/user.rb"), Some(a));
}

#[test]
fn many_strings_survive_table_growth() {
    let mut i = Interner::new();
    let ids: Vec<StrId> = (0..50_000u32)
        .map(|n| i.intern(format!("s{n}").as_bytes()))
        .collect();
    assert_eq!(i.len(), 50_000);
    for (n, &id) in ids.iter().enumerate() {
        assert_eq!(id, StrId(n as u32), "ids are dense, in first-seen order");
        assert_eq!(i.get(id), format!("s{n}").as_bytes());
        assert_eq!(i.find(format!("s{n}").as_bytes()), Some(id));
    }
    assert!(i.heap_bytes() >= 50_000 * 2);
}

proptest! {
    /// Interning is a bijection between distinct byte strings and dense ids.
    #[test]
    fn interning_matches_a_hash_map(words in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 0..300)) {
        let mut i = Interner::new();
        let mut model: HashMap<Vec<u8>, StrId> = HashMap::new();
        for w in &words {
            let next = StrId(model.len() as u32);
            let want = *model.entry(w.clone()).or_insert(next);
            prop_assert_eq!(i.intern(w), want);
        }
        prop_assert_eq!(i.len(), model.len());
        for (w, &id) in &model {
            prop_assert_eq!(i.get(id), &w[..]);
            prop_assert_eq!(i.find(w), Some(id));
        }
        prop_assert_eq!(i.iter().count(), model.len());
    }
}
