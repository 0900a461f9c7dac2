//! How things are named on real dumps of every Ruby version (issue 11):
//! instance variable names in `path`, `inspect` and `leaks` (3.4's T_OBJECT
//! shapes, 4.0's IMEMO `fields` objects, generic and class-level ivars, too
//! complex objects and `shapes: false` dumps), 4.0's flags in `inspect`, and
//! the references a WeakMap's record lists. The programs are
//! `tests/ruby/corpus/names_ivars.rb` and `names_leaks.rb`.

mod common;

use std::path::Path;

use common::heapscope;
use common::rubies::{self, WASM_VERSIONS};
use serde_json::Value;

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// The address `key` of what the program built.
fn addr(expect: &Value, key: &str) -> String {
    text(&expect[key]).to_string()
}

/// `heapscope path DUMP ADDRESS --format json`: the labels of the one path.
fn path_labels(dump: &Path, address: &str) -> Vec<String> {
    let v = rubies::path_json(dump, address);
    assert!(
        v["paths"][0]["steps"].is_array(),
        "no path to {address} in {}: {v}",
        dump.display()
    );
    rubies::held_as_labels(&v["paths"][0]["steps"])
}

/// How the last object before `address` on its path holds it.
fn last_label(dump: &Path, address: &str) -> String {
    path_labels(dump, address)
        .pop()
        .unwrap_or_else(|| panic!("{address} is a root in {}", dump.display()))
}

fn inspect_json(dump: &Path, address: &str) -> Value {
    heapscope(&[
        "inspect",
        dump.to_str().unwrap(),
        address,
        "--format",
        "json",
    ])
    .json()
}

/// The first IMEMO among the referents `inspect` lists (a fields object).
fn fields_referent(inspection: &Value) -> Option<&Value> {
    inspection["referents"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "IMEMO")
}

fn referent_labels(inspection: &Value) -> Vec<String> {
    inspection["referents"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| text(&i["held_as"]).to_string())
        .collect()
}

/// What names_ivars.rb wrote under one wasm Ruby.
struct Names {
    dir: std::path::PathBuf,
    /// `names.dump`.
    dump: std::path::PathBuf,
    e: Value,
    /// "Ruby \"3.4.1\"", for assertion messages.
    ctx: String,
}

/// Runs names_ivars.rb under wasm Ruby `version`.
fn wasm_names(version: &str) -> Names {
    let dir = rubies::wasm_run(version, "names_ivars.rb");
    let e = rubies::expectations(&dir);
    Names {
        dump: dir.join("names.dump"),
        ctx: format!("Ruby {}", e["ruby"]),
        dir,
        e,
    }
}

#[test]
fn ivar_names_in_paths_and_inspect_on_every_wasm_ruby() {
    for version in WASM_VERSIONS {
        let Names { dump, e, ctx, .. } = wasm_names(version);
        // 3.4 lost these: its T_OBJECT shapes' parent is INVALID_SHAPE_ID.
        assert_eq!(
            last_label(&dump, &addr(&e, "alpha")),
            "instance variable @alpha",
            "{ctx}"
        );
        let wide = last_label(&dump, &addr(&e, "wide_w20"));
        if *version == "head" {
            // 4.1-dev keeps a non-embedded object's ivars in a fields object.
            assert_eq!(
                wide, "instance variable @w20 of its owner (NamesWide)",
                "{ctx}"
            );
        } else {
            assert_eq!(wide, "instance variable @w20", "{ctx}");
        }
        let holder = inspect_json(&dump, &addr(&e, "holder"));
        assert_eq!(
            holder["ivar_names"],
            serde_json::json!(["@alpha", "@beta"]),
            "{ctx}"
        );
        let labels = referent_labels(&holder);
        assert!(
            labels.iter().any(|l| l == "instance variable @beta"),
            "{ctx}: {labels:?}"
        );
    }
}

#[test]
fn fields_objects_are_named_on_4_0_and_later() {
    for version in ["4.0", "head"] {
        let Names { dump, e, ctx, .. } = wasm_names(version);
        // (object, the last labels of its path)
        let expected: [(&str, &[&str]); 4] = [
            (
                "string_tag",
                &[
                    "its instance variables (a fields object: @tag)",
                    "generic instance variable @tag of its owner (a String)",
                ],
            ),
            (
                "array_note",
                &["generic instance variable @note of its owner (an Array)"],
            ),
            (
                "registry",
                &[
                    "its instance variables (a fields object: @registry, @label)",
                    "class-level instance variable @registry of NamesRegistry",
                ],
            ),
            (
                "registry_label",
                &["class-level instance variable @label of NamesRegistry"],
            ),
        ];
        for (key, tail) in expected {
            let labels = path_labels(&dump, &addr(&e, key));
            assert!(labels.len() >= tail.len(), "{ctx}: {key}: {labels:?}");
            assert_eq!(labels[labels.len() - tail.len()..], *tail, "{ctx}: {key}");
        }
        // inspect of the fields object names its owner and its ivars.
        let class = inspect_json(&dump, &addr(&e, "registry_class"));
        let fields = fields_referent(&class)
            .unwrap_or_else(|| panic!("{ctx}: no fields object among {class}"));
        let f = inspect_json(&dump, text(&fields["address"]));
        assert_eq!(f["owner"]["address"], e["registry_class"], "{ctx}");
        assert_eq!(
            f["ivar_names"],
            serde_json::json!(["@registry", "@label"]),
            "{ctx}"
        );
    }
}

/// `summary --by class` row of `class`: (count, bytes).
fn class_row(dump: &Path, class: &str) -> (u64, u64) {
    let v = rubies::by_class_json(&["summary", dump.to_str().unwrap()]);
    let row = rubies::row(&v, "class", class, &dump.display().to_string());
    (
        row["count"].as_u64().unwrap(),
        row["memsize"].as_u64().unwrap(),
    )
}

#[test]
fn a_fields_object_counts_under_its_owners_class() {
    // 4.1-dev moves a wide object's ivar memory into its fields object.
    let Names { dump, e, .. } = wasm_names("head");
    let wide = inspect_json(&dump, &addr(&e, "wide"));
    let fields = fields_referent(&wide)
        .expect("the wide object's fields object")
        .clone();
    let fields = inspect_json(&dump, text(&fields["address"]));
    let own = wide["record"]["memsize"].as_u64().unwrap();
    let held = fields["record"]["memsize"].as_u64().unwrap();
    assert!(
        held > own,
        "the ivars are in the fields object: {held} vs {own}"
    );
    assert_eq!(class_row(&dump, "NamesWide"), (2, own + held));
    // On 4.0 the object holds them itself: the class totals compare.
    let (count, bytes) = class_row(&wasm_names("4.0").dump, "NamesWide");
    assert_eq!(count, 1);
    assert!(
        bytes * 2 > own + held && bytes < 2 * (own + held),
        "4.0 {bytes} B vs 4.1-dev {} B",
        own + held
    );
}

#[test]
fn generic_and_class_level_ivars_before_4_0() {
    for version in ["3.2", "3.3", "3.4"] {
        let Names { dump, e, ctx, .. } = wasm_names(version);
        // Was "its shared string buffer".
        for (key, label) in [
            ("string_tag", "generic instance variable @tag"),
            ("array_note", "generic instance variable @note"),
        ] {
            assert_eq!(last_label(&dump, &addr(&e, key)), label, "{ctx}: {key}");
        }
        // Was "a constant, class variable or method of NamesRegistry". The
        // dump does not order a class's ivars among its other references.
        let registry = last_label(&dump, &addr(&e, "registry"));
        assert!(
            registry.starts_with("a class-level instance variable (one of ")
                && registry.contains("@registry, @label)")
                && registry.ends_with("of NamesRegistry"),
            "{ctx}: {registry}"
        );
    }
}

#[test]
fn generic_ivars_on_the_native_ruby() {
    let dir = rubies::native_run("names_ivars.rb");
    let e = rubies::expectations(dir.path());
    let dump = dir.path().join("names.dump");
    let shapes = rubies::native_version().as_str() >= "3.2";
    let (tag, note) = if shapes {
        (
            "generic instance variable @tag",
            "generic instance variable @note",
        )
    } else {
        // No shapes: no names, but the counts tell they are ivars.
        ("a generic instance variable", "a generic instance variable")
    };
    assert_eq!(last_label(&dump, &addr(&e, "string_tag")), tag);
    assert_eq!(last_label(&dump, &addr(&e, "array_note")), note);
    let complex = last_label(&dump, &addr(&e, "complex_shared"));
    if shapes {
        assert!(complex.contains("shape is too complex"), "{complex}");
    } else {
        assert!(
            complex.contains("no names in dumps before Ruby 3.2"),
            "{complex}"
        );
    }
}

#[test]
fn too_complex_and_shapeless_dumps_say_why() {
    for version in WASM_VERSIONS {
        let Names { dir, dump, e, ctx } = wasm_names(version);
        let complex = last_label(&dump, &addr(&e, "complex_shared"));
        if *version == "head" {
            // 4.1-dev: complex_shape, and the ivars in a fields object.
            assert_eq!(
                complex,
                "an instance variable of its owner (NamesComplex) (names not in this dump: \
                 the owner's shape is too complex)",
                "{ctx}"
            );
        } else {
            assert_eq!(
                complex,
                "an instance variable (names not in this dump: the object's shape is too \
                 complex)",
                "{ctx}"
            );
        }
        let inspected = inspect_json(&dump, &addr(&e, "complex"));
        assert_eq!(inspected["too_complex"], true, "{ctx}: {inspected}");
        let noshapes = dir.join("noshapes.dump");
        assert_eq!(
            last_label(&noshapes, &addr(&e, "alpha")),
            "instance variable #1 of 2 (names not in this dump: it was written without shapes)",
            "{ctx}"
        );
    }
}

#[test]
fn inspect_shows_ruby_4_flags_and_object_ids() {
    for version in ["4.0", "head"] {
        let Names { dump, e, ctx, .. } = wasm_names(version);
        let class = inspect_json(&dump, &addr(&e, "registry_class"));
        let flags: Vec<&str> = class["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(text)
            .collect();
        for f in ["old", "remembered", "shareable"] {
            assert!(flags.contains(&f), "{ctx}: {f} not in {flags:?}");
        }
        assert_eq!(class["age"], class["record"]["flags"]["age"], "{ctx}");
        assert!(class["age"].is_u64(), "{ctx}: {class}");
        let obj = inspect_json(&dump, &addr(&e, "identified"));
        assert_eq!(obj["object_id"], e["identified_id"], "{ctx}");
        let table = heapscope(&["inspect", dump.to_str().unwrap(), &addr(&e, "identified")])
            .ok()
            .stdout_text();
        let id_line = format!("object_id    {}", e["identified_id"]);
        assert!(table.contains(&id_line), "{ctx}:\n{table}");
        assert!(
            table.lines().any(|l| l.starts_with("age ")),
            "{ctx}:\n{table}"
        );
    }
}

/// Up to 3.2 a WeakMap's record lists one reference (its finalizer proc).
fn check_weakmap_referents(dump: &Path, e: &Value) {
    let v = inspect_json(dump, &addr(e, "weakmap"));
    let items = v["referents"]["items"].as_array().unwrap();
    let weak: Vec<&Value> = items.iter().filter(|i| i["weak"] == true).collect();
    assert_eq!(weak.len(), 1, "{v}");
    assert!(
        text(&weak[0]["held_as"]).starts_with("its finalizer proc"),
        "{}",
        weak[0]
    );
    assert_eq!(v["referents"]["total"], items.len());
}

#[test]
fn inspect_lists_the_references_a_weakmap_record_lists() {
    let Names { dump, e, .. } = wasm_names("3.2");
    check_weakmap_referents(&dump, &e);
    if rubies::native_version().as_str() < "3.3" {
        let dir = rubies::native_run("names_ivars.rb");
        let e = rubies::expectations(dir.path());
        check_weakmap_referents(&dir.path().join("names.dump"), &e);
    }
}

#[test]
fn leaks_paths_name_ivars_on_3_4_and_4_0() {
    for version in ["3.4", "4.0"] {
        let dir = rubies::wasm_run(version, "names_leaks.rb");
        let e = rubies::expectations(&dir);
        let ctx = format!("Ruby {}", e["ruby"]);
        let mut args: Vec<String> = vec!["leaks".into()];
        args.extend(
            e["dumps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| dir.join(text(d)).to_str().unwrap().to_string()),
        );
        args.extend(["--time", "0,600,1200,1800,2400", "--format", "json", "-q"].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let v = heapscope(&args).json();
        let leaks = v["processes"][0]["leaks"].as_array().unwrap();
        let labels_at = |line: &Value| -> Vec<String> {
            let at = format!(":{line}");
            let row = leaks
                .iter()
                .find(|r| r["type"] == "STRING" && text(&r["location"]).ends_with(&at))
                .unwrap_or_else(|| panic!("{ctx}: no String leak at line {line}: {leaks:#?}"));
            assert!(row["path"]["steps"].is_array(), "{ctx}: no path: {row}");
            rubies::held_as_labels(&row["path"]["steps"])
        };
        let payload = labels_at(&e["payload_line"]);
        assert!(
            payload.iter().any(|l| l == "instance variable @payload"),
            "{ctx}: {payload:?}"
        );
        let meta = labels_at(&e["meta_line"]);
        let want = if version == "3.4" {
            "generic instance variable @meta"
        } else {
            "generic instance variable @meta of its owner (a String)"
        };
        assert!(meta.iter().any(|l| l == want), "{ctx}: {meta:?}");
    }
}
