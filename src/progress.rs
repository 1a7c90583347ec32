//! Progress of a `run` on stderr, so a person sees a long run move.
//!
//! Contract: on a terminal, an indicatif bar over the bytes of the run's new files,
//! with files done, rows read and the stage being committed beside it; elsewhere (a
//! scheduler's log), one plain line every [`LINE_EVERY`] (also while a long commit
//! reads nothing), the first once the run has gone on that long, so short runs print
//! nothing; nothing at all when the command line asked for quiet or JSON
//! output, or before [`install`]. Counting is a few atomic additions per chunk of rows:
//! the pipeline calls [`rows`] and [`file_done`] without caring where they go. Stdout is
//! never touched.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain progress line is printed when stderr is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(10);

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An indicatif bar (stderr is a terminal).
    Bar,
    /// A plain line every [`LINE_EVERY`].
    Lines,
}

impl Mode {
    /// A bar on a terminal, plain lines otherwise.
    pub fn for_stderr() -> Self {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

struct Progress {
    mode: Mode,
    started: Instant,
    files_total: AtomicU64,
    files: AtomicU64,
    bytes: AtomicU64,
    rows: AtomicU64,
    /// What the current batch commits (`None` while only reading).
    stage: Mutex<Option<&'static str>>,
    /// When the last plain line was printed.
    last_line: Mutex<Instant>,
    finished: AtomicBool,
    bar: OnceLock<ProgressBar>,
}

static PROGRESS: OnceLock<Progress> = OnceLock::new();

/// Show progress in `mode` from now on (once per process; later calls are ignored).
pub fn install(mode: Mode) {
    let now = Instant::now();
    let _ = PROGRESS.set(Progress {
        mode,
        started: now,
        files_total: AtomicU64::new(0),
        files: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        rows: AtomicU64::new(0),
        stage: Mutex::new(None),
        last_line: Mutex::new(now),
        finished: AtomicBool::new(false),
        bar: OnceLock::new(),
    });
}

/// The run found `files` new files of `bytes` in all.
pub fn start(files: u64, bytes: u64) {
    let Some(p) = PROGRESS.get() else { return };
    p.files_total.store(files, Ordering::Relaxed);
    if p.mode == Mode::Bar && files > 0 {
        let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        let _ = p.bar.set(bar);
        update(p);
    } else if p.mode == Mode::Lines {
        // A line every LINE_EVERY also while nothing is read (a long MERGE).
        std::thread::spawn(|| {
            while let Some(p) = PROGRESS
                .get()
                .filter(|p| !p.finished.load(Ordering::Relaxed))
            {
                update(p);
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    }
}

/// The current batch now commits `stage` (`bronze`, `silver`, `gold`, `ledger`), or
/// nothing (`None`).
pub fn stage(stage: Option<&'static str>) {
    if let Some(p) = PROGRESS.get() {
        if let Ok(mut s) = p.stage.lock() {
            *s = stage;
        }
        update(p);
    }
}

/// `n` more rows were read and validated.
pub fn rows(n: u64) {
    if let Some(p) = PROGRESS.get() {
        p.rows.fetch_add(n, Ordering::Relaxed);
        update(p);
    }
}

/// A file of `bytes` was read to its end.
pub fn file_done(bytes: u64) {
    if let Some(p) = PROGRESS.get() {
        p.files.fetch_add(1, Ordering::Relaxed);
        p.bytes.fetch_add(bytes, Ordering::Relaxed);
        update(p);
    }
}

/// The run is over: the bar is cleared (the summary follows on stdout).
pub fn finish() {
    if let Some(p) = PROGRESS.get() {
        p.finished.store(true, Ordering::Relaxed);
        if let Some(bar) = p.bar.get() {
            bar.finish_and_clear();
        }
    }
}

fn update(p: &Progress) {
    let (files, total) = (
        p.files.load(Ordering::Relaxed),
        p.files_total.load(Ordering::Relaxed),
    );
    let (bytes, rows) = (
        p.bytes.load(Ordering::Relaxed),
        p.rows.load(Ordering::Relaxed),
    );
    let stage = match p.stage.lock().ok().and_then(|s| *s) {
        Some(stage) => format!(" (committing {stage})"),
        None => String::new(),
    };
    match p.mode {
        Mode::Bar => {
            if let Some(bar) = p.bar.get() {
                bar.set_position(bytes);
                bar.set_message(format!("files {files}/{total}, rows {rows}{stage}"));
            }
        }
        Mode::Lines => {
            let Ok(mut last) = p.last_line.try_lock() else {
                return;
            };
            if last.elapsed() < LINE_EVERY {
                return;
            }
            *last = Instant::now();
            eprintln!(
                "medallion: {:.0} s: files {files}/{total} read, {} read, {rows} rows{stage}",
                p.started.elapsed().as_secs_f64(),
                bytesize::ByteSize(bytes).display().iec_short()
            );
        }
    }
}
