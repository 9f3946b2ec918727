//! Evidence of an OOM kill, from the kernel's own counters.
//!
//! A run killed by the OOM killer writes nothing; what the kernel keeps is
//! per memory cgroup: cgroup v2 counts kills in `memory.events`
//! (`oom_kill N`), cgroup v1 in `memory.oom_control` (`oom_kill N`, Linux
//! 4.13 and later). At start a run writes its cgroup's directory, limit and
//! counter into its ring file's header; the next start reads the same
//! counter again. If it rose, an OOM kill happened in that cgroup while the
//! run was alive or since — the previous run's `cause` is `oom_kill`, with
//! both readings in `evidence`. The kernel log (`/dev/kmsg`, readable by
//! root) naming the run's pid is evidence too. Anything else stays
//! `unknown`: a guess is never reported as a fact.
//!
//! The counter is the cgroup's, not the process's: another process of the
//! same cgroup killed by the OOM killer also raises it. The evidence text
//! says which counter rose so that the reader can judge.

use std::io::Read;
use std::path::{Path, PathBuf};

/// A memory cgroup: its directory and version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MemoryCgroup {
    pub(crate) dir: PathBuf,
    pub(crate) version: u8,
}

impl MemoryCgroup {
    /// This process's memory cgroup, if it has one with readable files.
    pub(crate) fn own() -> Option<MemoryCgroup> {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        from_proc(&cgroups, &mounts).filter(|c| c.counter_file().exists())
    }

    fn counter_file(&self) -> PathBuf {
        self.dir.join(match self.version {
            1 => "memory.oom_control",
            _ => "memory.events",
        })
    }

    /// The cgroup's memory limit in bytes; `None` when unlimited or
    /// unreadable.
    pub(crate) fn limit(&self) -> Option<u64> {
        let file = match self.version {
            1 => "memory.limit_in_bytes",
            _ => "memory.max",
        };
        let text = std::fs::read_to_string(self.dir.join(file)).ok()?;
        let limit: u64 = text.trim().parse().ok()?; // v2 "max": unlimited
                                                    // v1 reports "unlimited" as the largest page-aligned i64.
        (limit < (1 << 62)).then_some(limit)
    }

    /// The cgroup's `oom_kill` counter.
    pub(crate) fn oom_kills(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.counter_file()).ok()?;
        oom_kill_count(&text)
    }
}

/// The memory cgroup named in `/proc/self/cgroup`, placed under its mount
/// point from `/proc/self/mountinfo`: a v1 `memory` hierarchy when there is
/// one (it holds the memory controller), else the v2 unified hierarchy.
fn from_proc(cgroups: &str, mountinfo: &str) -> Option<MemoryCgroup> {
    let mut v2 = None;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            let root = mount_point(mountinfo, |fs, opts| {
                fs == "cgroup" && opts.split(',').any(|o| o == "memory")
            })
            .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup/memory"));
            return Some(MemoryCgroup {
                dir: under(&root, path),
                version: 1,
            });
        }
        if controllers.is_empty() {
            v2 = Some(path.to_owned());
        }
    }
    let path = v2?;
    let root = mount_point(mountinfo, |fs, _| fs == "cgroup2")
        .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
    Some(MemoryCgroup {
        dir: under(&root, &path),
        version: 2,
    })
}

fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// The mount point of the first mount whose file system type and super
/// options satisfy `want`.
fn mount_point(mountinfo: &str, want: impl Fn(&str, &str) -> bool) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // id parent maj:min root mountpoint opts [optional…] - fstype source superopts
        let (left, right) = line.split_once(" - ")?;
        let mount = left.split(' ').nth(4)?;
        let mut right = right.split(' ');
        let (fs, _source, opts) = (right.next()?, right.next()?, right.next().unwrap_or(""));
        want(fs, opts).then(|| PathBuf::from(mount))
    })
}

/// The `oom_kill N` line of `memory.events` or `memory.oom_control`.
fn oom_kill_count(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == "oom_kill").then(|| value.trim().parse().ok())?
    })
}

/// What the previous run's death looks like from the kernel's side.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// `oom_kill` or `unknown`.
    pub(crate) cause: &'static str,
    /// What was found, as text; empty when nothing was.
    pub(crate) evidence: String,
}

/// Judges a run that ended without its final record: its cgroup's counter
/// then and now, and the kernel log.
pub(crate) fn judge(cgroup: Option<(&Path, u8)>, kills_at_start: Option<u64>, pid: u32) -> Verdict {
    let mut evidence = Vec::new();
    if let Some((dir, version)) = cgroup {
        let cg = MemoryCgroup {
            dir: dir.to_owned(),
            version,
        };
        if let (Some(then), Some(now)) = (kills_at_start, cg.oom_kills()) {
            if now > then {
                evidence.push(format!(
                    "oom_kill in {} rose from {then} to {now} since the run started",
                    cg.counter_file().display()
                ));
            }
        }
    }
    if let Some(line) = kernel_log_oom(pid) {
        evidence.push(format!("kernel log: {line}"));
    }
    Verdict {
        cause: if evidence.is_empty() {
            "unknown"
        } else {
            "oom_kill"
        },
        evidence: evidence.join("; "),
    }
}

/// The last kernel log line that reports an OOM kill of `pid`, read from
/// `/dev/kmsg` without blocking (root only; `None` elsewhere).
fn kernel_log_oom(pid: u32) -> Option<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut kmsg = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .ok()?;
    let mut found = None;
    let mut buf = vec![0u8; 8192];
    // One record per read; EAGAIN at the end of the buffer. Bounded, so
    // a kernel that logs without pause cannot keep the start waiting.
    for _ in 0..100_000 {
        match kmsg.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let record = String::from_utf8_lossy(&buf[..n]);
                let text = record.split_once(';').map_or(&*record, |(_, t)| t);
                let text = text.lines().next().unwrap_or("");
                if names_oom_kill_of(text, pid) {
                    found = Some(text.to_owned());
                }
            }
            // EPIPE: records were overwritten while reading; go on.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    found
}

/// `Memory cgroup out of memory: Killed process 1234 (name) …` or
/// `Out of memory: Killed process 1234 (name) …`.
fn names_oom_kill_of(text: &str, pid: u32) -> bool {
    let Some((_, rest)) = text.split_once("Killed process ") else {
        return false;
    };
    let digits: &str = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or("");
    digits.parse() == Ok(pid) && (text.contains("out of memory") || text.contains("Out of memory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn v1_memory_line_wins_over_the_unified_one() {
        let cgroups = "9:name=systemd:/\n4:memory:/svc/abc\n0::/\n";
        assert_eq!(
            from_proc(cgroups, MOUNTS),
            Some(MemoryCgroup {
                dir: "/sys/fs/cgroup/memory/svc/abc".into(),
                version: 1
            })
        );
    }

    #[test]
    fn v2_only() {
        let mounts = "25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            from_proc("0::/system.slice/app.service\n", mounts),
            Some(MemoryCgroup {
                dir: "/sys/fs/cgroup/system.slice/app.service".into(),
                version: 2
            })
        );
        assert_eq!(from_proc("", mounts), None);
    }

    #[test]
    fn counters_of_both_versions() {
        assert_eq!(
            oom_kill_count("oom_kill_disable 0\nunder_oom 0\noom_kill 4\n"),
            Some(4)
        );
        assert_eq!(
            oom_kill_count("low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n"),
            Some(2)
        );
        assert_eq!(oom_kill_count("under_oom 0\n"), None);
    }

    #[test]
    fn kernel_log_lines() {
        let line = "Memory cgroup out of memory: Killed process 4321 (child) total-vm:1kB";
        assert!(names_oom_kill_of(line, 4321));
        assert!(!names_oom_kill_of(line, 432));
        assert!(!names_oom_kill_of("Killed process 4321 (x) by hand", 4321));
    }

    #[test]
    fn a_counter_that_rose_is_evidence_and_nothing_else_is() {
        let dir = crate::recorder::test_dir("evidence");
        std::fs::write(dir.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
        let cg = Some((dir.as_path(), 2u8));
        // A pid that is in no kernel log line.
        let v = judge(cg, Some(0), u32::MAX);
        assert_eq!(v.cause, "oom_kill");
        assert!(v.evidence.contains("rose from 0 to 1"), "{}", v.evidence);
        assert_eq!(judge(cg, Some(1), u32::MAX).cause, "unknown");
        assert_eq!(judge(cg, None, u32::MAX).cause, "unknown");
        assert_eq!(judge(None, Some(0), u32::MAX).cause, "unknown");
    }
}
