//! The one place where SIGINT and SIGTERM become a stop request, for the
//! server (`serve` drains its requests) and the long-running commands
//! (`scheduler` finishes its current step).
//!
//! Both signals mean the same: a terminal sends SIGINT (Ctrl-C), a service
//! manager, `docker stop` and Kubernetes send SIGTERM. Handlers are installed
//! when a [`Shutdown`] is created, not when it is first awaited, so a signal
//! that arrives while the process is still starting is a stop request too,
//! never the default action (death by signal; and as PID 1 in a container,
//! where the kernel drops signals that have no handler, nothing at all).
//!
//! A second signal while the first stop is under way is reported separately
//! ([`Shutdown::repeated`]), so a caller can give up waiting: pressing
//! Ctrl-C twice means "now".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// Which signal asked to stop, for the log line that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        })
    }
}

/// Signals received so far: how many, and the latest.
type Received = (u32, Option<Signal>);

/// A handle on the process's stop requests; clones share them.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Received>,
}

impl Shutdown {
    /// Installs the SIGINT and SIGTERM handlers now. Must be called inside
    /// a tokio runtime (it spawns the task that counts the signals).
    pub fn install() -> std::io::Result<Shutdown> {
        let (tx, rx) = watch::channel((0, None));
        let mut signals = Handlers::install()?;
        tokio::spawn(async move {
            loop {
                let signal = signals.recv().await;
                tx.send_modify(|(n, last)| {
                    *n += 1;
                    *last = Some(signal);
                });
            }
        });
        Ok(Shutdown { rx })
    }

    /// Resolves on the first signal (at once if it already came).
    pub async fn requested(&self) -> Signal {
        self.nth(1).await
    }

    /// Resolves on the second signal: the caller should stop waiting.
    pub async fn repeated(&self) -> Signal {
        self.nth(2).await
    }

    async fn nth(&self, n: u32) -> Signal {
        let mut rx = self.rx.clone();
        let signal = match rx.wait_for(|(count, _)| *count >= n).await {
            Ok(r) => r.1,
            // The counting task ended: only when the runtime shuts down.
            Err(_) => None,
        };
        match signal {
            Some(s) => s,
            None => std::future::pending().await,
        }
    }
}

/// A flag that turns true on the first SIGINT or SIGTERM, for synchronous
/// loops that check it between steps. The handlers are installed before
/// this returns; a background thread waits for the signal.
pub fn stop_flag() -> std::io::Result<Arc<AtomicBool>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shutdown = {
        let _guard = runtime.enter();
        Shutdown::install()?
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("cinematch-signals".into())
        .spawn(move || {
            runtime.block_on(async {
                let signal = shutdown.requested().await;
                tracing::info!(%signal, "stop requested; finishing the current step");
                flag.store(true, Ordering::SeqCst);
                // Keep the handlers: further signals are not fatal either.
                std::future::pending::<()>().await
            })
        })?;
    Ok(stop)
}

/// The OS-level signal streams.
struct Handlers {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Handlers {
    fn install() -> std::io::Result<Handlers> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Handlers {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Handlers {})
    }

    async fn recv(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                Some(()) = self.int.recv() => Signal::Interrupt,
                Some(()) = self.term.recv() => Signal::Terminate,
                else => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => Signal::Interrupt,
                Err(_) => std::future::pending().await,
            }
        }
    }
}
