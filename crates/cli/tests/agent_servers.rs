//! The agent in real servers, started by `heapscope run`: Puma in cluster
//! mode (periodic dumps from every worker under the worker's pid, a worker
//! dumped on signal through `heapscope dump`, statistics per process) and
//! Sidekiq against a real redis-server (a dump every N jobs, `dump_keep`).
//! Everything listens on loopback only; every wait has a deadline; every
//! process is killed (with its process group) when a test fails.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::agent::summary_ok;
use common::process::{wait_for, Proc};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `heapscope run [flags] -- CMD...` in `dir`, the staged agent library.
fn heapscope_run(dir: &Path, flags: &[&str], cmd: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_heapscope"));
    c.current_dir(dir)
        .env("HEAPSCOPE_RUBY_LIB", common::agent::ruby_lib())
        .arg("run")
        .args(flags)
        .arg("--")
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap());
    for (k, _) in std::env::vars() {
        if k.starts_with("HEAPSCOPE_") && k != "HEAPSCOPE_RUBY_LIB" || k == "RUBYOPT" {
            c.env_remove(k);
        }
    }
    c
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

/// Dumps in `dir` by pid: seqs, sorted.
fn dumps_by_pid(dir: &Path) -> BTreeMap<u32, Vec<u64>> {
    let mut out: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix("heap-")
            .and_then(|r| r.strip_suffix(".dump"))
        else {
            continue;
        };
        let parts: Vec<u64> = rest.split('-').map(|p| p.parse().unwrap()).collect();
        assert_eq!(parts.len(), 3, "{name}");
        out.entry(parts[0] as u32).or_default().push(parts[2]);
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn read_state(runtime: &Path, pid: u32) -> Option<Value> {
    let text = std::fs::read_to_string(runtime.join(format!("agent-{pid}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// One HTTP/1.0 GET; the body (the worker's pid) or None on any error.
fn get(port: u16) -> Option<u32> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    if !resp.starts_with("HTTP/1.") || !resp.contains(" 200 ") {
        return None;
    }
    resp.split("\r\n\r\n")
        .nth(1)?
        .trim()
        .strip_prefix("pid ")?
        .parse()
        .ok()
}

#[test]
fn puma_cluster_workers_dump_periodically_and_on_signal() {
    if !common::agent::puma_usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("config.ru"),
        "$keep = Array.new(20_000) { |i| \"row #{i}\" }\n\
         run ->(_env) { sleep 0.03; [200, {\"content-type\" => \"text/plain\"}, [\"pid #{Process.pid}\"]] }\n",
    )
    .unwrap();
    let port = free_port();
    let bind = format!("tcp://127.0.0.1:{port}");
    let every = 3u64;
    let server = Proc::spawn(heapscope_run(
        dir,
        &[
            "--no-profile",
            "--dump-every-requests",
            "3",
            "--dump-dir",
            "dumps",
            "--runtime-dir",
            "run",
            "--stats-path",
            "stats/gc-%{pid}.jsonl",
            "--stats-interval",
            "0.5",
            "--verbose",
        ],
        &["puma", "-w", "2", "-t", "1:1", "-b", &bind, "config.ru"],
    ));
    let master = server.pid;
    // Until both workers have answered enough requests for 2 dumps each
    // (one thread per worker spreads concurrent requests over both).
    let mut served: BTreeMap<u32, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while served.len() < 2 || served.values().any(|n| *n < 2 * every) {
        assert!(
            Instant::now() < deadline,
            "workers served {served:?}\n{}",
            log(dir)
        );
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(move || get(port)))
            .collect();
        for h in handles {
            if let Some(pid) = h.join().unwrap() {
                *served.entry(pid).or_default() += 1;
            }
        }
        if served.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert_eq!(served.len(), 2, "{served:?}");
    assert!(!served.contains_key(&master));
    let dumps_dir = dir.join("dumps");
    // floor(requests / 3) dumps from every worker, under the worker's pid.
    let dumps = wait_for(Duration::from_secs(60), "the workers' dumps", || {
        let d = dumps_by_pid(&dumps_dir);
        let ok = served
            .iter()
            .all(|(pid, n)| d.get(pid).map(|v| v.len() as u64) == Some(n / every));
        ok.then_some(d)
    });
    let workers: Vec<u32> = served.keys().copied().collect();
    assert_eq!(
        dumps.keys().copied().collect::<Vec<_>>(),
        workers,
        "{}",
        log(dir)
    );
    for (pid, seqs) in &dumps {
        assert_eq!(
            seqs,
            &(1..=seqs.len() as u64).collect::<Vec<_>>(),
            "worker {pid}"
        );
    }

    // A worker dumped on signal through the CLI.
    let run = dir.join("run");
    let worker = workers[0];
    wait_for(Duration::from_secs(10), "worker announcement", || {
        read_state(&run, worker)
    });
    let out = Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args([
            "dump",
            &worker.to_string(),
            "--timeout",
            "60",
            "--runtime-dir",
        ])
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "heapscope dump {worker}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        log(dir)
    );
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&format!("heap-{worker}-")), "{name}");
    assert_eq!(path.parent().unwrap(), dumps_dir);
    summary_ok(&path);
    // Every periodic dump is complete.
    for e in std::fs::read_dir(&dumps_dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "dump") {
            summary_ok(&p);
        }
    }
    // The master and both workers announce themselves and keep statistics.
    assert!(read_state(&run, master).is_some(), "{}", log(dir));
    for pid in std::iter::once(master).chain(workers.iter().copied()) {
        let stats = dir.join("stats").join(format!("gc-{pid}.jsonl"));
        wait_for(Duration::from_secs(10), "statistics", || {
            std::fs::read_to_string(&stats)
                .ok()
                .filter(|t| t.lines().count() >= 2)
        });
    }
    assert!(
        !dumps_by_pid(&dumps_dir).contains_key(&master),
        "the master serves no requests"
    );

    let mut server = server;
    common::process::signal(master, "TERM");
    // Puma 6.6 on Ruby 3.3 now and then leaves a worker hanging at shutdown
    // in a futex wait, and the master waits for it: 1 run in 20 of
    // `puma -w 2` + SIGTERM without any agent. Such a worker is killed after
    // 20 s, so that the master's own exit is still checked.
    let mut deadline = Instant::now() + Duration::from_secs(20);
    let mut killed_workers = false;
    let status = loop {
        if let Some(status) = server.exited() {
            break status;
        }
        if Instant::now() > deadline && !killed_workers {
            killed_workers = true;
            deadline = Instant::now() + Duration::from_secs(20);
            for &w in &workers {
                if common::process::signal(w, "KILL") {
                    eprintln!("worker {w} hung at shutdown (Puma's own hang): killed");
                }
            }
        } else if Instant::now() > deadline {
            // Every process of the server's group, with where it sleeps.
            let tree = Command::new("ps")
                .args(["-e", "-o", "pgid=,pid=,ppid=,stat=,wchan:32=,args="])
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .filter(|l| l.split_whitespace().next() == Some(&master.to_string()))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            panic!(
                "the Puma master did not exit within 40 s of SIGTERM\n{tree}\n{}",
                log(dir)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(server);
    assert!(
        status.success() || status.code().is_none(),
        "{status:?}\n{}",
        log(dir)
    );
    // The master removed its announcement at exit.
    assert!(read_state(&run, master).is_none(), "{}", log(dir));
    assert!(!log(dir).contains("heapscope: could not"), "{}", log(dir));
}

#[test]
fn sidekiq_jobs_trigger_dumps_with_dump_keep() {
    for program in ["redis-server", "sidekiq"] {
        if !common::agent::which(program) {
            eprintln!("SKIPPED: {program} is not installed");
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    let redis = Proc::spawn({
        let mut c = Command::new("redis-server");
        c.current_dir(dir)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    });
    wait_for(Duration::from_secs(20), "redis-server", || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let url = format!("redis://127.0.0.1:{port}/0");
    std::fs::create_dir_all(dir.join("done")).unwrap();
    std::fs::write(
        dir.join("worker.rb"),
        r#"require "sidekiq"
class HeapscopeTestJob
  include Sidekiq::Worker
  def perform(i)
    Array.new(1000) { |k| "job #{i} #{k}" }
    File.write(File.join(__dir__, "done", i.to_s), Process.pid.to_s)
  end
end
"#,
    )
    .unwrap();
    let (jobs, every, keep) = (10u64, 3u64, 2u64);
    let mut cmd = heapscope_run(
        dir,
        &[
            "--no-profile",
            "--no-stats",
            "--dump-every-jobs",
            &every.to_string(),
            "--dump-keep",
            &keep.to_string(),
            "--dump-dir",
            "dumps",
            "--runtime-dir",
            "run",
            "--verbose",
        ],
        &["sidekiq", "-r", "./worker.rb", "-c", "2", "-t", "5"],
    );
    cmd.env("REDIS_URL", &url);
    let sidekiq = Proc::spawn(cmd);
    let pid = sidekiq.pid;
    let run = dir.join("run");
    wait_for(Duration::from_secs(30), "sidekiq's agent", || {
        read_state(&run, pid)
    });

    let enqueue = Command::new("ruby")
        .current_dir(dir)
        .env_remove("RUBYOPT")
        .env("REDIS_URL", &url)
        .args([
            "-r./worker.rb",
            "-e",
            &format!("{jobs}.times {{ |i| HeapscopeTestJob.perform_async(i) }}"),
        ])
        .output()
        .unwrap();
    assert!(
        enqueue.status.success(),
        "enqueue: {}",
        String::from_utf8_lossy(&enqueue.stderr)
    );
    wait_for(Duration::from_secs(60), "the jobs", || {
        (std::fs::read_dir(dir.join("done")).unwrap().count() as u64 == jobs).then_some(())
    });
    let expected = jobs / every;
    let state = wait_for(Duration::from_secs(60), "the job dumps", || {
        read_state(&run, pid).filter(|s| {
            s["last_dump"]["seq"].as_u64() == Some(expected) && s["last_dump"]["state"] == "done"
        })
    });
    assert_eq!(state["last_dump"]["reason"], "jobs");
    // No further dump: 10 jobs make 3, not 4.
    std::thread::sleep(Duration::from_millis(500));
    let dumps = dumps_by_pid(&dir.join("dumps"));
    assert_eq!(
        dumps.keys().copied().collect::<Vec<_>>(),
        vec![pid],
        "{}",
        log(dir)
    );
    // dump_keep: only the newest survive.
    assert_eq!(
        dumps[&pid],
        ((expected - keep + 1)..=expected).collect::<Vec<_>>()
    );
    summary_ok(Path::new(state["last_dump"]["path"].as_str().unwrap()));

    let status = sidekiq.stop("TERM", Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", log(dir));
    assert!(read_state(&run, pid).is_none());
    drop(redis);
}
