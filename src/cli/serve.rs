//! `cinematch serve`: the HTTP API and the dashboard, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use cinematch::server::{self, ServerConfig};
use cinematch::store;

use super::Ctx;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Seconds between checks for a new champion.
    #[arg(long, default_value_t = 10)]
    reload_secs: u64,
    /// Seconds a request may take before it is answered 408.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,
    /// Database connections for non-hot-path requests.
    #[arg(long, default_value_t = 4)]
    pool: usize,
    /// Seconds requests in flight get to finish after SIGTERM or Ctrl-C.
    #[arg(long, default_value_t = 10)]
    grace_secs: u64,
}

impl ServeArgs {
    /// The server's configuration; the write token comes from
    /// `CINEMATCH_API_TOKEN`, never from the command line.
    pub fn config(&self, db_url: String) -> ServerConfig {
        let mut config = ServerConfig::new(self.addr, db_url);
        config.api_token = std::env::var("CINEMATCH_API_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        config.reload_interval = Duration::from_secs(self.reload_secs.max(1));
        config.request_timeout = Duration::from_secs(self.timeout_secs.max(1));
        config.max_body_bytes = self.max_body;
        config.pool_size = self.pool.max(1);
        config.shutdown_grace = Duration::from_secs(self.grace_secs);
        config
    }
}

pub fn run(args: ServeArgs, ctx: &Ctx) -> Result<()> {
    let (url, from) = ctx.db_url();
    tracing::info!(addr = %args.addr, db = %store::redact(&url), from, "starting the server");
    let mut config = args.config(url);
    config.objective = ctx.objective;
    server::run(config)?;
    Ok(())
}
