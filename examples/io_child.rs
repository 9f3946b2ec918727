//! The child process of the I/O tests (`tests/io.rs`): a blocked stderr, a
//! file-size limit hit mid-record, `install()` failing and retried, paths
//! that are not regular files, and `fork()`. Not meant to be run by hand,
//! but you can:
//!
//! ```text
//! LASTWORDS_PATH=/tmp/c.jsonl cargo run --example io_child -- fork
//! ```
//!
//! Environment: `LASTWORDS_PATH` (the file), `IO_NO_LASTWORDS=1` (do not
//! install lastwords: the baseline the tests compare the ending with).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<ExitCode> {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    match scenario.as_str() {
        "install_over_subscriber" => return install_over_subscriber(),
        "install_retry" => return install_retry(),
        "install_only" => return install_only(),
        _ => {}
    }
    let lastwords = std::env::var_os("IO_NO_LASTWORDS").is_none();
    if lastwords {
        lastwords::init().install().expect("lastwords");
    }
    match scenario.as_str() {
        "ok" => {
            // SAFETY: F_GETFL on stderr.
            let flags = unsafe { libc::fcntl(2, libc::F_GETFL) };
            say(&format!(
                "fd2_nonblocking={}",
                flags & libc::O_NONBLOCK != 0
            ));
            Ok(ExitCode::SUCCESS)
        }
        // The errors go out while stderr still takes them; then it is
        // full, and the death's own line is the one that cannot be written.
        "blocked_term" => {
            log_errors(20);
            fill_stderr();
            say("ready");
            std::thread::sleep(Duration::from_secs(30));
            Ok(ExitCode::from(9))
        }
        "blocked_segv" => {
            log_errors(20);
            fill_stderr();
            // SAFETY: none; this writes through a null pointer on purpose.
            unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u8>(), 1) };
            Ok(ExitCode::SUCCESS)
        }
        // Ordinary log calls with stderr full, then the exit.
        "blocked_exit0" => {
            fill_stderr();
            log_errors(20);
            say("logged");
            std::process::exit(0)
        }
        "fsize" => file_size_limit(lastwords),
        "fork" => fork(),
        other => Err(format!("unknown scenario {other}").into()),
    }
}

/// A line on stdout, flushed: the parent reads it.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // Ignored: the parent notices a missing line and says so.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn log_errors(n: u64) {
    for i in 0..n {
        tracing::error!(n = i, "error {i}");
    }
}

/// Fills stderr (a pipe, FIFO or socket nobody reads) until it takes no
/// more, through a descriptor of our own, so that fd 2 stays blocking: the
/// next blocking write to stderr would wait forever.
fn fill_stderr() {
    let chunk = [b'.'; 512];
    // SAFETY: plain system calls on descriptors owned here.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        assert_eq!(libc::fstat(2, &mut st), 0);
        if st.st_mode & libc::S_IFMT == libc::S_IFSOCK {
            while libc::send(2, chunk.as_ptr().cast(), chunk.len(), libc::MSG_DONTWAIT) > 0 {}
            return;
        }
        let fd = libc::open(
            c"/proc/self/fd/2".as_ptr(),
            libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        );
        assert!(fd >= 0, "cannot reopen stderr");
        while libc::write(fd, chunk.as_ptr().cast(), chunk.len()) > 0 {}
        // One byte at a time: the pipe is then full to the last byte.
        while libc::write(fd, chunk.as_ptr().cast(), 1) > 0 {}
        libc::close(fd);
    }
}

/// Logs records from four threads while the file-size limit is hit in the
/// middle of a record, then lifts the limit and logs more. SIGXFSZ is
/// ignored, as a service that handles a full disk does.
fn file_size_limit(lastwords: bool) -> Result<ExitCode> {
    let path = std::env::var_os("LASTWORDS_PATH").ok_or("LASTWORDS_PATH")?;
    // SAFETY: setting a disposition to SIG_IGN.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    // Records are about 250 bytes: the limit falls inside the second one
    // written after this point.
    set_fsize_limit(size + 300);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..200u64 {
                    tracing::info!(
                        t,
                        i,
                        pad = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                        "limited"
                    );
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "a logging thread panicked")?;
    }
    set_fsize_limit(libc::RLIM_INFINITY);
    for i in 0..10u64 {
        tracing::info!(i, "after the limit");
    }
    if lastwords {
        let dropped = lastwords::Lastwords::current().map_or(0, |l| l.dropped_records());
        say(&format!("dropped_records={dropped}"));
    }
    Ok(ExitCode::SUCCESS)
}

fn set_fsize_limit(bytes: libc::rlim_t) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = bytes.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

/// A global subscriber is set before `install()`: it fails, the log file
/// is not written, and `layer()` (next to the existing subscriber's stack)
/// then works.
fn install_over_subscriber() -> Result<ExitCode> {
    use tracing_subscriber::layer::SubscriberExt;
    let path =
        std::path::PathBuf::from(std::env::var_os("LASTWORDS_PATH").ok_or("LASTWORDS_PATH")?);
    tracing::subscriber::set_global_default(tracing_subscriber::registry())?;
    let err = lastwords::init()
        .install()
        .expect_err("a global subscriber is already set");
    say(&format!("install: {err}"));
    say(&format!("log written: {}", path.exists()));
    let layer = lastwords::init().layer()?;
    lastwords::install_hooks()?;
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!("after the retry");
    });
    Ok(ExitCode::SUCCESS)
}

/// `install()` fails on a path that is a directory, then works on a file.
fn install_retry() -> Result<ExitCode> {
    let path = std::env::var_os("LASTWORDS_PATH").ok_or("LASTWORDS_PATH")?;
    let dir = std::path::Path::new(&path).with_extension("d");
    std::fs::create_dir_all(&dir)?;
    let err = lastwords::init()
        .path(&dir)
        .install()
        .expect_err("a directory is not a log file");
    say(&format!("install: {err}"));
    lastwords::init().path(&path).install()?;
    tracing::info!("after the retry");
    Ok(ExitCode::SUCCESS)
}

/// `install()` alone; the error, if any, on stdout and exit code 2.
fn install_only() -> Result<ExitCode> {
    match lastwords::init().install() {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            say(&format!("install: {e}"));
            Ok(ExitCode::from(2))
        }
    }
}

/// Forks while another thread logs: the child logs and exits with 3, the
/// parent waits for it, logs, and exits with 0. Prints the child's pid.
fn fork() -> Result<ExitCode> {
    let busy = std::thread::spawn(|| {
        for i in 0..2_000u64 {
            tracing::info!(i, "parent thread");
        }
    });
    tracing::info!("parent before fork");
    // A child that `exec`s at once (std forks for `pre_exec`) logs nothing
    // and leaves no run in the log.
    // SAFETY: the closure does nothing.
    let status = unsafe {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("true")
            .pre_exec(|| Ok(()))
            .status()?
    };
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(2));
    // SAFETY: the child only logs and exits; glibc's malloc is fork-safe.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err("fork failed".into());
    }
    if pid == 0 {
        for i in 0..3u64 {
            tracing::info!(i, "in the child");
        }
        tracing::error!("the child gives up");
        std::process::exit(3);
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    busy.join().map_err(|_| "the logging thread panicked")?;
    say(&format!("child={pid} status={}", libc::WEXITSTATUS(status)));
    // A second child whose first record is written by a signal handler.
    // SAFETY: as above; the child only raises SIGTERM.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err("fork failed".into());
    }
    if pid == 0 {
        // SAFETY: raise(3) in the child.
        unsafe { libc::raise(libc::SIGTERM) };
        std::process::exit(9); // not reached: SIGTERM's default kills
    }
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let signal = if libc::WIFSIGNALED(status) {
        libc::WTERMSIG(status)
    } else {
        0
    };
    say(&format!("child2={pid} signal={signal}"));
    tracing::info!("parent after fork");
    Ok(ExitCode::SUCCESS)
}
