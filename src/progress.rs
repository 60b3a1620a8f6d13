//! Progress for long work: a bar on a terminal, plain log lines otherwise.
//!
//! Library code reports through [`Progress`] so that tests and the server can
//! stay silent while the CLI shows a bar.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

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
    /// The stage's latest status line ([`Progress::message`]), repeated in
    /// its one INFO line when it finishes.
    last_message: Option<String>,
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
                last_message: None,
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
        s.last_message = None;
        if self.tty {
            let bar = match total {
                Some(t) => ProgressBar::new(t).with_style(
                    ProgressStyle::with_template(
                        "{prefix:>12} [{bar:30}] {human_pos}/{human_len} ({rate}, eta {eta}) {msg}",
                    )
                    .expect("static template")
                    // Whole units per second: "8/s", not "8.1062/s".
                    .with_key("rate", |st: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{}/s", st.per_sec().round() as u64);
                    })
                    .progress_chars("=> "),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{spinner} {prefix} {msg}")
                        .expect("static template"),
                ),
            };
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            s.bar = Some(bar);
        } else {
            tracing::debug!(stage = name, total, "started");
        }
    }

    fn advance(&self, n: u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.done += n;
        if let Some(bar) = &s.bar {
            bar.inc(n);
        } else if s.last_log.elapsed() >= LOG_EVERY {
            s.last_log = Instant::now();
            tracing::debug!(stage = %s.name, done = s.done, total = s.total, "progress");
        }
    }

    /// Status lines (an epoch, a trial) are DEBUG in logs and the bar's
    /// message on a terminal; the stage's last one is in its INFO line.
    fn message(&self, msg: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &s.bar {
            Some(bar) => bar.set_message(msg.to_string()),
            None => tracing::debug!("{msg}"),
        }
        s.last_message = Some(msg.to_string());
    }

    /// One INFO line per stage (in logs, when it finishes): its name, how
    /// much was done, how long it took and its last status line.
    fn finish(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let bar = s.bar.take();
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        if s.name.is_empty() {
            return;
        }
        let secs = format!("{:.2}", s.started.elapsed().as_secs_f64());
        let last = s.last_message.take();
        if bar.is_none() && !self.tty {
            let last = last.map(|m| format!(": {m}")).unwrap_or_default();
            tracing::info!(stage = %s.name, done = s.done, secs = %secs, "finished{last}");
        } else if let (Some(_), Some(last)) = (bar, last) {
            // The bar is gone: keep the stage's outcome on the terminal.
            tracing::info!("{} finished in {secs}s: {last}", s.name);
        }
        s.name.clear();
    }
}
