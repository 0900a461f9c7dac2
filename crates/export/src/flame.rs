//! The dominator tree as folded stacks and flame graphs.
//!
//! Each reachable object contributes one folded-stack line: its dominator
//! chain from the top (a child of the super-root) down to itself, valued by
//! its shallow size. Identical stacks are merged, so a frame's total width is
//! the retained size of the objects it stands for. Frames are named by class
//! (or type, when the object has no class) and allocation site, e.g.
//! `Hash app.rb:12`; class and module objects also carry their own name
//! (`Class RequestLog app.rb:3`).
//!
//! Stacks are built on a trie of frame names in one pass over the dominator
//! tree in preorder, so the cost is linear in the number of objects and the
//! output has one line per distinct stack, not per object.

use std::io::{self, Write};

use heapscope_graph::{Dominators, Graph};
use heapscope_heap::{types, FastMap, Heap, ObjId, NO_CLASS};

/// Default cut-off of stack depth.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// What the SVG's details line says before a frame's name and size.
pub const NAME_TYPE: &str = "Bytes retained by";

/// Merged folded stacks: `(frames joined by ';', bytes)`, ordered frame by
/// frame (so stacks sharing a prefix are adjacent, as flame graphs need).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folded {
    pub lines: Vec<(String, u64)>,
}

impl Folded {
    /// Sum of all values: the reachable bytes.
    pub fn total(&self) -> u64 {
        self.lines.iter().fold(0u64, |a, l| a.saturating_add(l.1))
    }

    /// Writes the `stack value` lines (the format of Brendan Gregg's
    /// `flamegraph.pl` and inferno).
    pub fn write_text(&self, w: &mut dyn Write) -> io::Result<()> {
        for (stack, bytes) in &self.lines {
            writeln!(w, "{stack} {bytes}")?;
        }
        Ok(())
    }

    /// Renders the stacks as an SVG flame graph.
    pub fn write_svg(&self, title: &str, w: &mut dyn Write) -> io::Result<()> {
        let mut opts = inferno::flamegraph::Options::default();
        opts.title = title.to_string();
        opts.count_name = "bytes".to_string();
        // The details line reads "Bytes retained by Foo app.rb:5 (1,234
        // bytes, 5%)": widths are bytes, not object counts.
        opts.name_type = NAME_TYPE.to_string();
        // A label that does not fit keeps its start (class, then site) and
        // loses the end of the path; inferno's default cuts the start.
        opts.text_truncate_direction = inferno::flamegraph::TextTruncateDirection::Right;
        opts.colors = inferno::flamegraph::color::Palette::Basic(
            inferno::flamegraph::color::BasicPalette::Mem,
        );
        // Same frame, same colour, from run to run.
        opts.deterministic = true;
        if self.total() == 0 {
            // inferno refuses a profile without counts.
            return write!(
                w,
                "<?xml version=\"1.0\" standalone=\"no\"?>\n\
                 <svg version=\"1.1\" width=\"1200\" height=\"60\" \
                 xmlns=\"http://www.w3.org/2000/svg\">\
                 <text x=\"600\" y=\"24\" text-anchor=\"middle\">{}</text>\
                 <text x=\"600\" y=\"48\" text-anchor=\"middle\">nothing is reachable</text>\
                 </svg>\n",
                xml_escape(title)
            );
        }
        let lines: Vec<String> = self.lines.iter().map(|(s, b)| format!("{s} {b}")).collect();
        inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), w)
            .map_err(io::Error::other)
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The name of an object's frame: class (or type) and allocation site.
pub fn frame_name(heap: &Heap, id: ObjId) -> String {
    let i = id as usize;
    let mut s = match heap.class[i] {
        NO_CLASS => heap.type_name(id).to_string(),
        c => heap.class_display(c),
    };
    let t = heap.otype[i];
    if t == types::CLASS || t == types::MODULE {
        if let Some(name) = heap.detail_str(id) {
            s.push(' ');
            s.push_str(&String::from_utf8_lossy(name));
        }
    }
    if let Some(loc) = heap.location(id) {
        s.push(' ');
        s.push_str(&heap.strings.text(loc.file));
        s.push(':');
        s.push_str(&loc.line.to_string());
    }
    sanitize(s)
}

/// Frames may not contain the stack separator or line breaks, and the folded
/// format ends a line at its last space: trailing spaces would be lost.
/// Other control characters (escape sequences in a class or file name) are
/// escaped, as in every table: folded stacks may go to a terminal, and XML
/// (the SVG) cannot hold most of them.
fn sanitize(s: String) -> String {
    let s = if s.contains([';', '\n', '\r']) {
        s.replace(';', ":").replace(['\n', '\r'], " ")
    } else {
        s
    };
    let s = match heapscope_graph::escape_control(&s) {
        std::borrow::Cow::Borrowed(_) => s,
        std::borrow::Cow::Owned(o) => o,
    };
    let trimmed = s.trim();
    if trimmed.is_empty() {
        "(unnamed)".to_string()
    } else if trimmed.len() != s.len() {
        trimmed.to_string()
    } else {
        s
    }
}

/// Frame names, interned, with a cache from what determines a name (class,
/// type, own name, location) to its id.
struct Frames {
    by_key: FastMap<(u32, u32, u32, u32), u32>,
    by_name: FastMap<String, u32>,
    names: Vec<String>,
}

impl Frames {
    fn id(&mut self, heap: &Heap, v: ObjId) -> u32 {
        let i = v as usize;
        let t = heap.otype[i];
        let own = if t == types::CLASS || t == types::MODULE {
            heap.detail[i]
        } else {
            u32::MAX
        };
        let key = (heap.class[i], t as u32, own, heap.location[i]);
        if let Some(&f) = self.by_key.get(&key) {
            return f;
        }
        let name = frame_name(heap, v);
        let next = self.names.len() as u32;
        let f = *self.by_name.entry(name).or_insert_with_key(|n| {
            self.names.push(n.clone());
            next
        });
        self.by_key.insert(key, f);
        f
    }
}

/// The folded stacks of the dominator tree. Objects deeper than `max_depth`
/// (at least 1) are counted in their ancestor at that depth.
pub fn folded_stacks(g: &Graph<'_>, dom: &Dominators, max_depth: usize) -> Folded {
    folded_stacks_above(g, dom, max_depth, 0)
}

/// [`folded_stacks`], where objects retaining less than `min_bytes` are
/// also counted in their dominator's frame: too narrow to see, and skipping
/// them spares a frame per small object (the web UI's stored graph).
pub fn folded_stacks_above(
    g: &Graph<'_>,
    dom: &Dominators,
    max_depth: usize,
    min_bytes: u64,
) -> Folded {
    let heap = g.heap;
    let max_depth = max_depth.max(1) as u32;
    let root = dom.root();
    let mut frames = Frames {
        by_key: FastMap::default(),
        by_name: FastMap::default(),
        names: Vec::new(),
    };
    // Trie of stacks: node 0 is the empty stack (the super-root).
    let mut parent: Vec<u32> = vec![u32::MAX];
    let mut frame: Vec<u32> = vec![u32::MAX];
    let mut value: Vec<u64> = vec![0];
    let mut child: FastMap<(u32, u32), u32> = FastMap::default();
    // Per graph node: its trie node and depth (filled in preorder, so a
    // dominator is always done before the objects it dominates).
    let mut node_of = vec![0u32; g.node_count()];
    let mut depth = vec![0u32; g.node_count()];
    for &v in dom.preorder() {
        if v == root {
            continue;
        }
        let d = dom.idom(v).expect("a node in preorder is reachable");
        let dv = depth[d as usize].saturating_add(1);
        depth[v as usize] = dv;
        let up = node_of[d as usize];
        let node = if dv > max_depth || dom.retained(v) < min_bytes {
            up
        } else {
            let f = frames.id(heap, v);
            *child.entry((up, f)).or_insert_with(|| {
                parent.push(up);
                frame.push(f);
                value.push(0);
                (value.len() - 1) as u32
            })
        };
        node_of[v as usize] = node;
        value[node as usize] = value[node as usize].saturating_add(g.shallow(v));
    }
    drop((node_of, depth, child));

    let mut stacks: Vec<(Vec<u32>, u64)> = Vec::new();
    for (node, &bytes) in value.iter().enumerate().skip(1) {
        if bytes == 0 {
            continue;
        }
        let mut fs = Vec::new();
        let mut x = node as u32;
        while x != 0 {
            fs.push(frame[x as usize]);
            x = parent[x as usize];
        }
        fs.reverse();
        stacks.push((fs, bytes));
    }
    let names = &frames.names;
    stacks.sort_unstable_by(|a, b| {
        a.0.iter()
            .map(|&f| names[f as usize].as_str())
            .cmp(b.0.iter().map(|&f| names[f as usize].as_str()))
    });
    let lines = stacks
        .into_iter()
        .map(|(fs, bytes)| {
            let mut s = String::new();
            for (k, f) in fs.iter().enumerate() {
                if k > 0 {
                    s.push(';');
                }
                s.push_str(&names[*f as usize]);
            }
            (s, bytes)
        })
        .collect();
    Folded { lines }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heapscope_graph::GraphOptions;
    use heapscope_heap::{Detail, HeapBuilder, ObjectRecord, PartialHeap, RootRecord};

    const BASE: u64 = 0x7f00_0000_0000;

    fn addr(i: u64) -> u64 {
        BASE + i * 40
    }

    struct Obj<'a> {
        type_name: &'a [u8],
        class: Option<u64>,
        memsize: u64,
        site: Option<(&'a [u8], u32)>,
        detail: Detail<'a>,
        refs: Vec<u64>,
    }

    fn obj<'a>(type_name: &'a [u8], memsize: u64, refs: &[u64]) -> Obj<'a> {
        Obj {
            type_name,
            class: None,
            memsize,
            site: None,
            detail: Detail::None,
            refs: refs.iter().map(|&i| addr(i)).collect(),
        }
    }

    fn build(objs: &[Obj<'_>], roots: &[u64]) -> Heap {
        let mut p = PartialHeap::new(true);
        for (i, o) in objs.iter().enumerate() {
            p.push_object(&ObjectRecord {
                address: addr(i as u64),
                type_name: o.type_name,
                class: o.class,
                flags: 0,
                memsize: o.memsize,
                file: o.site.map(|s| s.0),
                line: o.site.map(|s| s.1),
                method: None,
                generation: None,
                detail: o.detail,
                refs: &o.refs,
                object_id: None,
                real_class_name: None,
            });
        }
        let root_addrs: Vec<u64> = roots.iter().map(|&i| addr(i)).collect();
        p.push_root(&RootRecord {
            category: b"vm",
            refs: &root_addrs,
        });
        let mut b = HeapBuilder::new(true, objs.len());
        b.append(p);
        b.finish()
    }

    /// 0: class Foo (app.rb:1)          root
    /// 1: Foo instance (app.rb:5)        root -> 2, 3
    /// 2: Hash (app.rb:6)                -> 4
    /// 3: Array (no site)                -> 4  (so 4 is dominated by 1, not 2 or 3)
    /// 4: String (app.rb:7)
    /// 5: String (app.rb:7)              only 2 -> 5? no: 1 -> 5, same frame name as 4
    /// 6: unreachable String
    fn sample_heap() -> Heap {
        let class_addr = addr(0);
        let mut objs = vec![
            obj(b"CLASS", 500, &[]),
            obj(b"OBJECT", 40, &[2, 3, 5]),
            obj(b"HASH", 160, &[4]),
            obj(b"ARRAY", 40, &[4]),
            obj(b"STRING", 64, &[]),
            obj(b"STRING", 100, &[]),
            obj(b"STRING", 1000, &[]),
        ];
        objs[0].detail = Detail::Str(b"Foo");
        objs[0].site = Some((b"app.rb", 1));
        objs[1].class = Some(class_addr);
        objs[1].site = Some((b"app.rb", 5));
        objs[2].site = Some((b"app.rb", 6));
        objs[4].site = Some((b"app.rb", 7));
        objs[5].site = Some((b"app.rb", 7));
        build(&objs, &[0, 1])
    }

    fn lines(f: &Folded) -> Vec<(&str, u64)> {
        f.lines.iter().map(|(s, b)| (s.as_str(), *b)).collect()
    }

    #[test]
    fn frames_name_class_or_type_and_site() {
        let h = sample_heap();
        assert_eq!(frame_name(&h, 0), "CLASS Foo app.rb:1");
        assert_eq!(frame_name(&h, 1), "Foo app.rb:5");
        assert_eq!(frame_name(&h, 2), "HASH app.rb:6");
        assert_eq!(frame_name(&h, 3), "ARRAY");
        assert_eq!(sanitize("a;b\nc ".to_string()), "a:b c");
        assert_eq!(sanitize("  ".to_string()), "(unnamed)");
        assert_eq!(
            sanitize("X\u{1b}]0;PWNED\u{7} a.rb:1".to_string()),
            "X\\u{1b}]0:PWNED\\u{7} a.rb:1"
        );
    }

    #[test]
    fn folded_stacks_follow_the_dominator_tree() {
        let h = sample_heap();
        let g = Graph::new(&h, GraphOptions::default());
        let dom = Dominators::compute(&g);
        let f = folded_stacks(&g, &dom, DEFAULT_MAX_DEPTH);
        // Object 1 also references class 0 (its class edge), but the root
        // reaches 0 directly, so 0 stays a top frame. 4 and 5 share a name
        // and a dominator: one merged line.
        assert_eq!(
            lines(&f),
            vec![
                ("CLASS Foo app.rb:1", 500),
                ("Foo app.rb:5", 40),
                ("Foo app.rb:5;ARRAY", 40),
                ("Foo app.rb:5;HASH app.rb:6", 160),
                ("Foo app.rb:5;STRING app.rb:7", 164),
            ]
        );
        assert_eq!(f.total(), dom.reachable_bytes());
        assert_eq!(f.total(), 500 + 40 + 160 + 40 + 64 + 100);
    }

    #[test]
    fn deep_objects_are_cut_at_max_depth() {
        // A chain root -> 0 -> 1 -> 2 -> 3 -> 4.
        let objs: Vec<Obj<'_>> = (0..5)
            .map(|i| {
                let refs: Vec<u64> = if i < 4 { vec![i + 1] } else { vec![] };
                let mut o = obj(b"ARRAY", 10 * (i + 1), &refs);
                o.site = Some((b"deep.rb", i as u32 + 1));
                o
            })
            .collect();
        let h = build(&objs, &[0]);
        let g = Graph::new(&h, GraphOptions::default());
        let dom = Dominators::compute(&g);
        let full = folded_stacks(&g, &dom, 64);
        assert_eq!(full.lines.len(), 5);
        assert_eq!(
            full.lines[4].0,
            "ARRAY deep.rb:1;ARRAY deep.rb:2;ARRAY deep.rb:3;ARRAY deep.rb:4;ARRAY deep.rb:5"
        );
        let cut = folded_stacks(&g, &dom, 2);
        assert_eq!(
            lines(&cut),
            vec![
                ("ARRAY deep.rb:1", 10),
                ("ARRAY deep.rb:1;ARRAY deep.rb:2", 20 + 30 + 40 + 50),
            ]
        );
        assert_eq!(cut.total(), dom.reachable_bytes());
        assert_eq!(full.total(), dom.reachable_bytes());
    }

    #[test]
    fn repeated_frames_are_kept() {
        // Two nested arrays from the same line: the frame repeats.
        let mut objs = vec![obj(b"ARRAY", 40, &[1]), obj(b"ARRAY", 40, &[])];
        objs[0].site = Some((b"a.rb", 1));
        objs[1].site = Some((b"a.rb", 1));
        let h = build(&objs, &[0]);
        let g = Graph::new(&h, GraphOptions::default());
        let dom = Dominators::compute(&g);
        let f = folded_stacks(&g, &dom, 64);
        assert_eq!(
            lines(&f),
            vec![("ARRAY a.rb:1", 40), ("ARRAY a.rb:1;ARRAY a.rb:1", 40)]
        );
    }

    #[test]
    fn svg_renders() {
        let h = sample_heap();
        let g = Graph::new(&h, GraphOptions::default());
        let dom = Dominators::compute(&g);
        let f = folded_stacks(&g, &dom, 64);
        let mut out = Vec::new();
        f.write_svg("heapscope: test", &mut out).unwrap();
        let svg = String::from_utf8(out).unwrap();
        assert!(svg.starts_with("<?xml"), "{}", &svg[..100.min(svg.len())]);
        assert!(svg.contains("HASH app.rb:6"));
        assert!(svg.contains("heapscope: test"));
        assert!(
            svg.contains("truncate_text_right = true"),
            "labels keep their start"
        );
        assert!(
            svg.contains("'Bytes retained by'"),
            "the details line names bytes"
        );
        assert!(!svg.contains("Objects:"));
        let mut empty = Vec::new();
        Folded::default().write_svg("empty", &mut empty).unwrap();
        assert!(String::from_utf8(empty).unwrap().contains("<svg"));
    }
}
