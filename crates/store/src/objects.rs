//! `--objects`: every object, reference and root of a dump in the `objects`,
//! `refs` and `roots` tables, as the Postgres heap dump analyzer kept them
//! (COPY on PostgreSQL). docs/store.md documents the columns, with SQL.

use heapscope_heap::Heap;

use crate::db::{Db, Result, Row, Value};

/// Addresses as BIGINT: the same 64 bits, read as signed. Heap addresses
/// of 64-bit Linux are below 2^47, so they stay positive.
pub fn address_value(a: u64) -> Value {
    Value::Int(a as i64)
}

fn text(b: Option<&[u8]>) -> Value {
    b.map_or(Value::Null, |b| {
        Value::Text(String::from_utf8_lossy(b).into_owned())
    })
}

pub fn store_objects(db: &mut Db, dump_id: i64, heap: &Heap) -> Result<()> {
    let mut objects = heap.ids().map(|id| -> Row {
        let class = heap.class_of(id);
        let loc = heap.location(id);
        let value = match heap.type_name(id) {
            "STRING" | "SYMBOL" | "FLOAT" => text(heap.string_value(id)),
            "CLASS" | "MODULE" | "DATA" | "IMEMO" => text(heap.detail_str(id)),
            _ => Value::Null,
        };
        vec![
            Value::Int(dump_id),
            address_value(heap.address[id as usize]),
            heap.type_name(id).into(),
            class.map_or(Value::Null, |c| address_value(c.address)),
            class.map_or(Value::Null, |_| {
                Value::Text(heap.class_display(heap.class[id as usize]))
            }),
            Value::Int(heap.memsize(id) as i64),
            heap.generation(id)
                .map_or(Value::Null, |g| Value::Int(g.into())),
            loc.map_or(Value::Null, |l| text(Some(heap.strings.get(l.file)))),
            loc.map_or(Value::Null, |l| Value::Int(l.line.into())),
            text(heap.method_name(id)),
            value,
        ]
    });
    db.bulk_insert(
        "objects",
        &[
            "dump_id",
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
        ],
        &mut objects,
    )?;
    let mut refs = heap.ids().flat_map(|id| {
        let from = heap.address[id as usize];
        heap.refs(id).iter().map(move |&to| -> Row {
            vec![
                Value::Int(dump_id),
                address_value(from),
                address_value(heap.address[to as usize]),
            ]
        })
    });
    db.bulk_insert(
        "refs",
        &["dump_id", "from_address", "to_address"],
        &mut refs,
    )?;
    let mut roots = heap.roots.iter().flat_map(|r| {
        let name = String::from_utf8_lossy(heap.strings.get(r.category)).into_owned();
        heap.root_refs(r).iter().map(move |&to| -> Row {
            vec![
                Value::Int(dump_id),
                name.clone().into(),
                address_value(heap.address[to as usize]),
            ]
        })
    });
    db.bulk_insert("roots", &["dump_id", "root", "address"], &mut roots)?;
    Ok(())
}
