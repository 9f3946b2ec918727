//! Raw descriptor I/O: opening the log file, writing whole records, and
//! writing without ever waiting.
//!
//! The file sink, the stderr mirror and rotation all go through here, so that
//! none of them imports another for its system calls.
//!
//! Everything except [`open_append`] is async-signal-safe: plain system
//! calls on caller-provided buffers, no allocation, no locks.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The calling thread's `errno`. Async-signal-safe.
pub(crate) fn errno() -> i32 {
    // SAFETY: __errno_location always returns this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Writes all of `parts` with as few `writev(2)` calls as the kernel allows
/// (one, unless it writes short), retrying on `EINTR`. On failure returns the
/// errno and whether part of the bytes was written. At most 8 non-empty
/// parts are written. Async-signal-safe.
///
/// Meant for descriptors that are not the log file (the log file uses
/// [`write_record`], which never finishes a record after a short write).
pub(crate) fn write_all_vectored(fd: libc::c_int, parts: &[&[u8]]) -> Result<(), (i32, bool)> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 8];
    let mut n = 0;
    for part in parts.iter().filter(|p| !p.is_empty()).take(iov.len()) {
        iov[n] = libc::iovec {
            iov_base: part.as_ptr() as *mut libc::c_void,
            iov_len: part.len(),
        };
        n += 1;
    }
    let mut first = 0;
    let mut wrote_any = false;
    while first < n {
        let written = writev(fd, &iov[first..n]);
        if written < 0 {
            let errno = errno();
            if errno == libc::EINTR {
                continue;
            }
            return Err((errno, wrote_any));
        }
        if written == 0 {
            return Err((libc::EIO, wrote_any));
        }
        wrote_any = true;
        let mut left = written as usize;
        while first < n && left >= iov[first].iov_len {
            left -= iov[first].iov_len;
            first += 1;
        }
        if first < n && left > 0 {
            // SAFETY: `left` is less than this iovec's length.
            iov[first].iov_base = unsafe { (iov[first].iov_base as *mut u8).add(left) } as *mut _;
            iov[first].iov_len -= left;
        }
    }
    Ok(())
}

/// [`write_all_vectored`] of one buffer. Async-signal-safe.
pub(crate) fn write_all(fd: libc::c_int, bytes: &[u8]) -> Result<(), (i32, bool)> {
    write_all_vectored(fd, &[bytes])
}

/// How a record written with [`write_record`] fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// The whole record is in the file.
    All,
    /// Nothing reached the file (the errno says why).
    Nothing(i32),
    /// The kernel took only the beginning of the record (a file-size limit,
    /// a disk that filled up mid-record); the line was ended with `\n` if
    /// `closed`, else the next record must begin with one.
    Cut { errno: i32, closed: bool },
}

/// Writes one record (the concatenation of `parts`, ending with `\n`) to the
/// `O_APPEND` log file with one `writev(2)`, retried only on `EINTR` before
/// anything was written. Async-signal-safe.
///
/// # Why a short write is not finished
///
/// `O_APPEND` places each write at the end of the file atomically, but two
/// writes are two placements: if the kernel takes only the first part of a
/// record and we then write the rest, another thread's (or process's)
/// record can land in between, giving a line that mixes two records and
/// parses as neither. So after a short write the rest of the record is
/// given up, and the cut line is closed at once with a lone `\n` (one byte:
/// never itself cut). The cut record is lost, but every line in the file
/// holds bytes of one record only. The reader drops the cut line (it does
/// not parse).
///
/// One window remains: a record that another thread writes *successfully*
/// between the short write and the `\n`. A file-size limit never allows it
/// (once the file is at the limit every append fails), and a full disk only
/// if space was freed in those microseconds.
pub(crate) fn write_record(fd: libc::c_int, parts: &[&[u8]]) -> Written {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 8];
    let mut n = 0;
    let mut total = 0;
    for part in parts.iter().filter(|p| !p.is_empty()).take(iov.len()) {
        iov[n] = libc::iovec {
            iov_base: part.as_ptr() as *mut libc::c_void,
            iov_len: part.len(),
        };
        total += part.len();
        n += 1;
    }
    if n == 0 {
        return Written::All;
    }
    let written = loop {
        let written = writev(fd, &iov[..n]);
        if written < 0 && errno() == libc::EINTR {
            continue;
        }
        break written;
    };
    if written < 0 {
        return Written::Nothing(errno());
    }
    if written as usize == total {
        return Written::All;
    }
    if written == 0 {
        return Written::Nothing(libc::EIO);
    }
    end_cut_line(fd)
}

/// After a short write of a record to the log file: ends the cut line with
/// `\n` (see [`write_record`]). Async-signal-safe.
pub(crate) fn end_cut_line(fd: libc::c_int) -> Written {
    // Whatever stopped the write (EFBIG, ENOSPC, EIO) is what this call
    // reports. If the newline goes through, the cause is unknown (errno 0).
    match write_all(fd, b"\n") {
        Ok(()) => Written::Cut {
            errno: 0,
            closed: true,
        },
        Err((errno, _)) => Written::Cut {
            errno,
            closed: false,
        },
    }
}

/// One `write(2)` (for a single piece: the kernel takes it faster than a
/// one-element `writev(2)`) or `writev(2)`. Async-signal-safe.
#[inline]
fn writev(fd: libc::c_int, iov: &[libc::iovec]) -> isize {
    if iov.len() == 1 {
        // SAFETY: iov[0] describes a live, readable slice.
        unsafe { libc::write(fd, iov[0].iov_base, iov[0].iov_len) }
    } else {
        // SAFETY: every iovec describes a live, readable slice.
        unsafe { libc::writev(fd, iov.as_ptr(), iov.len() as libc::c_int) }
    }
}

/// How [`try_write`] fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Try {
    /// All the bytes were taken.
    Written,
    /// Writing now would have waited (a pipe nobody reads, a socket with a
    /// full buffer, a terminal stopped with Ctrl-S): nothing was written.
    WouldBlock,
    /// Part of the bytes were taken before the descriptor filled up.
    Partial,
    /// The write failed (closed or broken descriptor).
    Failed,
}

/// How to write to a descriptor without waiting, decided by [`way_for`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Way {
    /// `send(2)` with `MSG_DONTWAIT | MSG_NOSIGNAL`: a socket.
    Send,
    /// `poll(2)` with a zero timeout, then `write(2)`: a pipe, FIFO or
    /// terminal that has no non-blocking descriptor of its own. Does not
    /// wait when nothing else writes between the two calls.
    PollThenWrite,
    /// A plain `write(2)`: a regular file or a device that never waits, or
    /// a descriptor opened with `O_NONBLOCK`.
    Write,
}

/// `fstat(2)` of `fd`: its file type bits, device and inode, or `None` if
/// it is not open. Async-signal-safe.
pub(crate) fn identity(fd: libc::c_int) -> Option<(libc::mode_t, u64, u64)> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid and writable.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some((st.st_mode & libc::S_IFMT, st.st_dev, st.st_ino))
}

/// How a write to a descriptor of file type `mode` (the `S_IFMT` bits) can
/// be made not to wait, when the descriptor itself may block.
/// Async-signal-safe.
pub(crate) fn way_for(mode: libc::mode_t) -> Way {
    match mode {
        libc::S_IFSOCK => Way::Send,
        libc::S_IFIFO | libc::S_IFCHR => Way::PollThenWrite,
        _ => Way::Write,
    }
}

/// Writes `bytes` to `fd` without ever waiting. Async-signal-safe.
///
/// Keep `bytes` at most [`PIPE_BUF`] long: a pipe then takes all of them or
/// none, and they never interleave with other writers' bytes.
pub(crate) fn try_write(fd: libc::c_int, way: Way, bytes: &[u8]) -> Try {
    if way == Way::PollThenWrite {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
        if ready <= 0 || pfd.revents & libc::POLLOUT == 0 {
            // Not writable now, or an error the write would report.
            return if ready > 0 && pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
                Try::Failed
            } else {
                Try::WouldBlock
            };
        }
    }
    let mut done = 0;
    while done < bytes.len() {
        let rest = &bytes[done..];
        let n = match way {
            // SAFETY: `rest` is a live, readable slice.
            Way::Send => unsafe {
                libc::send(
                    fd,
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            },
            // SAFETY: as above.
            _ => unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) },
        };
        if n < 0 {
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN if done == 0 => return Try::WouldBlock,
                libc::EAGAIN => return Try::Partial,
                _ if done == 0 => return Try::Failed,
                _ => return Try::Partial,
            }
        }
        if n == 0 {
            return if done == 0 { Try::Failed } else { Try::Partial };
        }
        done += n as usize;
        if way == Way::PollThenWrite && done < bytes.len() {
            // A second write could wait: the descriptor may block.
            return Try::Partial;
        }
    }
    Try::Written
}

/// Bytes a pipe takes whole or not at all (POSIX `PIPE_BUF`, 4096 on Linux).
pub(crate) const PIPE_BUF: usize = 4096;

/// Opens `path` for appending, creating it (with `mode`) if missing, and
/// returns the descriptor (close-on-exec).
///
/// Only a regular file is accepted: anything else at the path (a FIFO,
/// which would block the open and every write; a directory; a device) is an
/// error of kind `InvalidInput` that says what it is. A symbolic link is
/// followed, and its target must be a regular file. Never waits: the file
/// is opened with `O_NONBLOCK` (then cleared), so that a FIFO put at the
/// path after the check does not block the open either.
///
/// Missing directories are not created here.
pub(crate) fn open_append(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    if let Ok(meta) = std::fs::metadata(path) {
        check_regular(meta.file_type())?;
    }
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `c_path` is a valid NUL-terminated string.
    let fd = unsafe {
        libc::open(
            c_path.as_ptr(),
            libc::O_WRONLY
                | libc::O_APPEND
                | libc::O_CREAT
                | libc::O_CLOEXEC
                | libc::O_NOCTTY
                | libc::O_NONBLOCK,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        let error = io::Error::last_os_error();
        // A FIFO without a reader (ENXIO) or a directory (EISDIR) that
        // appeared after the check: say what it is.
        if let Ok(meta) = std::fs::metadata(path) {
            check_regular(meta.file_type())?;
        }
        return Err(error);
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let meta = std::fs::File::from(owned.try_clone()?).metadata()?;
    check_regular(meta.file_type())?;
    // Back to blocking writes (O_NONBLOCK means nothing for a regular
    // file, but the descriptor is handed on to rotation and `dup3`).
    // SAFETY: plain fcntl calls on an open descriptor.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(owned)
}

/// An `InvalidInput` error unless `kind` is a regular file.
fn check_regular(kind: std::fs::FileType) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("it is {what}; lastwords writes only to regular files"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both were just opened and are owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    fn a_full_blocking_pipe_is_never_waited_for() {
        let (_read, write) = pipe();
        let way = way_for(identity(write.as_raw_fd()).unwrap().0);
        assert_eq!(way, Way::PollThenWrite);
        let line = [b'x'; 100];
        let mut written = 0;
        loop {
            match try_write(write.as_raw_fd(), way, &line) {
                Try::Written => written += 1,
                Try::WouldBlock => break,
                other => panic!("{other:?}"),
            }
            assert!(written < 1_000_000, "the pipe never filled");
        }
        assert!(written > 0);
        assert_eq!(try_write(write.as_raw_fd(), way, b"y\n"), Try::WouldBlock);
    }

    #[test]
    fn only_regular_files_are_opened() {
        let dir = std::env::temp_dir().join(format!("lastwords-fd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir); // a leftover from an earlier run
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for (path, what) in [
            (fifo.as_path(), "a FIFO"),
            (dir.as_path(), "a directory"),
            (Path::new("/dev/null"), "a character device"),
        ] {
            let err = open_append(path, 0o600).expect_err(what);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains(what), "{err}");
        }
        let file = dir.join("a.jsonl");
        let link = dir.join("link.jsonl");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let fd = open_append(&link, 0o600).expect("a link to a new regular file");
        write_all(fd.as_raw_fd(), b"{}\n").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"{}\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
