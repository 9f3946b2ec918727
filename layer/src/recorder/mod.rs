//! The flight recorder: the last records of the run, debug ones included,
//! kept where they survive SIGKILL and the OOM killer, at memory speed.
//!
//! # What it keeps, and where
//!
//! Every record that passes the recorder filter (`.recorder_filter()`,
//! default `debug`) is copied, as the complete JSONL line the layer made,
//! into a lock-free ring in a `MAP_SHARED` file beside the log:
//! `logs/app.jsonl` → `logs/app.ring` (a second process on the same log
//! path uses `logs/app.<pid>.ring`; see [`file`]). A store into a shared
//! file mapping is page cache at once, so the ring survives any death of
//! the process, with no system call per record. The file's size is
//! `.flight_recorder(bytes)` rounded down to a power of two (at least
//! 64 KiB; default 4 MiB), plus a 4 KiB header page.
//!
//! The JSONL file still gets exactly the records that pass `.filter()`,
//! numbered by `seq` with no gaps. A record that went to the file too is in
//! the ring with its `seq`; a record that went only to the ring has **no
//! `seq` key**: that is how the two are told apart.
//!
//! # What the next start does with it
//!
//! When the previous run ended without its final record (`previous_run.
//! ended` is `no_final_record`: SIGKILL, the OOM killer, a container cut
//! off), the next start copies that run's last records that the file does
//! not have (those without `seq`), at most [`MAX_RECOVERED`], oldest first,
//! into the JSONL before its own `process_start`, each with
//! `"recovered":true` as its last key and otherwise exactly as the layer
//! made it (its original `run_id` and `timestamp`). Records that went to
//! the file too are already there and are not copied again, so every record
//! is in the file once and counts stay right; the dead run's records, file
//! and recovered, sorted by `timestamp`, are its last seconds. Recovered
//! lines are older than the file's last lines: tools that sort by time see
//! them in place. `previous_run` then also carries, from the ring file's
//! header:
//!
//! | key | meaning |
//! |---|---|
//! | `last_alive` | the run's last heartbeat (every 500 ms, see [`heartbeat`]) |
//! | `rss_bytes` | its resident set size then |
//! | `memory_limit_bytes` | its memory cgroup's limit at start, `null` when unlimited or none |
//! | `cause` | `oom_kill` on the kernel's evidence (see [`evidence`]), else `unknown` (only with `no_final_record`) |
//! | `evidence` | that evidence as text, `""` when there is none (only with `no_final_record`) |
//! | `recovered_records` | how many records were copied |
//! | `exit_counts` | the run's most taken exits, at most [`MAX_EXIT_COUNTS`], highest first: `{"fn","site","line","n"}` (see [`counts`]) |
//! | `in_flight` | its functions with calls in flight, at most [`MAX_IN_FLIGHT`], oldest first: `{"fn","count","oldest_age_ms"}`, ages as of `last_alive` |
//!
//! The exit counts and calls in flight live in a region of the ring file
//! after the ring's data ([`counts`] has the layout and what is exact).
//! The death records (`panic`, `process_exit`, and `signal` and
//! `fatal_signal`, written async-signal-safely) carry the same two members
//! as of their moment, except a stack overflow's record (its handler runs
//! on std's small alternate stack): the next start's `previous_run` has
//! them.
//!
//! After a run that ended with a `panic`, `signal` or `fatal_signal`
//! record, its last ring records are copied in the same way (the death
//! record says how it ended; the ring says what led there), with
//! `recovered_records` but no `cause`. A run that exited, or still runs,
//! gets no copy.
//!
//! With several processes on one log, only the run whose record is last in
//! the file is the previous run: the `<stem>.<pid>.ring` files of other dead
//! runs are deleted at start without being copied.
//!
//! `log` crate records go to the ring as events do, by the same recorder
//! filter (evaluated on their target and level). The hooks' own records
//! (`panic`, `signal`, `fatal_signal`, `process_exit`) go to the ring
//! whatever the recorder filter says, with their `seq` (the signal
//! handlers' push is async-signal-safe), so that the ring alone tells how
//! the run ended; having a `seq`, they are never recovered into the file,
//! which has them already. `process_start` is written before the recorder
//! starts and is only in the file.
//!
//! Records the ring does not keep: those longer than an eighth of the ring
//! (counted in the header's `too_large`). A file record whose write failed
//! (a full disk) is in the ring with its `seq` and so is not recovered
//! either.

pub(crate) mod counts;
mod evidence;
mod file;
pub(crate) mod filter;
mod heartbeat;
mod recover;
mod ring;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, Ordering};

pub use counts::{
    exit_counts, in_flight, ExitCount, InFlight, MAX_EXIT_COUNTS, MAX_FNS, MAX_IN_FLIGHT, MAX_SITES,
};
pub(crate) use heartbeat::set_stuck_after;
pub use recover::MAX_RECOVERED;

use crate::clock::Timestamp;
use crate::json;
use crate::sink::Sink;
pub(crate) use file::RingFile;
use file::{Header, RunInfo};
use ring::Ring;

/// Default size of the ring: 4 MiB.
pub const DEFAULT_RECORDER_BYTES: usize = 4 << 20;

/// Smallest ring.
const MIN_CAPACITY: u64 = 64 << 10;

/// The process's running flight recorder.
static GLOBAL: AtomicPtr<Recorder> = AtomicPtr::new(std::ptr::null_mut());

/// This run's ring and its file.
pub(crate) struct Recorder {
    file: RingFile,
    ring: Ring,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.file.path())
            .field("capacity", &self.ring.capacity())
            .finish_non_exhaustive()
    }
}

/// The ring's data size for `.flight_recorder(bytes)`.
fn capacity_for(bytes: usize) -> u64 {
    let bytes = (bytes as u64).max(MIN_CAPACITY);
    1 << (63 - bytes.leading_zeros())
}

impl Recorder {
    /// Starts this run's ring in `file` (taken with [`RingFile::take`]),
    /// makes it the process's recorder and starts the heartbeat.
    pub(crate) fn start(
        mut file: RingFile,
        bytes: usize,
        run_id: &str,
        pid: u32,
    ) -> io::Result<&'static Recorder> {
        let cgroup = evidence::MemoryCgroup::own();
        let info = RunInfo {
            run_id,
            pid,
            start_micros: Timestamp::now().as_micros() as u64,
            memory_limit: cgroup.as_ref().and_then(|c| c.limit()),
            oom_kills: cgroup.as_ref().and_then(|c| c.oom_kills()),
            cgroup: cgroup.as_ref().map(|c| (c.dir.as_path(), c.version)),
        };
        file.start(capacity_for(bytes), &info)?;
        let ring = file
            .ring()
            .ok_or_else(|| io::Error::other("ring header not written"))?;
        let recorder: &'static Recorder = Box::leak(Box::new(Recorder { file, ring }));
        if GLOBAL
            .compare_exchange(
                std::ptr::null_mut(),
                recorder as *const Recorder as *mut Recorder,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return Err(io::Error::other("a flight recorder already runs"));
        }
        let counts = recorder.file.counts();
        if let Some(counts) = counts {
            counts.activate();
        }
        heartbeat::start(recorder.header(), counts);
        Ok(recorder)
    }

    /// The process's recorder, if one was started. Async-signal-safe.
    pub(crate) fn global() -> Option<&'static Recorder> {
        // SAFETY: GLOBAL holds null or a leaked, never-freed Recorder.
        unsafe { GLOBAL.load(Ordering::Acquire).as_ref() }
    }

    /// In the child of `fork()`: stops recording into the parent's ring
    /// (the mapping is shared with the parent). Async-signal-safe.
    pub(crate) fn forget_after_fork() {
        GLOBAL.store(std::ptr::null_mut(), Ordering::Release);
        counts::forget_after_fork();
    }

    fn header(&self) -> &'static Header {
        // The recorder is leaked; its header lives as long as the process.
        let header = self.file.header().expect("started ring has a header");
        // SAFETY: the mapping is never unmapped after `start` (the recorder
        // is leaked), so the reference stays valid.
        unsafe { &*(header as *const Header) }
    }

    /// Keeps one record, given as the pieces of its line. No allocation,
    /// no system call, no lock; async-signal-safe.
    #[inline]
    pub(crate) fn record(&self, parts: &[&[u8]]) {
        if !self.ring.push(parts) {
            self.header().too_large.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The ring file's path.
    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }
}

/// What the ring of the previous run adds to `previous_run`, as a JSON
/// object of the members in the [module docs](self); also copies its last
/// records into the file when it `ended` without a final record. `own` is
/// this process's ring file before [`Recorder::start`] (it may hold the
/// previous run's ring); `log` the configured log path. `None` when no ring
/// of that run is found and there is nothing to add.
pub(crate) fn previous_run(
    sink: &Sink,
    own: Option<&RingFile>,
    log: &Path,
    run_id: &str,
    pid: u32,
    ended: &str,
) -> Option<Vec<u8>> {
    let theirs;
    let file = match own.filter(|f| f.header().is_some_and(|h| h.run_id() == run_id)) {
        Some(own) => Some(own),
        None => {
            theirs = RingFile::dead(&file::ring_path(log, Some(pid)))
                .ok()
                .flatten()
                .filter(|f| f.header().is_some_and(|h| h.run_id() == run_id));
            theirs.as_ref()
        }
    };
    // A run that died without a word has only its ring to tell; one that
    // died of a panic or a signal said how, and its ring says what led
    // there. A run that exited, or still runs, gets no copy.
    let dead = ended == "no_final_record";
    let recover = dead || matches!(ended, "panic" | "signal" | "fatal_signal");
    if file.is_none() && !dead {
        return None;
    }
    // Members, each `,"key":value`.
    let mut out = Vec::with_capacity(256);
    let header = file.and_then(RingFile::header);
    if let Some(h) = header {
        json::key_vec(&mut out, "last_alive");
        let at = Timestamp::from_micros(h.last_alive_micros.load(Ordering::Acquire) as i64);
        out.push(b'"');
        out.extend_from_slice(&at.format());
        out.push(b'"');
        json::key_vec(&mut out, "rss_bytes");
        put_known(&mut out, h.rss_bytes.load(Ordering::Relaxed));
        json::key_vec(&mut out, "memory_limit_bytes");
        put_known(&mut out, h.memory_limit);
        if let Some(c) = file.and_then(RingFile::counts) {
            let at = h.last_alive_micros.load(Ordering::Acquire);
            json::key_vec(&mut out, "exit_counts");
            c.write_exit_counts(&mut out, MAX_EXIT_COUNTS);
            json::key_vec(&mut out, "in_flight");
            c.write_in_flight(&mut out, at, MAX_IN_FLIGHT);
        }
    }
    if recover {
        let mut lines = Vec::new();
        let recovered = match file.and_then(RingFile::ring) {
            Some(ring) => recover::lines(&ring, MAX_RECOVERED, &mut lines),
            None => 0,
        };
        if recovered > 0 {
            sink.append_lines(&lines);
        }
        json::key_vec(&mut out, "recovered_records");
        json::int(&mut out, recovered);
    }
    if dead {
        let verdict = evidence::judge(
            header.and_then(Header::cgroup),
            header.and_then(|h| Header::known(h.oom_kills_at_start)),
            pid,
        );
        json::key_vec(&mut out, "cause");
        json::string_vec(&mut out, verdict.cause);
        json::key_vec(&mut out, "evidence");
        json::string_vec(&mut out, &verdict.evidence);
    }
    let mut object = Vec::with_capacity(out.len() + 2);
    object.push(b'{');
    object.extend_from_slice(out.get(1..).unwrap_or_default());
    object.push(b'}');
    if let Some(f) = file.filter(|f| own.map_or(true, |own| !std::ptr::eq(*f, own))) {
        f.remove(); // a `<stem>.<pid>.ring` whose records are now in the file
    }
    Some(object)
}

/// Deletes the `<stem>.<pid>.ring` files beside `log` that no live process
/// holds: rings of earlier second processes on the same log, which no
/// start will report on (only the run whose record is last in the file is
/// the previous run). Called after [`previous_run`], so that a ring that
/// was the previous run's has been recovered first.
pub(crate) fn remove_stale(log: &Path) {
    let Some(dir) = log.parent().map(|d| {
        if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        }
    }) else {
        return;
    };
    let Some(stem) = log.file_stem().and_then(|s| s.to_str()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return; // nothing to tidy that can be listed
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| {
            n.strip_prefix(stem)?
                .strip_prefix('.')?
                .strip_suffix(".ring")
        }) else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        file::remove_if_unused(&entry.path());
    }
}

fn put_known(out: &mut Vec<u8>, value: u64) {
    match Header::known(value) {
        Some(v) => json::int(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// A fresh directory for a unit test.
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lastwords-rec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // may not exist
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_pid_rings_go_and_held_ones_stay() {
        let dir = test_dir("stale");
        let log = dir.join("app.jsonl");
        let info = RunInfo {
            run_id: "r",
            pid: 1,
            start_micros: 0,
            memory_limit: None,
            oom_kills: None,
            cgroup: None,
        };
        let mut main = RingFile::take(&log, 0o600).unwrap();
        main.start(1 << 16, &info).unwrap();
        // Held by this process: a second take gets `app.<pid>.ring`.
        let held = RingFile::take(&log, 0o600).unwrap();
        std::fs::write(dir.join("app.123.ring"), b"a dead run's ring").unwrap();
        std::fs::write(dir.join("app.x.ring"), b"not ours").unwrap();
        std::fs::write(dir.join("app.7.ring.bak"), b"not a ring").unwrap();
        std::fs::write(dir.join("other.123.ring"), b"another log's").unwrap();
        remove_stale(&log);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut want = vec![
            "app.ring".to_owned(),
            format!("app.{}.ring", std::process::id()),
            "app.x.ring".to_owned(),
            "app.7.ring.bak".to_owned(),
            "other.123.ring".to_owned(),
        ];
        want.sort();
        assert_eq!(names, want);
        drop(held);
    }
}
