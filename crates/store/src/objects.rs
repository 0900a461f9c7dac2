//! `--objects`: every object (with its references) and root of a dump in the
//! `objects` and `roots` tables (`refs` is a view of one row per reference), as the Postgres heap dump analyzer kept them
//! (COPY on PostgreSQL, one prepared insert on SQLite, nothing allocated per
//! row). docs/store.md documents the columns, with SQL.

use heapscope_heap::Heap;

use crate::db::{Db, Result, RowSink, Value};

/// Addresses as BIGINT: the same 64 bits, read as signed. Heap addresses
/// of 64-bit Linux are below 2^47, so they stay positive.
pub fn address_value(a: u64) -> Value {
    Value::Int(a as i64)
}

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// The `objects` columns that describe the object itself, in table order
/// (after `dump_id`, before `refs`).
pub const RECORD_COLUMNS: &[&str] = &[
    "address",
    "type",
    "class_address",
    "class_name",
    "memsize",
    "generation",
    "file",
    "line",
    "method",
    "value",
];

pub fn store_objects(db: &mut Db, dump_id: i64, heap: &Heap) -> Result<()> {
    // Names per class and per interned string, made once (a dump has
    // millions of objects and thousands of classes).
    let class_names: Vec<String> = (0..heap.classes.len() as u32)
        .map(|c| heap.class_display(c))
        .collect();
    // In address order, the tables' keys only ever grow: their B-trees are
    // appended to instead of split all over (three times faster on SQLite).
    let mut order: Vec<u32> = heap.ids().collect();
    order.sort_unstable_by_key(|&id| heap.address[id as usize]);
    let mut columns = vec!["dump_id"];
    columns.extend_from_slice(RECORD_COLUMNS);
    columns.push("refs");
    db.bulk_write("objects", &columns, true, &mut |sink: &mut dyn RowSink| {
        let mut refs_text = String::new();
        for &id in &order {
            let i = id as usize;
            sink.int(dump_id);
            sink.int(heap.address[i] as i64);
            let t = heap.type_name(id);
            sink.text(t);
            let class = heap.class[i];
            match heap.class_of(id) {
                Some(c) => {
                    sink.int(c.address as i64);
                    sink.text(&class_names[class as usize]);
                }
                None => {
                    sink.null();
                    sink.null();
                }
            }
            sink.int(heap.memsize(id) as i64);
            sink.opt_int(heap.generation(id).map(i64::from));
            match heap.location(id) {
                Some(l) => {
                    sink.text(&lossy(heap.strings.get(l.file)));
                    sink.int(l.line.into());
                }
                None => {
                    sink.null();
                    sink.null();
                }
            }
            sink.opt_text(heap.method_name(id).map(lossy).as_deref());
            let value = match t {
                "STRING" | "SYMBOL" | "FLOAT" => heap.string_value(id),
                "CLASS" | "MODULE" | "DATA" | "IMEMO" => heap.detail_str(id),
                _ => None,
            };
            sink.opt_text(value.map(lossy).as_deref());
            // References as a JSON array of addresses (the `refs` view
            // unpacks them): one row per object keeps loads fast.
            let refs = heap.refs(id);
            if refs.is_empty() {
                sink.null();
            } else {
                refs_text.clear();
                refs_text.push('[');
                for (k, &to) in refs.iter().enumerate() {
                    if k > 0 {
                        refs_text.push(',');
                    }
                    let mut digits = [0u8; 20];
                    let digits = crate::db::itoa(heap.address[to as usize] as i64, &mut digits);
                    // Digits are ASCII.
                    refs_text.push_str(std::str::from_utf8(digits).unwrap_or("0"));
                }
                refs_text.push(']');
                sink.text(&refs_text);
            }
            sink.end_row();
        }
    })?;
    if db.is_postgres() {
        // The BRIN index knows a block range's addresses only once it is
        // summarised: without this, lookups by address scan the dump.
        db.query(
            "SELECT brin_summarize_new_values('objects_by_address')",
            &[],
        )?;
    }
    db.bulk_write(
        "roots",
        &["dump_id", "root", "address"],
        false,
        &mut |sink: &mut dyn RowSink| {
            for r in &heap.roots {
                let name = lossy(heap.strings.get(r.category));
                for &to in heap.root_refs(r) {
                    sink.int(dump_id);
                    sink.text(&name);
                    sink.int(heap.address[to as usize] as i64);
                    sink.end_row();
                }
            }
        },
    )?;
    Ok(())
}
