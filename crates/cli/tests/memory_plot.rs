//! `heapscope plot` end to end: an image for every accepted log format, with
//! its size checked and its lines counted.

mod common;

use std::path::{Path, PathBuf};

use common::{heapscope, repo_root};

const FORMATS: [&str; 5] = [
    "watch.jsonl",
    "watch.csv",
    "gc-4242.jsonl",
    "rails.log",
    "derailed.txt",
];

fn memlog(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/memlogs").join(name)
}

fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Pixels in the plot area (left of the legend, below the title, above the
/// x labels) that are neither white nor grey: the lines' colours.
fn coloured_pixels(rgb: &[u8], width: u32) -> usize {
    let mut n = 0;
    for y in 80..640 {
        for x in 80..860 {
            let i = ((y * width + x) * 3) as usize;
            let (r, g, b) = (rgb[i], rgb[i + 1], rgb[i + 2]);
            let spread = r.max(g).max(b) - r.min(g).min(b);
            if spread > 40 {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn png_for_every_format() {
    let dir = tempfile::tempdir().unwrap();
    for name in FORMATS {
        let out = dir.path().join(format!("{name}.png"));
        let run = heapscope(&[
            "plot",
            memlog(name).to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
        let (w, h, rgb) = decode(&out);
        assert_eq!((w, h), (1200, 700), "{name}");
        let lines = coloured_pixels(&rgb, w);
        assert!(lines > 1500, "{name}: only {lines} line pixels");
    }
}

#[test]
fn svg_has_long_polylines() {
    let dir = tempfile::tempdir().unwrap();
    for name in FORMATS {
        let out = dir.path().join(format!("{name}.svg"));
        let run = heapscope(&[
            "plot",
            memlog(name).to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--title",
            "memory <test>",
        ]);
        assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.starts_with("<svg"), "{name}");
        assert!(svg.contains("memory &lt;test&gt;"), "{name}");
        let long = svg
            .split("<polyline")
            .skip(1)
            .filter(|p| {
                let points = p.split("points=\"").nth(1).unwrap_or("");
                let points = &points[..points.find('"').unwrap_or(0)];
                points.split_whitespace().count() >= 20
            })
            .count();
        assert!(long >= 1, "{name}: no polyline of 20+ points");
    }
}

#[test]
fn several_logs_several_processes_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("all.png");
    let run = heapscope(&[
        "plot",
        memlog("watch.jsonl").to_str().unwrap(),
        memlog("rails.log").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(decode(&out).2.len() == 1200 * 700 * 3);

    let bad = dir.path().join("x.jpg");
    let run = heapscope(&[
        "plot",
        memlog("watch.csv").to_str().unwrap(),
        "-o",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains(".png or .svg"), "{}", run.stderr);
    assert!(!bad.exists());
}

#[test]
fn absurd_time_spans_are_refused_not_looped_on() {
    // Times of -1e308 and 1e308: their span is not even finite, and tick
    // generation used to loop forever on it.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("huge.jsonl");
    std::fs::write(
        &log,
        "{\"time\":-1e308,\"pid\":1,\"rss_bytes\":100}\n{\"time\":1e308,\"pid\":1,\"rss_bytes\":200}\n",
    )
    .unwrap();
    for ext in ["png", "svg"] {
        let out = dir.path().join(format!("huge.{ext}"));
        let started = std::time::Instant::now();
        let run = heapscope(&["plot", log.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        assert_eq!(run.code, Some(2), "{}", run.stderr);
        assert!(run.stderr.contains("is not a clock's"), "{}", run.stderr);
        assert!(!out.exists());
    }
    // trend has no slope per hour to give either.
    let run = heapscope(&["trend", log.to_str().unwrap()]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("is not a clock's"), "{}", run.stderr);
}
