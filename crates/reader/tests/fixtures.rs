//! Library-level checks of the hand-written dumps in `tests/fixtures` against
//! the numbers in `tests/fixtures/expected.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use heapscope_heap::{types, Heap, ObjId, NO_OBJ};
use heapscope_reader::{read_input, read_path, Dump, Input, ReadError, ReadOptions};
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn expected() -> serde_json::Map<String, Value> {
    let text = std::fs::read(fixtures_dir().join("expected.json")).expect("read expected.json");
    match serde_json::from_slice(&text).expect("parse expected.json") {
        Value::Object(m) => m,
        _ => panic!("expected.json is not an object"),
    }
}

fn opts(threads: usize, chunk_bytes: usize) -> ReadOptions {
    ReadOptions {
        references: true,
        string_values: true,
        threads,
        chunk_bytes,
        progress: None,
        ..ReadOptions::default()
    }
}

fn read_fixture(name: &str) -> Result<Dump, ReadError> {
    read_path(&fixtures_dir().join(name), &opts(2, 8 << 20))
}

fn dump_names(exp: &serde_json::Map<String, Value>) -> Vec<String> {
    exp.iter()
        .filter(|(_, v)| {
            !v.get("not_a_dump")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        })
        .map(|(k, _)| k.clone())
        .collect()
}

fn u64_of(v: &Value, key: &str, file: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{file}: expected.json has no integer {key}"))
}

fn u64_list(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|x| x.as_u64().expect("an integer"))
        .collect()
}

fn parse_addr(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex address")
}

/// The name of the class of the object at `addr`, as a report would show it.
fn class_name_at(heap: &Heap, addr: u64) -> Option<String> {
    let id = heap
        .find(addr)
        .unwrap_or_else(|| panic!("no object at {addr:#x}"));
    let c = heap.class_of(id)?;
    c.name.get().map(|n| heap.strings.text(n).into_owned())
}

/// The `"address":"0x..."` of a raw line, found textually (works on lines
/// that are not valid JSON).
fn address_in_line(line: &[u8]) -> u64 {
    let key = b"\"address\":\"0x";
    let at = line
        .windows(key.len())
        .position(|w| w == key)
        .expect("line has an address")
        + key.len();
    let end = at + line[at..].iter().position(|&c| c == b'"').unwrap();
    parse_addr(std::str::from_utf8(&line[at..end]).unwrap())
}

fn fixture_line(name: &str, line_no: u64) -> Vec<u8> {
    let bytes = std::fs::read(fixtures_dir().join(name)).unwrap();
    bytes
        .split(|&c| c == b'\n')
        .nth(line_no as usize - 1)
        .unwrap_or_else(|| panic!("{name} has no line {line_no}"))
        .to_vec()
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Checks one dump against its entry in expected.json.
fn check_dump(name: &str, d: &Dump, e: &Value) {
    let heap = &d.heap;
    let diag = &d.diagnostics;
    let ctx = |what: &str| format!("{name}: {what}");

    assert_eq!(diag.lines, u64_of(e, "lines", name), "{}", ctx("lines"));
    let objects = u64_of(e, "objects", name);
    assert_eq!(heap.len() as u64, objects, "{}", ctx("objects (heap.len)"));
    assert_eq!(diag.objects, objects, "{}", ctx("objects (diagnostics)"));
    assert_eq!(
        heap.roots.len() as u64,
        u64_of(e, "roots", name),
        "{}",
        ctx("roots")
    );
    assert_eq!(
        diag.roots,
        heap.roots.len() as u64,
        "{}",
        ctx("diagnostics.roots")
    );

    let mut cats: Vec<String> = Vec::new();
    for r in &heap.roots {
        let c = heap.strings.text(r.category).into_owned();
        assert_eq!(
            r.conservative,
            c == "machine_context",
            "{}",
            ctx("conservative flag")
        );
        if !cats.contains(&c) {
            cats.push(c);
        }
    }
    let want_cats: Vec<String> = e["root_categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cats, want_cats, "{}", ctx("root_categories"));

    let shapes = u64_of(e, "shapes", name);
    assert_eq!(heap.shapes.len() as u64, shapes, "{}", ctx("shapes"));
    assert_eq!(diag.shapes, shapes, "{}", ctx("diagnostics.shapes"));
    assert_eq!(
        heap.facts.has_shapes,
        shapes > 0,
        "{}",
        ctx("facts.has_shapes")
    );

    let total: u64 = heap.ids().map(|id| heap.memsize(id)).sum();
    assert_eq!(
        total,
        u64_of(e, "memsize_total", name),
        "{}",
        ctx("memsize_total")
    );
    let tracer = heap.tracer.map(|t| heap.memsize(t)).unwrap_or(0);
    assert_eq!(
        tracer,
        u64_of(e, "tracer_memsize", name),
        "{}",
        ctx("tracer_memsize")
    );
    if let Some(t) = heap.tracer {
        assert_eq!(
            heap.otype[t as usize],
            types::DATA,
            "{}",
            ctx("tracer is DATA")
        );
        assert!(heap.is_tracer(t));
    }

    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_gen: BTreeMap<String, u64> = BTreeMap::new();
    for id in heap.ids() {
        *by_type.entry(heap.type_name(id).to_string()).or_default() += 1;
        let g = heap
            .generation(id)
            .map(|g| g.to_string())
            .unwrap_or_else(|| "none".into());
        *by_gen.entry(g).or_default() += 1;
    }
    let want_types: BTreeMap<String, u64> = e["by_type"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(by_type, want_types, "{}", ctx("by_type"));
    let want_gens: BTreeMap<String, u64> = e["by_generation"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(by_gen, want_gens, "{}", ctx("by_generation"));
    let max_gen = want_gens.keys().filter_map(|k| k.parse::<u32>().ok()).max();
    assert_eq!(
        heap.facts.max_generation,
        max_gen,
        "{}",
        ctx("facts.max_generation")
    );

    let malformed: Vec<u64> = diag.first_malformed.iter().map(|p| p.line).collect();
    assert_eq!(
        malformed,
        u64_list(&e["malformed_lines"]),
        "{}",
        ctx("malformed_lines")
    );
    assert_eq!(
        diag.malformed,
        u64_of(e, "malformed_total", name),
        "{}",
        ctx("malformed_total")
    );
    for p in &diag.first_malformed {
        assert!(
            !p.message.is_empty(),
            "{}",
            ctx("malformed line has a message")
        );
    }
    let recovered = u64_list(&e["recovered_lines"]);
    assert_eq!(
        diag.first_recovered,
        recovered,
        "{}",
        ctx("recovered_lines")
    );
    assert_eq!(
        diag.recovered,
        recovered.len() as u64,
        "{}",
        ctx("recovered count")
    );
    assert_eq!(
        diag.blank_lines,
        e["blank_lines"].as_array().unwrap().len() as u64,
        "{}",
        ctx("blank_lines")
    );
    assert_eq!(
        diag.truncated_last_line.as_ref().map(|p| p.line),
        e["truncated_last_line"].as_u64(),
        "{}",
        ctx("truncated_last_line")
    );

    for (addr, want) in e["class_names"].as_object().unwrap() {
        let got = class_name_at(heap, parse_addr(addr));
        assert_eq!(
            got.as_deref(),
            want.as_str(),
            "{}",
            ctx(&format!("class name of {addr}"))
        );
    }

    // Every class an object points at, when present in the dump, is a
    // class-like record; IMEMO and NODE never get a class.
    for id in heap.ids() {
        let t = heap.otype[id as usize];
        if t == types::IMEMO || t == types::NODE {
            assert!(heap.class_of(id).is_none(), "{}", ctx("IMEMO/NODE class"));
        }
        if let Some(c) = heap.class_of(id) {
            if c.object != NO_OBJ {
                assert_eq!(heap.address[c.object as usize], c.address);
            }
        }
    }

    // References and roots point at objects of this heap, and every address
    // finds its own object.
    assert!(heap.references_loaded);
    assert_eq!(heap.ref_offsets.len(), heap.len() + 1);
    for id in heap.ids() {
        assert_eq!(
            heap.find(heap.address[id as usize]),
            Some(id),
            "{}",
            ctx("find")
        );
        for &r in heap.refs(id) {
            assert!((r as usize) < heap.len());
        }
    }
    for &r in &heap.root_refs {
        assert!((r as usize) < heap.len());
    }
}

#[test]
fn every_fixture_has_an_expectation() {
    let exp = expected();
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        // Subdirectories hold other commands' fixtures (memlogs/: memory logs).
        if name == "expected.json" || name == "README.md" || entry.path().is_dir() {
            continue;
        }
        assert!(
            exp.contains_key(&name),
            "{name} has no entry in expected.json"
        );
    }
}

#[test]
fn dumps_match_expected_json() {
    let exp = expected();
    let names = dump_names(&exp);
    assert!(
        names.len() >= 10,
        "expected.json lists {} dumps",
        names.len()
    );
    for name in &names {
        let d = read_fixture(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_dump(name, &d, &exp[name.as_str()]);
    }
}

/// The same numbers whatever the chunk size and thread count, and through gzip.
#[test]
fn dumps_match_expected_json_with_any_chunking_and_gzip() {
    let exp = expected();
    for name in dump_names(&exp) {
        let bytes = std::fs::read(fixtures_dir().join(&name)).unwrap();
        for (threads, chunk) in [(1, 1), (2, 4096), (3, 4097), (1, 1 << 20)] {
            let input = Input::from_reader(
                name.clone(),
                Box::new(std::io::Cursor::new(bytes.clone())),
                None,
            )
            .unwrap();
            let d =
                read_input(input, &opts(threads, chunk)).unwrap_or_else(|e| panic!("{name}: {e}"));
            check_dump(&name, &d, &exp[name.as_str()]);
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        let gz = gz.finish().unwrap();
        let input =
            Input::from_reader(name.clone(), Box::new(std::io::Cursor::new(gz)), None).unwrap();
        assert_eq!(input.compression, heapscope_reader::Compression::Gzip);
        let d = read_input(input, &opts(2, 4096)).unwrap_or_else(|e| panic!("{name} (gz): {e}"));
        check_dump(&name, &d, &exp[name.as_str()]);
    }
}

#[test]
fn not_a_dump_files_are_rejected() {
    let exp = expected();
    let mut seen = 0;
    for (name, e) in &exp {
        if !e
            .get("not_a_dump")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            continue;
        }
        seen += 1;
        match read_fixture(name) {
            Err(ReadError::NotADump { source_name, why }) => {
                assert!(
                    source_name.ends_with(name.as_str()),
                    "{name}: source {source_name}"
                );
                assert!(!why.is_empty(), "{name}: empty reason");
            }
            Err(other) => panic!("{name}: expected NotADump, got {other}"),
            Ok(d) => panic!(
                "{name}: expected NotADump, read {} objects ({:?})",
                d.heap.len(),
                d.diagnostics
            ),
        }
    }
    assert_eq!(
        seen, 4,
        "binary.bin, empty.jsonl, json-array.json, logfile.log"
    );
}

#[test]
fn not_a_dump_reasons_are_specific() {
    let why = |name: &str| match read_fixture(name) {
        Err(ReadError::NotADump { why, .. }) => why,
        _ => panic!("{name} should not be a dump"),
    };
    assert!(
        why("empty.jsonl").contains("empty"),
        "{}",
        why("empty.jsonl")
    );
    assert!(
        why("json-array.json").contains("JSON array"),
        "{}",
        why("json-array.json")
    );
    assert!(
        why("binary.bin").contains("binary"),
        "{}",
        why("binary.bin")
    );
    assert!(
        why("logfile.log").contains("line 1"),
        "{}",
        why("logfile.log")
    );
}

#[test]
fn ruby_4_0_integer_flags_and_object_ids() {
    let d = read_fixture("ruby-4.0.jsonl").unwrap();
    let heap = &d.heap;
    assert!(heap.facts.integer_flags);
    assert!(heap.facts.has_slot_size);
    let mut ids: Vec<(u64, &str)> = heap
        .object_ids
        .iter()
        .map(|(&id, &oid)| (oid, heap.type_name(id)))
        .collect();
    ids.sort();
    assert_eq!(ids, vec![(123, "OBJECT"), (456, "OBJECT")]);
    // Which objects carry them, from the text of the file.
    let text = std::fs::read(fixtures_dir().join("ruby-4.0.jsonl")).unwrap();
    for line in text.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).unwrap();
        if let Some(oid) = v["flags"].get("object_id").and_then(Value::as_u64) {
            let id = heap
                .find(parse_addr(v["address"].as_str().unwrap()))
                .unwrap();
            assert_eq!(heap.object_ids.get(&id), Some(&oid));
        }
        // Integer flags do not leak into the boolean flag bits.
        if let (Some(addr), Some(flags)) = (v["address"].as_str(), v.get("flags")) {
            if v["type"] == "SHAPE" {
                continue;
            }
            let id = heap.find(parse_addr(addr)).unwrap();
            let want_old = flags.get("old") == Some(&Value::Bool(true));
            assert_eq!(
                heap.flags[id as usize] & heapscope_heap::flags::OLD != 0,
                want_old
            );
        }
    }
}

#[test]
fn ruby_3_2_shapes_and_shape_ids() {
    let exp = expected();
    let d = read_fixture("ruby-3.2.jsonl").unwrap();
    let heap = &d.heap;
    assert!(heap.facts.has_shapes);
    assert!(heap.facts.has_slot_size);
    assert!(!heap.facts.integer_flags);

    let text = std::fs::read(fixtures_dir().join("ruby-3.2.jsonl")).unwrap();
    let mut shape_ix = 0;
    let mut objects_with_shape = 0;
    for line in text.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).unwrap();
        match v["type"].as_str().unwrap() {
            "ROOT" => {}
            "SHAPE" => {
                let s = &heap.shapes[shape_ix];
                shape_ix += 1;
                assert_eq!(s.address, parse_addr(v["address"].as_str().unwrap()));
                assert_eq!(Some(s.id as u64), v["id"].as_u64());
                assert_eq!(s.parent_id.map(u64::from), v["parent_id"].as_u64());
                assert_eq!(Some(s.depth as u64), v["depth"].as_u64());
                assert_eq!(
                    heap.strings.get(s.shape_type),
                    v["shape_type"].as_str().unwrap().as_bytes()
                );
                match v["edge_name"].as_str() {
                    Some(e) => assert_eq!(heap.strings.get(s.edge_name), e.as_bytes()),
                    None => assert!(s.edge_name.is_none()),
                }
                assert_eq!(s.capacity.map(u64::from), v["capacity"].as_u64());
                assert_eq!(Some(s.edges as u64), v["edges"].as_u64());
                assert_eq!(Some(s.memsize), v["memsize"].as_u64());
            }
            t => {
                let id = heap
                    .find(parse_addr(v["address"].as_str().unwrap()))
                    .unwrap();
                assert_eq!(heap.type_name(id), t);
                let want = if t == "OBJECT" {
                    v["shape_id"].as_u64()
                } else {
                    None
                };
                assert_eq!(
                    heap.shape_id(id).map(u64::from),
                    want,
                    "shape_id of {}",
                    v["address"]
                );
                objects_with_shape += want.is_some() as usize;
            }
        }
    }
    assert_eq!(shape_ix, heap.shapes.len());
    assert_eq!(objects_with_shape, 4);

    // A SHAPE address equal to a STRING's address: find() means the STRING.
    let collision = parse_addr(
        exp["ruby-3.2.jsonl"]["shape_address_collision"]
            .as_str()
            .unwrap(),
    );
    assert!(heap.shapes.iter().any(|s| s.address == collision));
    let id = heap
        .find(collision)
        .expect("the STRING at the shape's address");
    assert_eq!(heap.type_name(id), "STRING");
    // References and roots to that address mean the STRING.
    let root_hits = heap.root_refs.iter().filter(|&&r| r == id).count();
    assert!(root_hits >= 1, "global_tbl references the STRING");
}

fn object_on_line(d: &Dump, name: &str, line_no: u64) -> ObjId {
    let addr = address_in_line(&fixture_line(name, line_no));
    d.heap
        .find(addr)
        .unwrap_or_else(|| panic!("{name}:{line_no}: no object at {addr:#x}"))
}

#[test]
fn recovered_values_are_decoded() {
    let exp = expected();
    for (name, e) in &exp {
        let Some(values) = e.get("recovered_values").and_then(Value::as_object) else {
            continue;
        };
        let d = read_fixture(name).unwrap();
        for (line, fields) in values {
            let id = object_on_line(&d, name, line.parse().unwrap());
            for (field, want) in fields.as_object().unwrap() {
                let got = match field.as_str() {
                    "file" => d.heap.file(id),
                    "method" => d.heap.method_name(id),
                    f => panic!("unexpected field {f}"),
                };
                assert_eq!(
                    got,
                    Some(want.as_str().unwrap().as_bytes()),
                    "{name}:{line} {field}"
                );
            }
        }
    }
}

#[test]
fn non_utf8_bytes_are_kept_exactly() {
    let exp = expected();
    let name = "non-utf8.jsonl";
    let d = read_fixture(name).unwrap();
    let e = &exp[name];
    for (line, fields) in e["raw_bytes_hex"].as_object().unwrap() {
        let id = object_on_line(&d, name, line.parse().unwrap());
        for (field, hex) in fields.as_object().unwrap() {
            let want = hex_bytes(hex.as_str().unwrap());
            let got = match field.as_str() {
                "file" => d.heap.file(id),
                "value" => d.heap.string_value(id),
                f => panic!("unexpected field {f}"),
            };
            assert_eq!(got, Some(&want[..]), "{name}:{line} {field}");
        }
    }
    for (line, want) in e["valid_utf8_non_ascii_file"].as_object().unwrap() {
        let id = object_on_line(&d, name, line.parse().unwrap());
        assert_eq!(d.heap.file(id), Some(want.as_str().unwrap().as_bytes()));
    }
}

#[test]
fn escapes_are_decoded() {
    let exp = expected();
    let name = "escapes.jsonl";
    let d = read_fixture(name).unwrap();
    let e = &exp[name];
    for (addr, want) in e["string_values"].as_object().unwrap() {
        let id = d.heap.find(parse_addr(addr)).unwrap();
        assert_eq!(
            d.heap.string_value(id),
            Some(want.as_str().unwrap().as_bytes()),
            "value of {addr}"
        );
    }
    for (addr, want) in e["files"].as_object().unwrap() {
        let id = d.heap.find(parse_addr(addr)).unwrap();
        assert_eq!(
            d.heap.file(id),
            Some(want.as_str().unwrap().as_bytes()),
            "file of {addr}"
        );
    }
    // Every line was read, none needed to be dropped.
    assert_eq!(d.diagnostics.malformed, 0);
    assert!(
        d.diagnostics.fallback_lines >= 1,
        "non-Ruby layouts need the general parser"
    );
}

#[test]
fn tracer_is_found_in_3_1_tracing_dump() {
    let d = read_fixture("ruby-3.1-tracing.jsonl").unwrap();
    let heap = &d.heap;
    let t = heap.tracer.expect("tracer object");
    assert_eq!(heap.detail_str(t), Some(heapscope_heap::TRACER_STRUCT));
    assert_eq!(heap.memsize(t), 5_000_000);
    let without: u64 = heap
        .ids()
        .filter(|&id| !heap.is_tracer(id))
        .map(|id| heap.memsize(id))
        .sum();
    assert_eq!(without, 30_880);
    assert_eq!(heap.ids().filter(|&id| !heap.is_tracer(id)).count(), 18);
    assert_eq!(heap.facts.traced_objects, 10);
}

#[test]
fn class_names_resolve_in_all_dumps() {
    // For every object whose class record is in the dump and is a CLASS or
    // MODULE, the class name is that record's name.
    let exp = expected();
    for name in dump_names(&exp) {
        let d = read_fixture(&name).unwrap();
        let heap = &d.heap;
        let mut named = BTreeSet::new();
        for id in heap.ids() {
            let Some(c) = heap.class_of(id) else { continue };
            if c.object == NO_OBJ {
                assert!(c.name.is_none());
                continue;
            }
            let t = heap.otype[c.object as usize];
            if t == types::CLASS || t == types::MODULE {
                assert_eq!(
                    c.name.get().map(|n| n.0),
                    heap.detail_str(c.object)
                        .map(|_| heap.detail[c.object as usize])
                );
            } else {
                assert!(c.name.is_none());
            }
            let cid = heap.class[id as usize];
            let shown = heap.class_display(cid);
            match (c.name.get(), c.real_name.get()) {
                (Some(n), _) => assert_eq!(shown, heap.strings.text(n)),
                // A singleton class shows as the class `#class` returns.
                (None, Some(r)) => assert_eq!(shown, heap.strings.text(r)),
                (None, None) => assert_eq!(shown, format!("#<Class:{:#x}>", c.address)),
            }
            if let Some(n) = c.name.get() {
                named.insert(heap.strings.text(n).into_owned());
            }
        }
        assert!(!named.is_empty(), "{name}: no named classes");
    }
}

#[test]
fn missing_files_and_directories_are_io_errors() {
    let dir = fixtures_dir();
    for path in [dir.join("no-such-file.jsonl"), dir.clone()] {
        match read_path(&path, &opts(1, 4096)) {
            Err(ReadError::Io { source_name, .. }) => assert!(source_name.contains("fixtures")),
            Err(e) => panic!("{}: expected an I/O error, got {e}", path.display()),
            Ok(_) => panic!("{}: expected an I/O error", path.display()),
        }
    }
}
