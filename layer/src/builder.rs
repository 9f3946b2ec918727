//! [`init`] and [`Builder`]: where the log goes and what is installed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing_appender::rolling::Rotation;
use tracing_core::Level;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use crate::error::InitError;
use crate::layer::LastwordsLayer;
use crate::mirror::Mirror;
use crate::recorder::filter::{Either, Route};
use crate::recorder::{Recorder, RingFile};
use crate::rotation::Roller;
use crate::sink::Sink;

/// Default cap on one record's size; longer values are cut with a marker.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024;

/// Starts configuring lastwords. Call it at the start of `main`:
///
/// ```no_run
/// lastwords_layer::init()
///     .path("logs/ingester.jsonl")
///     .install()
///     .expect("lastwords");
/// ```
pub fn init() -> Builder {
    Builder {
        path: None,
        filter: None,
        mirror: true,
        mirror_level: Some(Level::ERROR),
        max_record: DEFAULT_MAX_RECORD_BYTES,
        mode: 0o640,
        rotation: Rotation::NEVER,
        max_files: None,
        max_file_bytes: None,
        recorder_bytes: crate::recorder::DEFAULT_RECORDER_BYTES,
        recorder_filter: None,
        stuck_after: None,
        termination_log: Default::default(),
        log_records: true,
    }
}

/// Configuration of the JSONL file, the stderr mirror and the hooks; made by
/// [`init`].
#[derive(Clone, Debug)]
#[must_use = "a Builder does nothing until `.install()` or `.layer()` is called"]
pub struct Builder {
    path: Option<PathBuf>,
    filter: Option<String>,
    mirror: bool,
    mirror_level: Option<Level>,
    max_record: usize,
    mode: u32,
    rotation: Rotation,
    max_files: Option<usize>,
    max_file_bytes: Option<u64>,
    recorder_bytes: usize,
    recorder_filter: Option<String>,
    stuck_after: Option<std::time::Duration>,
    termination_log: crate::termination_log::Setting,
    log_records: bool,
}

impl Builder {
    /// The JSONL file to append to. Without it: `$LASTWORDS_PATH`, else
    /// `logs/<executable name>.jsonl`. Missing directories are created.
    pub fn path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_owned());
        self
    }

    /// `EnvFilter` directives for [`install`](Builder::install) (`"info"`,
    /// `"my_service=debug,hyper=warn"`). Default: `$RUST_LOG`, else `info`.
    pub fn filter(mut self, directives: impl Into<String>) -> Self {
        self.filter = Some(directives.into());
        self
    }

    /// Whether important records are mirrored to stderr (default: yes).
    pub fn mirror(mut self, enabled: bool) -> Self {
        self.mirror = enabled;
        self
    }

    /// Ordinary events at this level or more severe are mirrored to stderr
    /// (default: `ERROR`; `None`: only lastwords' own records). Failed
    /// `fn_exit` records, panics, signals, starts and exits are always
    /// mirrored while the mirror is on.
    pub fn mirror_level(mut self, level: Option<Level>) -> Self {
        self.mirror_level = level;
        self
    }

    /// Cap on one record's whole line in bytes, `span`, `spans` and
    /// `previous_run` included (default 64 KiB, at least 1 KiB). A longer
    /// value is cut and ends with `...[truncated N bytes]`; fields that no
    /// longer fit are left out and counted in a `truncated_fields` member;
    /// spans that do not fit keep their names and the fields that fit. A
    /// record is never split across lines.
    pub fn max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record = bytes.max(1024);
        self
    }

    /// Permission bits of a newly created file (default `0o640`).
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Starts a new file every minute, hour, day or week (UTC), named as
    /// tracing-appender's rolling appender names them: with
    /// `.path("logs/app.jsonl")` and [`Rotation::HOURLY`], records go to
    /// `logs/app.2026-11-25-10.jsonl`, then `logs/app.2026-11-25-11.jsonl`.
    /// Default: [`Rotation::NEVER`], one file at the path.
    ///
    /// Every record still reaches the kernel before the logging call
    /// returns, and signal handlers keep writing without a lock: the switch
    /// replaces the open file under the same descriptor. The next start
    /// reports on the previous run from the newest of these files.
    ///
    /// ```no_run
    /// use lastwords_layer::Rotation;
    ///
    /// lastwords_layer::init()
    ///     .path("logs/app.jsonl")
    ///     .rotation(Rotation::DAILY)
    ///     .max_log_files(14)
    ///     .install()
    ///     .expect("lastwords");
    /// ```
    pub fn rotation(mut self, rotation: Rotation) -> Self {
        self.rotation = rotation;
        self
    }

    /// With [`rotation`](Builder::rotation) or
    /// [`max_file_bytes`](Builder::max_file_bytes), keeps at most this many
    /// files (the current one included) and deletes the oldest at each
    /// switch and at start. Only files named like this rotation's are
    /// deleted. Default: keep them all.
    pub fn max_log_files(mut self, files: usize) -> Self {
        self.max_files = Some(files.max(1));
        self
    }

    /// Starts a new file when the next record would take the current one
    /// past `bytes`, alone or together with [`rotation`](Builder::rotation).
    /// Files are numbered within each period and every new file gets a new
    /// name (no file is renamed), so a shipper that follows
    /// `logs/app*.jsonl` picks each one up: with `.path("logs/app.jsonl")`,
    /// `logs/app.0.jsonl`, `logs/app.1.jsonl`, …; with
    /// [`Rotation::DAILY`] as well, `logs/app.2026-11-25.0.jsonl`,
    /// `logs/app.2026-11-25.1.jsonl`, … A start appends to the
    /// highest-numbered file of the period until it is full.
    ///
    /// A record is never split across files: a record larger than `bytes`
    /// gets a file of its own. The switch is made on the ordinary record
    /// path, as time rotation's is; a death record written from a signal
    /// handler goes to the current file even when that passes the limit,
    /// and with several threads writing at the moment the limit is
    /// reached, a file can pass it by one record per thread. `0` turns size
    /// rotation off (the default).
    ///
    /// ```no_run
    /// lastwords_layer::init()
    ///     .path("logs/app.jsonl")
    ///     .max_file_bytes(64 << 20)
    ///     .max_log_files(10)
    ///     .install()
    ///     .expect("lastwords");
    /// ```
    pub fn max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = Some(bytes).filter(|&b| b > 0);
        self
    }

    /// Size of the flight recorder's ring in bytes (default 4 MiB; `0`
    /// turns the recorder off). Records that pass
    /// [`recorder_filter`](Builder::recorder_filter) are kept, as their
    /// JSONL lines, in a ring in a `MAP_SHARED` file beside the log
    /// (`logs/app.jsonl` → `logs/app.ring`), which survives SIGKILL and the
    /// OOM killer without a system call per record. After a run that ended
    /// without its final record, or with a panic or a signal, the next start
    /// copies that run's last records that the file lacks (the ones only
    /// the ring kept) into the JSONL, marked `"recovered":true`, before its
    /// `process_start`. The size is rounded down to a power of two, at
    /// least 64 KiB; the file adds a 4 KiB header.
    pub fn flight_recorder(mut self, bytes: usize) -> Self {
        self.recorder_bytes = bytes;
        self
    }

    /// `EnvFilter` directives for what the flight recorder keeps (default
    /// `"debug"`), independent of [`filter`](Builder::filter), which still
    /// decides the file. A record only the recorder keeps carries no `seq`.
    /// With [`layer`](Builder::layer) in a stack of your own, the recorder
    /// sees only what your filter lets through to the layer.
    pub fn recorder_filter(mut self, directives: impl Into<String>) -> Self {
        self.recorder_filter = Some(directives.into());
        self
    }

    /// With the flight recorder on, writes one `stuck` record (WARN,
    /// mirrored to stderr) when an `#[exit_path]` function's oldest call in
    /// flight has been inside for `after`, naming the function, how many
    /// calls are in flight and the oldest one's age
    /// (`relocate_stream: 1204 calls in flight, oldest 30 s`), and one more
    /// (`"state":"recovered"`) when it has no call that old any more. The
    /// heartbeat checks every 500 ms, so the record comes up to about a
    /// second after the threshold. Off by default.
    pub fn stuck_after(mut self, after: std::time::Duration) -> Self {
        self.stuck_after = Some(after);
        self
    }

    /// Kubernetes' termination message: each death (a panic, a non-zero
    /// exit, a terminating or fatal signal) also writes a short human
    /// summary (how, where, the error, the last breadcrumbs; at most
    /// 4 KiB) over the content of this file, which `kubectl describe pod`
    /// shows under the container's last state. A clean exit (code 0)
    /// empties it. Default: `/dev/termination-log` when it exists; `None`
    /// turns it off.
    ///
    /// ```no_run
    /// lastwords_layer::init()
    ///     .termination_log("/tmp/termination-log")
    ///     .install()
    ///     .expect("lastwords");
    /// ```
    pub fn termination_log(mut self, path: impl crate::TerminationLogPath) -> Self {
        self.termination_log = match path.into_path() {
            Some(path) => crate::termination_log::Setting::Path(path),
            None => crate::termination_log::Setting::Off,
        };
        self
    }

    /// Whether [`install`](Builder::install) sends the records of the
    /// `log` crate to the file, with their key-value pairs as fields
    /// (default: yes). They pass the same [`filter`](Builder::filter), by
    /// target and level, and go to the flight recorder when they pass
    /// [`recorder_filter`](Builder::recorder_filter) as events do. When the program has set a `log` logger before
    /// `install`, `log` records keep going to that logger.
    pub fn log_records(mut self, enabled: bool) -> Self {
        self.log_records = enabled;
        self
    }

    /// The file this builder will write to; with
    /// [`rotation`](Builder::rotation) or
    /// [`max_file_bytes`](Builder::max_file_bytes), the name the rotated
    /// files' names are derived from.
    pub fn resolved_path(&self) -> PathBuf {
        if let Some(path) = &self.path {
            return path.clone();
        }
        if let Some(path) = std::env::var_os("LASTWORDS_PATH").filter(|p| !p.is_empty()) {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "service".to_owned());
        Path::new("logs").join(format!("{exe}.jsonl"))
    }

    /// Opens the file, writes the `process_start` record (with the report on
    /// the previous run) and returns the layer, for a subscriber stack of
    /// your own. Call [`install_hooks`](crate::install_hooks) as well to
    /// record panics, exits and signals.
    ///
    /// ```no_run
    /// use tracing_subscriber::prelude::*;
    ///
    /// let lastwords = lastwords_layer::init().path("logs/app.jsonl").layer()?;
    /// tracing_subscriber::registry()
    ///     .with(lastwords.with_filter(tracing_subscriber::EnvFilter::new("info")))
    ///     .with(tracing_subscriber::fmt::layer())
    ///     .init();
    /// lastwords_layer::install_hooks()?;
    /// # Ok::<(), lastwords_layer::InitError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// When the file or its directory cannot be created or opened for
    /// appending, when something other than a regular file is at the path
    /// (a FIFO, a directory, a device: the error says which; a symbolic
    /// link is followed and its target must be a regular file), when
    /// lastwords already writes to a file in this process, or when a
    /// termination log path given explicitly cannot be opened for writing.
    /// Never blocks, whatever is at the path.
    pub fn layer(self) -> Result<LastwordsLayer, InitError> {
        let ring = self.ring_filter()?;
        // Kubernetes' termination message, opened before the log so that
        // an unwritable explicit path fails the install cleanly.
        crate::termination_log::configure(&self.termination_log)?;
        let (sink, tail) = self.open()?;
        self.start(sink, &tail, ring.is_some());
        let route = ring.map(|ring| Route { ring, file: None });
        Ok(LastwordsLayer::new(sink, self.mirror_level).with_route(route))
    }

    /// Sets up everything: opens the file, installs a global subscriber (the
    /// lastwords layer behind an `EnvFilter`) and the panic, exit and signal
    /// hooks. Call it at the start of `main`, before spawning threads.
    ///
    /// A failed `install` changes nothing that matters (at most it leaves an
    /// empty log file or directory it created): nothing is written, no hook
    /// is installed, and it can be called again, or replaced by
    /// [`layer`](Builder::layer).
    ///
    /// # Errors
    ///
    /// As [`layer`](Builder::layer); also when the filter directives do not
    /// parse, or when a global subscriber is already set.
    pub fn install(self) -> Result<Lastwords, InitError> {
        let filter = match &self.filter {
            Some(directives) => EnvFilter::try_new(directives),
            None => match std::env::var("RUST_LOG") {
                Ok(directives) if !directives.is_empty() => EnvFilter::try_new(directives),
                _ => EnvFilter::try_new("info"),
            },
        }
        .map_err(|e| InitError::new(format!("invalid filter: {e}")))?;
        let log_records = self.log_records.then(|| {
            let ring = (self.recorder_bytes != 0).then(|| self.ring_directives().to_owned());
            (self.mirror_level, filter.to_string(), ring)
        });
        // Checked before the file is opened: once `process_start` is
        // written, this run is in the log.
        if tracing_core::dispatcher::has_been_set() {
            return Err(subscriber_already_set());
        }
        let ring = self.ring_filter()?;
        let recorder = ring.is_some();
        crate::termination_log::configure(&self.termination_log)?;
        let (sink, tail) = self.open()?;
        let file = Arc::new(filter);
        let route = ring.clone().map(|ring| Route {
            ring,
            file: Some(file.clone()),
        });
        let layer = LastwordsLayer::new(sink, self.mirror_level).with_route(route);
        // Not `try_init`: with tracing-subscriber's `tracing-log` feature
        // (on by default, so often on through another crate) it would take
        // the `log` logger for tracing-log's bridge, which drops key-value
        // pairs.
        let subscriber =
            tracing_subscriber::registry().with(layer.with_filter(Either { file, ring }));
        if tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(subscriber))
            .is_err()
        {
            // Another thread set one since the check: give the file back.
            sink.unset_global();
            return Err(subscriber_already_set());
        }
        self.start(sink, &tail, recorder);
        crate::install_hooks()?;
        let lastwords = Lastwords::current().expect("the sink was set by open()");
        if let Some((mirror_level, directives, ring)) = log_records {
            crate::log_records::install(lastwords.sink, mirror_level, &directives, ring.as_deref());
        }
        Ok(lastwords)
    }

    /// Opens the file and makes it the process-wide sink, without writing
    /// anything; returns it with the end of what the file held before.
    fn open(&self) -> Result<(&'static Sink, Vec<u8>), InitError> {
        if let Some(sink) = Sink::global() {
            return Err(already_writes(sink));
        }
        let path = self.resolved_path();
        let roll = Roller::new(
            &path,
            &self.rotation,
            self.max_file_bytes,
            self.max_files,
            self.mode,
        );
        let mirror = Mirror::new(self.mirror);
        let (sink, tail) = Sink::open_rolling(&path, self.mode, self.max_record, mirror, roll)
            .map_err(|(file, e)| {
                InitError::io(format!("cannot open {} for appending", file.display()), e)
            })?;
        let sink = Sink::set_global(sink)
            .ok_or_else(|| already_writes(Sink::global().expect("set by another thread")))?;
        Ok((sink, tail))
    }

    /// What the flight recorder keeps; `None` when it is off.
    fn ring_filter(&self) -> Result<Option<Arc<EnvFilter>>, InitError> {
        if self.recorder_bytes == 0 {
            return Ok(None);
        }
        EnvFilter::try_new(self.ring_directives())
            .map(|filter| Some(Arc::new(filter)))
            .map_err(|e| InitError::new(format!("invalid recorder filter: {e}")))
    }

    /// The recorder filter's directives.
    fn ring_directives(&self) -> &str {
        self.recorder_filter.as_deref().unwrap_or("debug")
    }

    /// After the point of no return: readies stderr for the mirror, makes
    /// a `fork()`ed child start its own run, writes `process_start` (with
    /// what the previous run's ring holds) and starts this run's flight
    /// recorder when `recorder` is on.
    fn start(&self, sink: &'static Sink, tail: &[u8], recorder: bool) {
        if self.mirror {
            crate::mirror::prepare_stderr();
        }
        crate::fork::install();
        let path = self.resolved_path();
        // Taken before the report on the previous run: this file may hold
        // that run's ring, which must be read before this run starts its own.
        let ring_file = match recorder {
            true => RingFile::take(&path, self.mode).map_err(recorder_off).ok(),
            false => None,
        };
        crate::previous_run::write_process_start(sink, tail, &|run_id, pid, ended| {
            crate::recorder::previous_run(sink, ring_file.as_ref(), &path, run_id, pid, ended)
        });
        if let Some(file) = ring_file {
            crate::recorder::remove_stale(&path);
            // Ignored: the recorder says on stderr why it is off.
            crate::recorder::set_stuck_after(self.stuck_after);
            let _ = Recorder::start(file, self.recorder_bytes, sink.run_id(), sink.pid())
                .map_err(recorder_off);
        }
    }
}

fn already_writes(sink: &Sink) -> InitError {
    InitError::new(format!(
        "lastwords already writes to {}; install it once per process",
        sink.path().display()
    ))
}

fn subscriber_already_set() -> InitError {
    InitError::new(
        "cannot set the global subscriber: one is already set; add lastwords to it with \
         lastwords::init().layer() and lastwords::install_hooks()"
            .into(),
    )
}

/// Says on stderr why the flight recorder is off; the log itself works on.
fn recorder_off(e: io::Error) {
    use std::io::Write;
    // Ignored: with stderr gone there is nobody left to tell.
    let _ = writeln!(io::stderr(), "[lastwords] flight recorder off: {e}");
}

/// A handle on the installed lastwords: where it writes and how it fared.
#[derive(Clone, Copy, Debug)]
pub struct Lastwords {
    sink: &'static Sink,
}

impl Lastwords {
    /// The installed lastwords, if [`Builder::install`] or
    /// [`Builder::layer`] succeeded in this process.
    pub fn current() -> Option<Lastwords> {
        Sink::global().map(|sink| Lastwords { sink })
    }

    /// The JSONL file written now (with rotation by time or size, the
    /// current one).
    pub fn path(&self) -> PathBuf {
        self.sink.path()
    }

    /// This run's `run_id`.
    pub fn run_id(&self) -> &str {
        self.sink.run_id()
    }

    /// The flight recorder's ring file, while the recorder runs (see
    /// [`Builder::flight_recorder`]).
    pub fn flight_recorder_path(&self) -> Option<PathBuf> {
        Recorder::global().map(|r| r.path().to_owned())
    }

    /// Records that could not be written so far (full disk, I/O errors).
    pub fn dropped_records(&self) -> u64 {
        self.sink.dropped()
    }
}
