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

/// Heroku's log-runtime-metrics through a syslog drain (`<45>1 TIME host
/// heroku web.N - source=...`), with the load-average lines between: one line
/// per dyno, and no key for live objects, which these logs do not have.
#[test]
fn heroku_dynos_are_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("drain.log");
    let mut text = String::new();
    for i in 0..40u32 {
        let (m, s) = (i * 20 / 60, i * 20 % 60);
        for (n, rss) in [
            (1, 250.0 + 3.0 * f64::from(i)),
            (2, 240.0 + f64::from(i % 5)),
        ] {
            text.push_str(&format!(
                "<45>1 2026-12-01T10:{m:02}:{s:02}.000000+00:00 d.0a1b2c3d-4e5f heroku web.{n} - \
                 source=web.{n} dyno=heroku.98765.0a1b-{n} sample#memory_total={:.2}MB \
                 sample#memory_rss={rss:.2}MB sample#memory_cache=4.10MB sample#memory_swap=0.00MB \
                 sample#memory_pgpgin=120000pages sample#memory_pgpgout=110000pages \
                 sample#memory_quota=1024.00MB\n\
                 <45>1 2026-12-01T10:{m:02}:{s:02}.500000+00:00 d.0a1b2c3d-4e5f heroku web.{n} - \
                 source=web.{n} dyno=heroku.98765.0a1b-{n} sample#load_avg_1m=0.10 \
                 sample#load_avg_5m=0.08 sample#load_avg_15m=0.05\n",
                rss + 4.1
            ));
        }
    }
    std::fs::write(&log, text).unwrap();
    let svg = dir.path().join("dynos.svg");
    let run = heapscope(&["plot", log.to_str().unwrap(), "-o", svg.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("2 processes"), "title counts the dynos");
    assert!(
        text.contains("\nweb.1\n") && text.contains("\nweb.2\n"),
        "legend names the dynos"
    );
    // sample#memory_rss, not memory_total.
    assert!(
        text.contains("RSS 250 MiB → 367 MiB"),
        "web.1's first and last RSS"
    );
    assert!(
        !text.contains("live objects"),
        "no live objects in these logs"
    );
    let long = text
        .split("<polyline")
        .skip(1)
        .filter(|p| {
            let points = p.split("points=\"").nth(1).unwrap_or("");
            let points = &points[..points.find('"').unwrap_or(0)];
            points.split_whitespace().count() >= 40
        })
        .count();
    assert_eq!(long, 2, "one 40-point line per dyno");
    let png = dir.path().join("dynos.png");
    let run = heapscope(&["plot", log.to_str().unwrap(), "-o", png.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let (w, _, rgb) = decode(&png);
    assert!(coloured_pixels(&rgb, w) > 1500);
}
