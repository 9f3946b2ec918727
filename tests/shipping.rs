//! The shipper configurations in docs/shipping.md against real records, so
//! that the page cannot drift from the log.
//!
//! Steps: read the page's fenced blocks tagged `vector`, `fluent-bit` and
//! `otelcol`; pull out of each, with the shipper's own syntax, the record
//! keys it names, its time layout, its severity mapping and its file glob;
//! run the `size_rotating` example with small files; check that every key
//! is in every record of every file, that every timestamp fits every
//! layout, that every level is mapped, and that each glob matches every
//! log file and not the flight recorder's file.

#[path = "support/scenario_run.rs"]
mod scenario_run;

use std::collections::BTreeSet;
use std::path::Path;

use scenario_run::{records, run, TempDir};

/// The fenced blocks of docs/shipping.md whose info string ends with `tag`
/// (```` ```toml vector ````), joined.
fn blocks(tag: &str) -> String {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/shipping.md"))
            .expect("read docs/shipping.md");
    let mut out = String::new();
    let mut inside = false;
    let mut found = 0;
    for line in page.lines() {
        if let Some(info) = line.strip_prefix("```") {
            if inside {
                inside = false;
            } else if info.split_whitespace().nth(1) == Some(tag) {
                inside = true;
                found += 1;
                continue;
            }
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(found > 0, "docs/shipping.md has no block tagged {tag:?}");
    out
}

/// The words made of `[A-Za-z0-9_]` that follow `marker` in `text`.
fn after(text: &str, marker: &str) -> Vec<String> {
    text.match_indices(marker)
        .map(|(i, _)| {
            text[i + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The value after `key` on the first line that starts with it (trimmed),
/// without quotes.
fn setting(text: &str, key: &str) -> String {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key:?} in\n{text}"))
        .trim_matches(|c: char| c.is_whitespace() || "=:[]\"'".contains(c))
        .to_owned()
}

/// What a shipper's configuration asks of the records.
#[derive(Debug)]
struct Asks {
    keys: BTreeSet<String>,
    /// The time layout, as a pattern for `fits`.
    time: String,
    glob: String,
}

/// Vector: the fields the VRL program reads (right of each `=`) and the
/// `{{ key }}` templates; `parse_timestamp`'s `%+` is RFC 3339.
fn vector() -> Asks {
    let text = blocks("vector");
    let vrl = text
        .split("'''")
        .nth(1)
        .expect("a VRL program between ''' quotes");
    let mut keys: BTreeSet<String> = vrl
        .lines()
        .filter_map(|l| l.split_once('=').map(|(_, rhs)| rhs))
        .flat_map(|rhs| after(rhs, "(."))
        .collect();
    keys.extend(after(&text, "{{ "));
    let format = vrl
        .split("format: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("parse_timestamp's format");
    assert_eq!(format, "%+", "RFC 3339 in chrono's terms");
    Asks {
        keys,
        time: "YYYY-MM-DDTHH:MM:SS.F+Z".into(),
        glob: setting(&text, "include"),
    }
}

/// Fluent Bit: `Time_Key`, the `$key`s of `Label_Keys`, `Time_Format`.
fn fluent_bit() -> Asks {
    let text = blocks("fluent-bit");
    let mut keys: BTreeSet<String> = after(&text, "$").into_iter().collect();
    keys.insert(setting(&text, "Time_Key"));
    let time = setting(&text, "Time_Format")
        .replace("%Y", "YYYY")
        .replace("%m", "MM")
        .replace("%d", "DD")
        .replace("%H", "HH")
        .replace("%M", "MM")
        .replace("%S", "SS")
        .replace("%L", "F+"); // the fraction digits, as many as there are
    Asks {
        keys,
        time,
        glob: setting(&text, "Path"),
    }
}

/// The Collector: every `attributes.key`; the Go layout; the severity
/// mapping's values.
fn otelcol() -> (Asks, BTreeSet<String>) {
    let text = blocks("otelcol");
    let keys = after(&text, "attributes.").into_iter().collect();
    assert_eq!(setting(&text, "layout_type"), "gotime");
    let time = setting(&text, "layout:")
        .replace("2006", "YYYY")
        .replace("01", "MM")
        .replace("02", "DD")
        .replace("15", "HH")
        .replace("04", "MM")
        .replace("05", "SS")
        .replace(".000000", ".FFFFFF")
        .replace("Z07:00", "Z"); // UTC is written `Z`
    let mapping = text
        .split("mapping:")
        .nth(1)
        .expect("a severity mapping")
        .lines()
        .skip(1)
        .map_while(|l| l.trim().split_once(": "))
        .map(|(_, level)| level.to_owned())
        .collect();
    let asks = Asks {
        keys,
        time,
        glob: setting(&text, "include:"),
    };
    (asks, mapping)
}

/// Whether `value` fits `pattern`: `YYYY`, `MM`, `DD`, `HH`, `SS` and `F`
/// are digits, `F+` one or more digits, anything else itself.
fn fits(value: &str, pattern: &str) -> bool {
    let (v, p) = (value.as_bytes(), pattern.as_bytes());
    let (mut i, mut j) = (0, 0);
    while j < p.len() {
        if p[j..].starts_with(b"F+") {
            let digits = v[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return false;
            }
            i += digits;
            j += 2;
            continue;
        }
        let ok = match p[j] {
            b'Y' | b'M' | b'D' | b'H' | b'S' | b'F' => v.get(i).is_some_and(u8::is_ascii_digit),
            c => v.get(i) == Some(&c),
        };
        if !ok {
            return false;
        }
        i += 1;
        j += 1;
    }
    i == v.len()
}

/// Whether file name `name` matches the glob's last part (only `*`).
fn glob_matches(glob: &str, name: &str) -> bool {
    let pattern = glob.rsplit('/').next().unwrap();
    let parts: Vec<&str> = pattern.split('*').collect();
    let Some(rest) = name.strip_prefix(parts[0]) else {
        return false;
    };
    let mut rest = rest;
    for (k, part) in parts.iter().enumerate().skip(1) {
        if k == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

#[test]
fn the_shipper_configurations_fit_the_records() {
    let (otel, severities) = otelcol();
    let shippers = [
        ("vector", vector()),
        ("fluent-bit", fluent_bit()),
        ("otelcol", otel),
    ];
    for (name, asks) in &shippers {
        eprintln!("{name}: {asks:?}");
        assert!(
            asks.keys.contains("timestamp") && asks.keys.contains("level"),
            "{name} reads no timestamp or level: {asks:?}"
        );
    }
    assert!(severities.len() >= 5, "{severities:?}");

    let dir = TempDir::new("shipping");
    let base = dir.join("ingester.jsonl");
    let out = run("size_rotating", &["4096", "120", "never", "ok"], &base);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let mut logs = 0;
    let mut seen_levels = BTreeSet::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap();
        let is_log = file.ends_with(".jsonl");
        for (name, asks) in &shippers {
            assert_eq!(
                glob_matches(&asks.glob, file),
                is_log,
                "{name}'s glob {} and {file}",
                asks.glob
            );
        }
        if !is_log {
            continue;
        }
        logs += 1;
        for record in records(&path, false) {
            for (name, asks) in &shippers {
                for key in &asks.keys {
                    assert!(
                        record.get(key).is_some_and(|v| !v.is_null()),
                        "{name} names {key:?}, missing from {record}"
                    );
                }
                let stamp = record["timestamp"].as_str().unwrap();
                assert!(
                    fits(stamp, &asks.time),
                    "{name}: {stamp} does not fit {}",
                    asks.time
                );
            }
            let level = record["level"].as_str().unwrap().to_owned();
            assert!(severities.contains(&level), "{level} is not mapped");
            seen_levels.insert(level);
        }
    }
    assert!(logs > 3, "size rotation wrote several files: {logs}");
    assert!(seen_levels.contains("INFO"));
    // Every level the runtime writes is mapped, not only those of this run.
    for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] {
        assert!(severities.contains(level), "{level} is not mapped");
    }
}

#[test]
fn the_checks_can_fail() {
    assert!(fits(
        "2026-11-25T10:34:56.123456Z",
        "YYYY-MM-DDTHH:MM:SS.F+Z"
    ));
    assert!(!fits("2026-11-25T10:34:56Z", "YYYY-MM-DDTHH:MM:SS.F+Z"));
    assert!(!fits(
        "2026-11-25T10:34:56.1234Z",
        "YYYY-MM-DDTHH:MM:SS.FFFFFFZ"
    ));
    assert!(glob_matches("/x/ingester*.jsonl", "ingester.12.jsonl"));
    assert!(!glob_matches("/x/ingester*.jsonl", "ingester.ring"));
    assert!(!glob_matches("/x/ingester*.jsonl", "other.0.jsonl"));
}
