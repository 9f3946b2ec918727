//! Records of the `log` crate reach the lastwords file with their
//! key-value pairs. The `log` logger is process-wide, so each case runs in a
//! child: this test binary started again with `LASTWORDS_LOG_CHILD` naming
//! the case, running only [`child`]. The parent then reads every line of
//! the child's file.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/top_keys.rs"]
mod top_keys;

use serde_json::{Map, Value};

/// The variable that makes this binary a child, naming its case.
const CHILD: &str = "LASTWORDS_LOG_CHILD";

/// A fresh directory for one case's file.
fn scratch(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .ancestors()
        .nth(2)
        .expect("profile dir")
        .join("log-records-tests")
        .join(name);
    // Ignored: the directory may not exist yet.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Runs `case` in a child writing to `log`, with `RUST_LOG` set to
/// `rust_log` (or unset); returns its stderr.
fn run(case: &str, log: &Path, rust_log: Option<&str>) -> String {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .env("LASTWORDS_PATH", log)
        .env_remove("RUST_LOG");
    if let Some(directives) = rust_log {
        cmd.env("RUST_LOG", directives);
    }
    let out = cmd.output().expect("run child");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child {case} failed: {stderr}");
    stderr
}

/// Every line of `log`, parsed; fails on a line that is not one JSON object
/// or that has a key twice.
fn records(log: &Path) -> Vec<Map<String, Value>> {
    let text = std::fs::read_to_string(log).expect("read log");
    text.lines()
        .map(|line| {
            let map: Map<String, Value> = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON object: {line}: {e}"));
            top_keys::assert_no_key_twice(line);
            map
        })
        .collect()
}

/// The record whose message is `message`.
fn find<'r>(recs: &'r [Map<String, Value>], message: &str) -> &'r Map<String, Value> {
    recs.iter()
        .find(|r| r["message"] == message)
        .unwrap_or_else(|| panic!("no record {message:?} in {recs:#?}"))
}

/// A module of its own, so that its records have a target of their own.
mod billing {
    pub fn charge() {
        log::debug!(cents = 1250u64; "charging");
        log::trace!("too detailed for the filter");
    }
}

/// The child's side: installs lastwords and logs through `log` and
/// `tracing`. Does nothing in the parent's own test run.
#[test]
fn child() {
    let Ok(case) = std::env::var(CHILD) else {
        return;
    };
    match case.as_str() {
        "types" => {
            lastwords::init()
                .filter("info,noisy=warn,log_records::billing=debug,mio=trace")
                .mirror(false)
                .install()
                .expect("lastwords");
            tracing::info!("tracing before");
            log::info!(
                i = -42i64, u = 42u64, wide = i128::MIN, uwide = u128::MAX,
                f = 1.5f64, b = true, s = "a \"quoted\"\nline", c = 'x';
                "every type"
            );
            log::info!(d:? = vec![1, 2], disp:% = std::net::Ipv4Addr::LOCALHOST; "captured");
            log::info!(seq = 1, level = "x", file = "f.rs", kind = "k", message = "m"; "collisions");
            log::warn!(a = 1, a = 2, a = 3; "the same key three times");
            log::info!(target: "noisy", "filtered out by target");
            log::warn!(target: "noisy", "kept at warn");
            log::debug!("below info");
            billing::charge();
            {
                let _span = tracing::info_span!("request", id = 7).entered();
                log::error!(code = 503; "inside a span");
            }
            // A real dependency logging through `log`: mio's registry logs
            // each registration at TRACE.
            let poll = mio::Poll::new().expect("poll");
            let mut listener =
                mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
            poll.registry()
                .register(&mut listener, mio::Token(7), mio::Interest::READABLE)
                .expect("register");
            tracing::info!("tracing after");
        }
        "rust_log" => {
            lastwords::init()
                .mirror(false)
                .install()
                .expect("lastwords");
            log::info!("info, below RUST_LOG");
            log::warn!("warn, kept");
            billing::charge();
        }
        "other_logger" => {
            struct Stderr;
            impl log::Log for Stderr {
                fn enabled(&self, _: &log::Metadata<'_>) -> bool {
                    true
                }
                fn log(&self, record: &log::Record<'_>) {
                    eprintln!("other logger: {}", record.args());
                }
                fn flush(&self) {}
            }
            log::set_logger(&Stderr).expect("first logger");
            log::set_max_level(log::LevelFilter::Info);
            lastwords::init()
                .mirror(false)
                .install()
                .expect("install does not fail when a logger is set");
            log::info!(n = 1; "to the other logger");
            tracing::info!("tracing still here");
        }
        "off" => {
            lastwords::init()
                .mirror(false)
                .log_records(false)
                .install()
                .expect("lastwords");
            log::error!("not taken");
            tracing::info!("tracing still here");
        }
        // The flight recorder keeps `log` records too (see the tests at the
        // end of this file).
        "recorder" => {
            lastwords::init()
                .filter("info")
                .recorder_filter("debug,log_records::billing=info")
                .mirror(false)
                .install()
                .expect("lastwords");
            for i in 0..300u64 {
                if i % 100 == 0 {
                    log::info!(i; "to the file and the ring");
                } else {
                    log::debug!(i, detail = "only in the ring"; "debug record");
                }
                log::trace!(i; "kept nowhere");
            }
            // Below the recorder filter's level for its target.
            billing::charge();
            // SAFETY: raise(3) ends this process; nothing runs after it.
            unsafe { libc::raise(libc::SIGKILL) };
            unreachable!("SIGKILL ends the process");
        }
        "start" => {
            lastwords::init()
                .mirror(false)
                .install()
                .expect("lastwords");
        }
        other => panic!("unknown case {other}"),
    }
}

#[test]
fn log_records_carry_their_key_values_of_every_type() {
    let dir = scratch("types");
    let log = dir.join("app.jsonl");
    run("types", &log, None);
    let recs = records(&log);
    let seqs: Vec<u64> = recs.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=recs.len() as u64).collect::<Vec<_>>());

    let all = find(&recs, "every type");
    assert_eq!(all["kind"], "event");
    assert_eq!(all["level"], "INFO");
    assert_eq!(all["target"], "log_records");
    assert_eq!(all["module_path"], "log_records");
    assert!(all["file"]
        .as_str()
        .unwrap()
        .ends_with("tests/log_records.rs"));
    assert!(all["line"].as_u64().unwrap() > 0);
    assert_eq!(all["i"], -42);
    assert_eq!(all["u"], 42);
    assert_eq!(all["f"], 1.5);
    assert_eq!(all["b"], true);
    assert_eq!(all["s"], "a \"quoted\"\nline");
    assert_eq!(all["c"], "x");
    // serde_json cannot hold 128-bit integers: check the digits.
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().find(|l| l.contains("every type")).unwrap();
    assert!(line.contains(&format!("\"wide\":{}", i128::MIN)), "{line}");
    assert!(line.contains(&format!("\"uwide\":{}", u128::MAX)), "{line}");

    let captured = find(&recs, "captured");
    assert_eq!(captured["d"], "[1, 2]");
    assert_eq!(captured["disp"], "127.0.0.1");

    // Schema keys and the record's own `file` stay; the pairs are renamed.
    let coll = find(&recs, "collisions");
    assert_eq!(coll["field.seq"], 1);
    assert_eq!(coll["field.level"], "x");
    assert_eq!(coll["field.kind"], "k");
    assert_eq!(coll["field.message"], "m");
    assert_eq!(coll["field.file"], "f.rs");
    assert_eq!(coll["level"], "INFO");
    assert_eq!(coll["kind"], "event");
    assert!(coll["file"].as_str().unwrap().ends_with("log_records.rs"));

    let thrice = find(&recs, "the same key three times");
    assert_eq!(
        (&thrice["a"], &thrice["field.a"], &thrice["field.a.2"]),
        (&1.into(), &2.into(), &3.into())
    );

    // The filter, by target and level.
    let messages: Vec<&str> = recs
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert!(
        !messages.contains(&"filtered out by target"),
        "{messages:?}"
    );
    assert!(!messages.contains(&"below info"), "{messages:?}");
    assert!(!messages.contains(&"too detailed for the filter"));
    assert_eq!(find(&recs, "kept at warn")["target"], "noisy");
    let charging = find(&recs, "charging");
    assert_eq!(charging["target"], "log_records::billing");
    assert_eq!(charging["level"], "DEBUG");
    assert_eq!(charging["cents"], 1250);

    let in_span = find(&recs, "inside a span");
    assert_eq!(
        in_span["span"],
        serde_json::json!({"name": "request", "id": 7})
    );
    assert_eq!(in_span["code"], 503);

    let mio = recs
        .iter()
        .find(|r| r["target"].as_str().unwrap_or("").starts_with("mio"))
        .unwrap_or_else(|| panic!("no record from mio in {messages:?}"));
    assert_eq!(mio["level"], "TRACE");
    assert!(
        mio["message"].as_str().unwrap().contains("registering"),
        "{mio:?}"
    );
    assert!(mio["file"].as_str().unwrap().contains("mio"), "{mio:?}");

    // In order with the `tracing` events around them.
    let at = |m: &str| messages.iter().position(|x| *x == m).unwrap();
    assert!(at("tracing before") < at("every type"));
    assert!(at("every type") < at("tracing after"));
}

#[test]
fn rust_log_filters_log_records_without_a_filter() {
    let dir = scratch("rust_log");
    let log = dir.join("app.jsonl");
    run("rust_log", &log, Some("warn,log_records::billing=debug"));
    let recs = records(&log);
    let messages: Vec<&str> = recs
        .iter()
        .filter(|r| r["kind"] == "event")
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["warn, kept", "charging"]);
}

#[test]
fn a_logger_set_before_install_keeps_the_log_records() {
    let dir = scratch("other_logger");
    let log = dir.join("app.jsonl");
    let stderr = run("other_logger", &log, None);
    assert!(
        stderr.contains("other logger: to the other logger"),
        "{stderr}"
    );
    let recs = records(&log);
    let messages: Vec<&str> = recs
        .iter()
        .filter(|r| r["kind"] == "event")
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["tracing still here"]);
}

#[test]
fn log_records_false_leaves_log_alone() {
    let dir = scratch("off");
    let log = dir.join("app.jsonl");
    run("off", &log, None);
    let recs = records(&log);
    let messages: Vec<&str> = recs
        .iter()
        .filter(|r| r["kind"] == "event")
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["tracing still here"]);
}

// The flight recorder keeps `log` records as it keeps events.

#[test]
fn log_records_only_the_ring_kept_are_recovered_after_sigkill() {
    use std::os::unix::process::ExitStatusExt;

    let dir = scratch("recorder");
    let log = dir.join("app.jsonl");
    let status = Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, "recorder")
        .env("LASTWORDS_PATH", &log)
        .env_remove("RUST_LOG")
        .status()
        .expect("run child");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    run("start", &log, None);

    let recs = records(&log);
    let start = recs
        .iter()
        .rposition(|r| r["kind"] == "process_start")
        .expect("the second start");
    let first = recs
        .iter()
        .position(|r| r.get("recovered").is_some())
        .expect("recovered records");
    let recovered = &recs[first..start];
    // The debug records, oldest first, just before the new start, marked
    // and without `seq`: the file's numbering is the file's.
    let want: Vec<u64> = (0..300).filter(|i| i % 100 != 0).collect();
    let got: Vec<u64> = recovered
        .iter()
        .map(|r| r["i"].as_u64().expect("i"))
        .collect();
    assert_eq!(got, want);
    for r in recovered {
        assert_eq!(r["recovered"], true, "{r:?}");
        assert!(r.get("seq").is_none(), "{r:?}");
        assert_eq!(r["message"], "debug record");
        assert_eq!(r["level"], "DEBUG");
        assert_eq!(r["target"], "log_records");
        assert_eq!(r["detail"], "only in the ring");
        assert!(r["file"].as_str().unwrap().ends_with("log_records.rs"));
    }
    let previous = &recs[start]["previous_run"];
    assert_eq!(previous["ended"], "no_final_record", "{previous}");
    assert_eq!(previous["recovered_records"], 297, "{previous}");

    // The info records reached the file once, numbered, and are not copied
    // again; what neither filter passes is nowhere.
    let dead_run = recs[first]["run_id"].clone();
    let in_file: Vec<&Map<String, Value>> = recs[..first]
        .iter()
        .filter(|r| r["run_id"] == dead_run)
        .collect();
    let seqs: Vec<u64> = in_file.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=in_file.len() as u64).collect::<Vec<_>>());
    let infos: Vec<u64> = in_file
        .iter()
        .filter(|r| r["message"] == "to the file and the ring")
        .map(|r| r["i"].as_u64().unwrap())
        .collect();
    assert_eq!(infos, [0, 100, 200]);
    for message in ["kept nowhere", "charging"] {
        assert!(
            !recs.iter().any(|r| r["message"] == message),
            "{message:?} is in the file"
        );
    }
}
