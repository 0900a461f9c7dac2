//! What the web UI tests share: a `heapscope serve` process on a loopback
//! port, and plain HTTP/1.1 requests to it over `TcpStream` (so a test sees
//! every status and header, and times the server alone).

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::process::Proc;

/// A running `heapscope serve`; stopped (its group killed) when dropped.
pub struct Server {
    _proc: Proc,
    /// `http://127.0.0.1:PORT` (no trailing slash, no token).
    pub base: String,
    /// `127.0.0.1:PORT`, the Host header it accepts (as printed).
    pub host: String,
    /// Where to connect (the printed address; 0.0.0.0 as 127.0.0.1).
    connect: String,
    stderr: PathBuf,
}

impl Server {
    /// `heapscope serve --listen 127.0.0.1:0 ARGS`; waits for the URL it
    /// prints on stdout.
    pub fn start<S: AsRef<OsStr>>(args: &[S], stderr_to: &Path) -> Server {
        let mut all: Vec<&OsStr> = vec!["--listen".as_ref(), "127.0.0.1:0".as_ref()];
        all.extend(args.iter().map(AsRef::as_ref));
        Server::start_listening(&all, stderr_to)
    }

    /// `heapscope serve ARGS` (which name --listen).
    pub fn start_listening<S: AsRef<OsStr>>(args: &[S], stderr_to: &Path) -> Server {
        let log = std::fs::File::create(stderr_to).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_heapscope"));
        cmd.arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut proc = Proc::spawn(cmd);
        let out = proc.child().stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_default();
        let url = line.trim().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:") || url.starts_with("http://0.0.0.0:"),
            "heapscope serve printed {url:?}; stderr:\n{}",
            std::fs::read_to_string(stderr_to).unwrap_or_default()
        );
        let rest = url.trim_start_matches("http://");
        let host = rest.split('/').next().unwrap().to_string();
        Server {
            _proc: proc,
            base: format!("http://{host}"),
            connect: host.replace("0.0.0.0:", "127.0.0.1:"),
            host,
            stderr: stderr_to.to_path_buf(),
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// GET `path` with the right Host header.
    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[])
    }

    /// GET that must answer 200; returns the body.
    pub fn page(&self, path: &str) -> String {
        let r = self.get(path);
        assert_eq!(
            r.status,
            200,
            "GET {path}: {}\n{}",
            r.status,
            r.body.chars().take(2000).collect::<String>()
        );
        r.body
    }

    /// One request (`Connection: close`): `headers` are added as given, a
    /// `Host` among them replaces the default one.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut s = TcpStream::connect(&self.connect).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str(&format!("Host: {}\r\n", self.host));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if method == "POST" {
            req.push_str("Content-Length: 0\r\n");
        }
        req.push_str("Connection: close\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        Reply::parse(&raw)
    }

    /// The time from sending a GET to its last byte.
    pub fn timed(&self, path: &str) -> (Reply, Duration) {
        let t = Instant::now();
        let r = self.get(path);
        (r, t.elapsed())
    }
}

pub struct Reply {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    fn parse(raw: &[u8]) -> Reply {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP response");
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[end + 4..].to_vec();
        if headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..nl])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 2 + size + 2..];
    }
    out
}

/// `heapscope import --store STORE ARGS`, which must succeed.
pub fn import<S: AsRef<OsStr>>(store: &str, args: &[S]) {
    let mut all: Vec<&OsStr> = vec!["import".as_ref(), "--store".as_ref(), store.as_ref()];
    all.extend(args.iter().map(AsRef::as_ref));
    crate::common::heapscope(&all).ok();
}

/// Every `href` in `html` that starts with `prefix`, in order.
pub fn hrefs(html: &str, prefix: &str) -> Vec<String> {
    let needle = format!("href=\"{prefix}");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(&needle) {
        let tail = &rest[i + 6..];
        let end = tail.find('"').unwrap();
        out.push(tail[..end].replace("&amp;", "&"));
        rest = &tail[end..];
    }
    out
}

/// The first object record's address in a dump file.
pub fn first_address(dump: &Path) -> String {
    let text = std::fs::read_to_string(dump).unwrap();
    for line in text.lines() {
        if line.contains("\"type\":\"ROOT\"") {
            continue;
        }
        if let Some(i) = line.find("\"address\":\"") {
            let a = &line[i + 11..];
            return a[..a.find('"').unwrap()].to_string();
        }
    }
    panic!("no object in {}", dump.display())
}

/// Every tab of a dump page.
pub const TABS: &[&str] = &[
    "type",
    "class",
    "location",
    "file",
    "gem",
    "generation",
    "string",
    "retained",
    "suspects",
    "dominators",
    "flame",
];
