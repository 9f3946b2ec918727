//! The ring file: `logs/<stem>.ring` beside the log, a header page, the
//! ring's data and the exit counts region (see [`super::counts`]), mapped
//! `MAP_SHARED`.
//!
//! # Why a shared file mapping
//!
//! A store into a `MAP_SHARED` mapping of a file lands in the page cache
//! page itself: the moment the store instruction retires it is the file's
//! content, whatever happens to the process next (SIGKILL, the OOM killer).
//! No system call is needed per record. Only a kernel crash or a power cut
//! loses it, as it loses every `write(2)` not yet synced.
//!
//! The file's blocks are allocated up front (`posix_fallocate`), so a full
//! disk is reported at start instead of becoming a `SIGBUS` at the first
//! store into a hole, and the pages are faulted in at start
//! (`MAP_POPULATE`) so that no record pays for a page fault. The mapping's
//! pages are page cache: with a memory cgroup they count against its limit.
//!
//! # One ring file per process
//!
//! The process that runs holds an exclusive `flock` on its ring file for its
//! whole life (the lock goes with the process, however it dies). A second
//! process started on the same log path finds `<stem>.ring` locked and uses
//! `<stem>.<pid>.ring` instead, so two processes never write into one ring.
//! A start reads a dead run's ring only when it can take that lock, i.e.
//! when no live process uses it, and deletes a `<stem>.<pid>.ring` once it
//! has recovered its records.
//!
//! # Header
//!
//! The first 4 KiB hold [`Header`]: what run wrote the ring, the ring's head
//! counter, the heartbeat (`last_alive`, `rss_bytes`) and what the memory
//! cgroup looked like at start. `magic` is written last when a run starts
//! its ring, and cleared first, so a header is trusted only when complete.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::ring::Ring;

/// Bytes before the ring's data.
pub(crate) const HEADER_BYTES: u64 = 4096;

/// Identifies a ring file of this format.
const MAGIC: [u8; 8] = *b"LWRING01";

/// Longest `run_id` kept.
const RUN_ID_BYTES: usize = 64;

/// Longest memory cgroup directory kept.
const CGROUP_BYTES: usize = 1024;

/// "Not known" in the header's numeric fields.
pub(crate) const UNKNOWN: u64 = u64::MAX;

/// The header page, as laid out in the file (native endianness: the file
/// is read back on the same machine).
#[repr(C)]
pub(crate) struct Header {
    magic: AtomicU64,
    version: u32,
    header_bytes: u32,
    capacity: u64,
    pub(crate) pid: u64,
    /// When the run started its ring, Unix microseconds.
    pub(crate) start_micros: u64,
    /// The run's memory cgroup limit at start, or [`UNKNOWN`].
    pub(crate) memory_limit: u64,
    /// The cgroup's `oom_kill` counter at start, or [`UNKNOWN`].
    pub(crate) oom_kills_at_start: u64,
    /// 1 or 2: the cgroup version of `cgroup_dir`; 0: none.
    pub(crate) cgroup_version: u64,
    salt: u64,
    run_id_len: u64,
    run_id: [u8; RUN_ID_BYTES],
    _pad0: [u8; 32],
    /// Offset 192, its own cache line: every record moves it.
    pub(crate) head: AtomicU64,
    _pad1: [u8; 56],
    /// Offset 256: written once a second by the heartbeat.
    pub(crate) last_alive_micros: AtomicU64,
    pub(crate) rss_bytes: AtomicU64,
    /// Records too large for the ring, not stored.
    pub(crate) too_large: AtomicU64,
    _pad2: [u8; 40],
    cgroup_len: u64,
    cgroup_dir: [u8; CGROUP_BYTES],
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_BYTES as usize);

/// What a run writes into its header at start.
pub(crate) struct RunInfo<'a> {
    pub(crate) run_id: &'a str,
    pub(crate) pid: u32,
    pub(crate) start_micros: u64,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) oom_kills: Option<u64>,
    /// The memory cgroup directory and its version.
    pub(crate) cgroup: Option<(&'a Path, u8)>,
}

impl Header {
    fn valid(&self, file_len: u64) -> bool {
        self.magic.load(Ordering::Acquire) == u64::from_ne_bytes(MAGIC)
            && self.version == 1
            && u64::from(self.header_bytes) == HEADER_BYTES
            && self.capacity.is_power_of_two()
            && self.capacity >= 4096
            && HEADER_BYTES + self.capacity <= file_len
            && self.run_id_len as usize <= RUN_ID_BYTES
            && self.cgroup_len as usize <= CGROUP_BYTES
    }

    /// The run that wrote the ring.
    pub(crate) fn run_id(&self) -> &str {
        std::str::from_utf8(&self.run_id[..self.run_id_len as usize]).unwrap_or("")
    }

    /// The run's memory cgroup directory and its version, if it had one.
    pub(crate) fn cgroup(&self) -> Option<(&Path, u8)> {
        let dir = &self.cgroup_dir[..self.cgroup_len as usize];
        match self.cgroup_version {
            v @ (1 | 2) if !dir.is_empty() => {
                Some((Path::new(std::ffi::OsStr::from_bytes(dir)), v as u8))
            }
            _ => None,
        }
    }

    /// A numeric field, `None` for [`UNKNOWN`].
    pub(crate) fn known(value: u64) -> Option<u64> {
        (value != UNKNOWN).then_some(value)
    }
}

/// `logs/app.jsonl` → `logs/app.ring`; with a pid, `logs/app.<pid>.ring`.
pub(crate) fn ring_path(log: &Path, pid: Option<u32>) -> PathBuf {
    let stem = log
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "lastwords".into());
    let name = match pid {
        Some(pid) => format!("{stem}.{pid}.ring"),
        None => format!("{stem}.ring"),
    };
    log.with_file_name(name)
}

/// Deletes the file at `path` if no live process holds its lock (the lock
/// is held while deleting). Returns whether it was deleted.
pub(crate) fn remove_if_unused(path: &Path) -> bool {
    let Ok(fd) = open(path, libc::O_RDONLY, 0) else {
        return false;
    };
    let free = try_lock(fd).unwrap_or(false);
    let removed = free
        && cpath(path)
            // SAFETY: a valid C string.
            .map(|c| unsafe { libc::unlink(c.as_ptr()) } == 0)
            .unwrap_or(false);
    // SAFETY: our descriptor; closing it drops the lock.
    unsafe { libc::close(fd) };
    removed
}

/// A mapped ring file.
pub(crate) struct RingFile {
    fd: libc::c_int,
    ptr: *mut u8,
    len: usize,
    path: PathBuf,
    /// Whether the mapping is writable (this process's own ring).
    own: bool,
}

// SAFETY: the mapping is shared memory accessed through atomics and the
// ring's protocol; the descriptor is only used by the owner.
unsafe impl Send for RingFile {}
// SAFETY: as above.
unsafe impl Sync for RingFile {}

impl Drop for RingFile {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from mmap (or are null/0), `fd` from open.
        unsafe {
            if !self.ptr.is_null() {
                libc::munmap(self.ptr.cast(), self.len);
            }
            libc::close(self.fd);
        }
    }
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

fn open(path: &Path, flags: libc::c_int, mode: u32) -> io::Result<libc::c_int> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Takes the exclusive lock without waiting; `false` when a live process
/// holds it.
fn try_lock(fd: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: plain flock on an open descriptor.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

fn file_len(fd: libc::c_int) -> io::Result<u64> {
    // SAFETY: `st` is written by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and buffer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.st_size as u64)
}

/// Maps `len` bytes of the file; `populate` faults every page in now (this
/// run's own ring, so that no record pays for a page fault; never an old
/// file, whose size is not ours to trust).
fn map(fd: libc::c_int, len: usize, writable: bool, populate: bool) -> io::Result<*mut u8> {
    let prot = if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    let flags = if populate {
        libc::MAP_SHARED | libc::MAP_POPULATE
    } else {
        libc::MAP_SHARED
    };
    // SAFETY: a fresh mapping of an open file; the kernel picks the address.
    let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(ptr.cast())
}

impl RingFile {
    /// Opens and locks this process's ring file for `log`: `<stem>.ring`,
    /// or `<stem>.<pid>.ring` when a live process holds that one. Whatever
    /// an earlier run left in it stays readable ([`RingFile::header`],
    /// [`RingFile::ring`]) until [`RingFile::start`].
    pub(crate) fn take(log: &Path, mode: u32) -> io::Result<RingFile> {
        let flags = libc::O_RDWR | libc::O_CREAT;
        let main = ring_path(log, None);
        let fd = open(&main, flags, mode)?;
        let (fd, path) = if try_lock(fd)? {
            (fd, main)
        } else {
            // SAFETY: our descriptor, not used elsewhere.
            unsafe { libc::close(fd) };
            let own = ring_path(log, Some(std::process::id()));
            let fd = open(&own, flags, mode)?;
            if !try_lock(fd)? {
                // SAFETY: as above.
                unsafe { libc::close(fd) };
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "ring file in use",
                ));
            }
            (fd, own)
        };
        let mut file = RingFile {
            fd,
            ptr: std::ptr::null_mut(),
            len: 0,
            path,
            own: true,
        };
        // Writable: `start` clears the old header's magic in place.
        file.map_existing(true)?;
        Ok(file)
    }

    /// Opens a ring file a dead run left, if no live process holds it.
    /// `Ok(None)`: missing, in use or not a ring.
    pub(crate) fn dead(path: &Path) -> io::Result<Option<RingFile>> {
        let fd = match open(path, libc::O_RDONLY, 0) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut file = RingFile {
            fd,
            ptr: std::ptr::null_mut(),
            len: 0,
            path: path.to_owned(),
            own: false,
        };
        if !try_lock(fd)? {
            return Ok(None);
        }
        file.map_existing(false)?;
        Ok(file.header().is_some().then_some(file))
    }

    /// Maps the file at its current size, to read an earlier run's content.
    fn map_existing(&mut self, writable: bool) -> io::Result<()> {
        let len = file_len(self.fd)?;
        if (HEADER_BYTES..=(1 << 40)).contains(&len) {
            self.ptr = map(self.fd, len as usize, writable, false)?;
            self.len = len as usize;
        }
        Ok(())
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The header, if the file holds a complete one.
    pub(crate) fn header(&self) -> Option<&Header> {
        if self.ptr.is_null() {
            return None;
        }
        // SAFETY: the mapping is at least a header page long and page
        // aligned; every field is plain data or atomic.
        let header = unsafe { &*(self.ptr as *const Header) };
        header.valid(self.len as u64).then_some(header)
    }

    /// The ring described by the header, if the header is complete.
    pub(crate) fn ring(&self) -> Option<Ring> {
        let header = self.header()?;
        // SAFETY: `valid` checked that header and data fit the mapping; a
        // read-only mapping is only read (`scan`), never pushed to.
        Some(unsafe {
            Ring::new(
                self.ptr.add(HEADER_BYTES as usize),
                header.capacity,
                &header.head,
                header.salt,
            )
        })
    }

    /// The exit counts and calls in flight after the ring, if the file
    /// holds them (see [`super::counts`]).
    pub(crate) fn counts(&self) -> Option<&super::counts::Counts> {
        let header = self.header()?;
        let at = HEADER_BYTES + header.capacity;
        if at + super::counts::REGION_BYTES > self.len as u64 {
            return None;
        }
        // SAFETY: inside the mapping (checked above), page aligned (the
        // capacity is a power of two of at least 4 KiB).
        unsafe { super::counts::Counts::at(self.ptr.add(at as usize)) }
    }

    /// Deletes the file (after its records were recovered). The lock goes
    /// with the descriptor when `self` is dropped.
    pub(crate) fn remove(&self) {
        if let Ok(c) = cpath(&self.path) {
            // SAFETY: a valid C string. Failing to delete only leaves a file
            // that the next start ignores (its run is not the previous run).
            unsafe { libc::unlink(c.as_ptr()) };
        }
    }

    /// Starts this run's ring of `capacity` bytes (a power of two) in the
    /// file: resizes, allocates and maps it, and writes a new header. The
    /// earlier run's records are gone afterwards.
    pub(crate) fn start(&mut self, capacity: u64, run: &RunInfo<'_>) -> io::Result<()> {
        debug_assert!(self.own && capacity.is_power_of_two());
        if let Some(header) = self.header() {
            // Unmap only after this store: a header is never half old.
            header.magic.store(0, Ordering::Release);
        }
        if !self.ptr.is_null() {
            // SAFETY: our mapping; nothing borrows from it any more (the
            // caller is done with the earlier run's records).
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
            self.ptr = std::ptr::null_mut();
        }
        let len = HEADER_BYTES + capacity + super::counts::REGION_BYTES;
        // SAFETY: plain calls on our descriptor.
        unsafe {
            if libc::ftruncate(self.fd, len as libc::off_t) != 0 {
                return Err(io::Error::last_os_error());
            }
            let err = libc::posix_fallocate(self.fd, 0, len as libc::off_t);
            if err != 0 && err != libc::EOPNOTSUPP && err != libc::EINVAL {
                return Err(io::Error::from_raw_os_error(err));
            }
        }
        self.ptr = map(self.fd, len as usize, true, true)?;
        self.len = len as usize;
        // SAFETY: the mapping is writable, page aligned and a page long at
        // least; no other thread sees it yet.
        let h = unsafe { &mut *(self.ptr as *mut Header) };
        h.version = 1;
        h.header_bytes = HEADER_BYTES as u32;
        h.capacity = capacity;
        h.pid = u64::from(run.pid);
        h.start_micros = run.start_micros;
        h.memory_limit = run.memory_limit.unwrap_or(UNKNOWN);
        h.oom_kills_at_start = run.oom_kills.unwrap_or(UNKNOWN);
        h.salt = new_salt(run.run_id);
        let id = &run.run_id.as_bytes()[..run.run_id.len().min(RUN_ID_BYTES)];
        h.run_id[..id.len()].copy_from_slice(id);
        h.run_id_len = id.len() as u64;
        h.cgroup_version = 0;
        h.cgroup_len = 0;
        if let Some((dir, version)) = run.cgroup {
            let dir = dir.as_os_str().as_bytes();
            if dir.len() <= CGROUP_BYTES {
                h.cgroup_dir[..dir.len()].copy_from_slice(dir);
                h.cgroup_len = dir.len() as u64;
                h.cgroup_version = u64::from(version);
            }
        }
        h.head.store(0, Ordering::Relaxed);
        h.last_alive_micros
            .store(run.start_micros, Ordering::Relaxed);
        h.rss_bytes.store(UNKNOWN, Ordering::Relaxed);
        h.too_large.store(0, Ordering::Relaxed);
        // SAFETY: the region after the ring is inside the new mapping,
        // page aligned, and no other thread sees it yet.
        unsafe {
            super::counts::Counts::init(self.ptr.add((HEADER_BYTES + capacity) as usize));
        }
        fence(Ordering::Release);
        h.magic.store(u64::from_ne_bytes(MAGIC), Ordering::Release);
        Ok(())
    }
}

/// A salt that differs from run to run, so that records an earlier run left
/// in the file never pass for this run's (see the ring's stamps).
fn new_salt(run_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in run_id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let now = crate::clock::Timestamp::now().as_micros() as u64;
    (h ^ now.rotate_left(32) ^ u64::from(std::process::id())) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(run_id: &str) -> RunInfo<'_> {
        RunInfo {
            run_id,
            pid: 4242,
            start_micros: 1_000_000,
            memory_limit: Some(64 << 20),
            oom_kills: Some(3),
            cgroup: Some((Path::new("/sys/fs/cgroup/memory/x"), 1)),
        }
    }

    #[test]
    fn paths_sit_beside_the_log() {
        let log = Path::new("logs/ingester.jsonl");
        assert_eq!(ring_path(log, None), Path::new("logs/ingester.ring"));
        assert_eq!(ring_path(log, Some(7)), Path::new("logs/ingester.7.ring"));
    }

    #[test]
    fn a_started_ring_reads_back_after_reopening() {
        let dir = crate::recorder::test_dir("ringfile");
        let log = dir.join("app.jsonl");
        {
            let mut file = RingFile::take(&log, 0o600).unwrap();
            assert!(file.header().is_none(), "a new file has no header");
            file.start(1 << 16, &info("run-one")).unwrap();
            let ring = file.ring().unwrap();
            ring.push(&[b"{\"a\":1}\n"]);
            ring.push(&[b"{\"a\":2}\n"]);
        }
        // The lock went with the descriptor: a later process may read it.
        let file = RingFile::dead(&dir.join("app.ring")).unwrap().unwrap();
        let h = file.header().unwrap();
        assert_eq!(h.run_id(), "run-one");
        assert_eq!(h.pid, 4242);
        assert_eq!(Header::known(h.memory_limit), Some(64 << 20));
        assert_eq!(Header::known(h.oom_kills_at_start), Some(3));
        assert_eq!(h.cgroup(), Some((Path::new("/sys/fs/cgroup/memory/x"), 1)));
        let mut got = Vec::new();
        let mut buf = vec![0; 4096];
        file.ring().unwrap().scan(&mut buf, |_, p| {
            got.push(p.to_vec());
            true
        });
        assert_eq!(got, [b"{\"a\":1}\n".to_vec(), b"{\"a\":2}\n".to_vec()]);
    }

    #[test]
    fn a_second_taker_gets_its_own_file_and_a_held_file_is_not_dead() {
        let dir = crate::recorder::test_dir("ringfile2");
        let log = dir.join("app.jsonl");
        let first = RingFile::take(&log, 0o600).unwrap();
        // flock locks belong to the open file description: a second open
        // in this process conflicts like another process would.
        let second = RingFile::take(&log, 0o600).unwrap();
        assert_eq!(first.path(), dir.join("app.ring"));
        assert_eq!(
            second.path(),
            dir.join(format!("app.{}.ring", std::process::id()))
        );
        assert!(RingFile::dead(first.path()).unwrap().is_none());
        assert!(RingFile::dead(&dir.join("missing.ring")).unwrap().is_none());
    }

    #[test]
    fn restarting_hides_the_earlier_runs_records() {
        let dir = crate::recorder::test_dir("ringfile3");
        let log = dir.join("app.jsonl");
        let mut file = RingFile::take(&log, 0o600).unwrap();
        file.start(1 << 12, &info("a")).unwrap();
        file.ring().unwrap().push(&[b"from a"]);
        file.start(1 << 13, &info("b")).unwrap();
        let mut buf = vec![0; 4096];
        assert_eq!(file.ring().unwrap().scan(&mut buf, |_, _| true), 0);
        assert_eq!(file.header().unwrap().run_id(), "b");
    }
}
