//! Progress for long work: a bar on a terminal, plain log lines otherwise.
//!
//! Library code reports through [`Progress`] so that tests and the server can
//! stay silent while the CLI shows a bar.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Receives progress from long-running library work.
pub trait Progress: Send + Sync {
    /// A new stage begins; `total` is the number of units, if known.
    fn stage(&self, name: &str, total: Option<u64>);
    /// `n` more units of the current stage are done.
    fn advance(&self, n: u64);
    /// A free-form status line (epoch, loss, ...).
    fn message(&self, msg: &str);
    /// The current stage is finished.
    fn finish(&self);
}

/// Discards all progress: for tests and background jobs.
pub struct Silent;

impl Progress for Silent {
    fn stage(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn message(&self, _: &str) {}
    fn finish(&self) {}
}

/// Shows a progress bar on a terminal (stderr), or writes a log line every few
/// seconds when stderr is not a terminal (CI logs, pipes).
pub struct Console {
    tty: bool,
    state: Mutex<ConsoleState>,
}

struct ConsoleState {
    bar: Option<ProgressBar>,
    name: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_log: Instant,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    pub fn new() -> Self {
        Console {
            tty: std::io::stderr().is_terminal(),
            state: Mutex::new(ConsoleState {
                bar: None,
                name: String::new(),
                total: None,
                done: 0,
                started: Instant::now(),
                last_log: Instant::now(),
            }),
        }
    }
}

const LOG_EVERY: Duration = Duration::from_secs(5);

impl Progress for Console {
    fn stage(&self, name: &str, total: Option<u64>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bar) = s.bar.take() {
            bar.finish_and_clear();
        }
        s.name = name.to_string();
        s.total = total;
        s.done = 0;
        s.started = Instant::now();
        s.last_log = Instant::now();
        if self.tty {
            let bar = match total {
                Some(t) => ProgressBar::new(t).with_style(
                    ProgressStyle::with_template(
                        "{msg:>12} [{bar:30}] {human_pos}/{human_len} ({per_sec}, eta {eta})",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                ),
                None => ProgressBar::new_spinner(),
            };
            bar.set_message(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            s.bar = Some(bar);
        } else {
            tracing::info!(stage = name, total, "started");
        }
    }

    fn advance(&self, n: u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.done += n;
        if let Some(bar) = &s.bar {
            bar.inc(n);
        } else if s.last_log.elapsed() >= LOG_EVERY {
            s.last_log = Instant::now();
            tracing::info!(stage = %s.name, done = s.done, total = s.total, "progress");
        }
    }

    fn message(&self, msg: &str) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &s.bar {
            Some(bar) => bar.println(msg),
            None => tracing::info!("{msg}"),
        }
    }

    fn finish(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bar) = s.bar.take() {
            bar.finish_and_clear();
        }
        if !self.tty && !s.name.is_empty() {
            tracing::info!(stage = %s.name, done = s.done, secs = s.started.elapsed().as_secs_f64(), "finished");
        }
    }
}
