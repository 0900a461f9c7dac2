//! A bounded HTTP/1.1 load generator that only ever talks to loopback.
//!
//! `concurrency` threads each keep their own keep-alive connection pool (one `ureq::Agent` per
//! thread) and take request numbers from a shared counter until `requests` are sent, the
//! deadline passes, the caller asks them to stop, or every request so far has failed. Redirects
//! are not followed and proxies from the environment are ignored, so no request leaves the
//! loopback address the target was checked to be.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A loopback address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub ip: IpAddr,
    pub port: u16,
}

impl Origin {
    pub fn url(&self, path: &str) -> String {
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        match self.ip {
            IpAddr::V4(ip) => format!("http://{ip}:{}{path}", self.port),
            IpAddr::V6(ip) => format!("http://[{ip}]:{}{path}", self.port),
        }
    }
}

/// Checks that `url` is plain HTTP to a loopback host (127.0.0.0/8, ::1 or `localhost`, which
/// becomes 127.0.0.1) and returns its origin and path (with the query; `/` when empty).
pub fn loopback_target(url: &str) -> Result<(Origin, String), String> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{url}: https is not supported; bench talks plain HTTP to a loopback address"
            ))
        }
        Some(other) => return Err(format!("{url}: unsupported scheme {other:?} (use http://)")),
        None => {
            return Err(format!(
                "{url}: give a full URL like http://127.0.0.1:3000/"
            ))
        }
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("{url}: no host in the URL"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if bare.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        bare.parse::<IpAddr>()
            .map_err(|_| not_loopback(url, host))?
    };
    if !ip.is_loopback() {
        return Err(not_loopback(url, host));
    }
    // `port_u16` is `None` both without a port and with one that is not a
    // number from 1 to 65535 (`:99999`), which must not become port 80.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let after_host = host_port.rsplit_once(']').map_or(host_port, |(_, p)| p);
    let port = match after_host.rsplit_once(':') {
        None | Some((_, "")) => 80,
        Some((_, p)) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("{url}: {p} is not a port (give 1 to 65535)")),
        },
    };
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    Ok((Origin { ip, port }, path))
}

fn not_loopback(url: &str, host: &str) -> String {
    format!(
        "refusing {url}: bench only sends requests to loopback addresses (127.0.0.0/8, ::1, \
         localhost), and {host} is not one"
    )
}

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub origin: Origin,
    /// Paths with their query strings, used in turn.
    pub paths: Vec<String>,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub requests: u64,
    pub concurrency: usize,
    pub request_timeout: Duration,
    /// No request starts after this.
    pub deadline: Instant,
}

/// Counters the caller can read (and the stop flag it can set) while the load runs.
#[derive(Debug, Default)]
pub struct LoadProgress {
    /// Requests finished (answered or failed).
    pub done: AtomicU64,
    /// Answered with a 2xx or 3xx status.
    pub ok: AtomicU64,
    pub stop: AtomicBool,
    reason: AtomicU8,
}

impl LoadProgress {
    fn stop_because(&self, reason: StopReason) {
        let _ = self.reason.compare_exchange(
            StopReason::Completed as u8,
            reason as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Asks the workers to stop after their current request.
    pub fn interrupt(&self) {
        self.stop_because(StopReason::Interrupted);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StopReason {
    /// Every request was sent.
    Completed = 0,
    Deadline = 1,
    Interrupted = 2,
    /// The first requests all failed.
    AllFailed = 3,
}

/// How the run went.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no response (connection refused, timeout...).
    pub errors: u64,
    /// The first few distinct error messages.
    pub error_samples: Vec<String>,
    pub elapsed: Duration,
    pub reason: StopReason,
}

impl LoadReport {
    pub fn sent(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.errors
    }

    pub fn ok(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| (200..400).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn failed(&self) -> u64 {
        self.sent() - self.ok()
    }
}

/// With no success among this many requests, the run stops.
const ALL_FAILED_AFTER: u64 = 20;

/// Sends the requests; returns when all are done or the run stopped.
pub fn run_load(spec: &LoadSpec, progress: &LoadProgress) -> LoadReport {
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let shared = Mutex::new((BTreeMap::<u16, u64>::new(), 0u64, Vec::<String>::new()));
    let urls: Vec<String> = spec.paths.iter().map(|p| spec.origin.url(p)).collect();
    let give_up_after = ALL_FAILED_AFTER.min(spec.requests.max(1));
    std::thread::scope(|scope| {
        for _ in 0..spec.concurrency.max(1) {
            scope.spawn(|| {
                let agent = agent(spec.request_timeout);
                let mut statuses = BTreeMap::<u16, u64>::new();
                let mut errors = 0u64;
                let mut samples = Vec::<String>::new();
                loop {
                    if progress.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if Instant::now() >= spec.deadline {
                        progress.stop_because(StopReason::Deadline);
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= spec.requests {
                        break;
                    }
                    let url = &urls[(i % urls.len() as u64) as usize];
                    match send(&agent, spec, url) {
                        Ok(status) => {
                            *statuses.entry(status).or_insert(0) += 1;
                            if (200..400).contains(&status) {
                                progress.ok.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(e) => {
                            errors += 1;
                            let msg = format!("{url}: {e}");
                            if samples.len() < 3 && !samples.contains(&msg) {
                                samples.push(msg);
                            }
                        }
                    }
                    let done = progress.done.fetch_add(1, Ordering::SeqCst) + 1;
                    if done >= give_up_after && progress.ok.load(Ordering::SeqCst) == 0 {
                        progress.stop_because(StopReason::AllFailed);
                        break;
                    }
                }
                let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
                for (s, n) in statuses {
                    *g.0.entry(s).or_insert(0) += n;
                }
                g.1 += errors;
                for m in samples {
                    if g.2.len() < 5 && !g.2.contains(&m) {
                        g.2.push(m);
                    }
                }
            });
        }
    });
    let (statuses, errors, error_samples) = shared.into_inner().unwrap_or_else(|e| e.into_inner());
    let reason = match progress.reason.load(Ordering::SeqCst) {
        1 => StopReason::Deadline,
        2 => StopReason::Interrupted,
        3 => StopReason::AllFailed,
        _ => StopReason::Completed,
    };
    LoadReport {
        statuses,
        errors,
        error_samples,
        elapsed: started.elapsed(),
        reason,
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .allow_non_standard_methods(true)
        .user_agent("heapscope-bench")
        .build()
        .into()
}

/// One request; the body is read to the end so the connection can be reused.
fn send(agent: &ureq::Agent, spec: &LoadSpec, url: &str) -> Result<u16, ureq::Error> {
    let mut req = ureq::http::Request::builder()
        .method(spec.method.as_str())
        .uri(url);
    for (k, v) in &spec.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = if spec.body.is_empty() {
        agent.run(req.body(())?)?
    } else {
        agent.run(req.body(spec.body.as_slice())?)?
    };
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    io::copy(&mut body.as_reader(), &mut io::sink())?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    #[test]
    fn only_loopback() {
        let (o, p) = loopback_target("http://127.0.0.1:3000/a?b=1").unwrap();
        assert_eq!((o.port, p.as_str()), (3000, "/a?b=1"));
        assert_eq!(o.url("/x"), "http://127.0.0.1:3000/x");
        let (o, p) = loopback_target("http://localhost").unwrap();
        assert_eq!(
            (o.ip, o.port, p.as_str()),
            (IpAddr::V4(Ipv4Addr::LOCALHOST), 80, "/")
        );
        let (o, _) = loopback_target("http://[::1]:8080/").unwrap();
        assert_eq!(o.url("/"), "http://[::1]:8080/");
        assert!(loopback_target("http://127.8.9.10/").is_ok());
        for bad in [
            "http://10.0.0.1/",
            "http://example.com/",
            "https://127.0.0.1/",
            "http://[::2]/",
            "127.0.0.1:3000",
            "http://0.0.0.0/",
        ] {
            assert!(loopback_target(bad).is_err(), "{bad}");
        }
        assert!(loopback_target("http://10.0.0.1/")
            .unwrap_err()
            .contains("only sends requests to loopback"));
    }

    #[test]
    fn ports_out_of_range_are_refused_not_replaced_by_80() {
        for bad in [
            "http://localhost:99999/",
            "http://127.0.0.1:65536/",
            "http://127.0.0.1:0/",
            "http://[::1]:70000/",
        ] {
            let e = loopback_target(bad).unwrap_err();
            assert!(e.contains("is not a port"), "{bad}: {e}");
        }
        assert_eq!(
            loopback_target("http://127.0.0.1:65535/").unwrap().0.port,
            65535
        );
        assert_eq!(
            loopback_target("http://u:p@127.0.0.1:81/").unwrap().0.port,
            81
        );
        assert_eq!(loopback_target("http://[::1]/").unwrap().0.port, 80);
    }

    /// A tiny keep-alive server: answers `status` to every request, counting connections.
    fn server(status: u16) -> (u16, std::sync::Arc<AtomicU64>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let conns = std::sync::Arc::new(AtomicU64::new(0));
        let c = conns.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                c.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut w = s;
                    loop {
                        let mut len = 0usize;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                len = v.trim().parse().unwrap();
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; len];
                        r.read_exact(&mut body).unwrap();
                        let text = format!("got {len}");
                        let resp = format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{text}",
                            text.len()
                        );
                        // One write: no Nagle delay between pieces of the answer.
                        let _ = w.write_all(resp.as_bytes());
                    }
                });
            }
        });
        (port, conns)
    }

    fn spec(port: u16, n: u64) -> LoadSpec {
        LoadSpec {
            origin: Origin {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port,
            },
            paths: vec!["/a".into(), "/b".into()],
            method: "POST".into(),
            headers: vec![("X-Test".into(), "1".into())],
            body: b"hello".to_vec(),
            requests: n,
            concurrency: 2,
            request_timeout: Duration::from_secs(5),
            deadline: Instant::now() + Duration::from_secs(30),
        }
    }

    #[test]
    fn sends_exactly_n_on_kept_alive_connections() {
        let (port, conns) = server(200);
        let p = LoadProgress::default();
        let r = run_load(&spec(port, 300), &p);
        assert_eq!(r.reason, StopReason::Completed);
        assert_eq!(r.statuses.get(&200), Some(&300));
        assert_eq!((r.sent(), r.ok(), r.errors), (300, 300, 0));
        assert_eq!(p.done.load(Ordering::SeqCst), 300);
        assert!(conns.load(Ordering::SeqCst) <= 4, "{conns:?}");
    }

    #[test]
    fn stops_when_everything_fails() {
        let (port, _) = server(500);
        let r = run_load(&spec(port, 1000), &LoadProgress::default());
        assert_eq!(r.reason, StopReason::AllFailed);
        assert!(r.sent() < 100, "{r:?}");
        // Nothing listens on a port just released.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = run_load(&spec(port, 1000), &LoadProgress::default());
        assert_eq!(r.reason, StopReason::AllFailed);
        assert!(r.errors > 0 && !r.error_samples.is_empty(), "{r:?}");
    }
}
