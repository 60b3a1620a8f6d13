//! `cinematch serve`: the HTTP API and the dashboard, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
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
    /// Database connections for non-hot-path requests (the probes and the
    /// reloader have one each besides).
    #[arg(long, default_value_t = 4)]
    pool: usize,
    /// Requests served at once (probes aside); more are answered 503 at once.
    #[arg(long, default_value_t = 256)]
    max_concurrency: usize,
    /// Seconds a client may take to send a request's headers (and the
    /// longest an idle connection stays open).
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds the dashboard's and /metrics' database statistics are reused.
    #[arg(long, default_value_t = 10)]
    stats_secs: u64,
    /// A file holding the read token that a user's ratings and
    /// recommendations then require (else `CINEMATCH_READ_TOKEN`; without
    /// either they are public). A file, not the token itself, so the secret
    /// never shows in the process list.
    #[arg(long, value_name = "FILE")]
    read_token_file: Option<PathBuf>,
    /// Seconds requests in flight get to finish after SIGTERM or Ctrl-C.
    #[arg(long, default_value_t = 10)]
    grace_secs: u64,
    /// After each model or data reload, compute the top this many movies
    /// of every returning user in the background, so their requests are
    /// answered from memory (0: each list on its first request; at most 100).
    #[arg(long, default_value_t = 10, value_name = "K")]
    precompute_k: usize,
    /// Movies of cached lists kept in memory at most, about 40 bytes each
    /// (0: compute every list on every request).
    #[arg(long, default_value_t = cinematch::recommend::DEFAULT_LIST_CACHE_ITEMS, value_name = "N")]
    list_cache_items: usize,
}

impl ServeArgs {
    /// The server's configuration; the write token comes from
    /// `CINEMATCH_API_TOKEN`, the read token from `--read-token-file` or
    /// `CINEMATCH_READ_TOKEN`, never from the command line itself.
    pub fn config(&self, db_url: String) -> Result<ServerConfig> {
        let mut config = ServerConfig::new(self.addr, db_url);
        config.api_token = std::env::var("CINEMATCH_API_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        config.read_token = match &self.read_token_file {
            Some(path) => {
                let token = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --read-token-file {}", path.display()))?
                    .trim()
                    .to_string();
                anyhow::ensure!(
                    !token.is_empty(),
                    "--read-token-file {} is empty",
                    path.display()
                );
                Some(token)
            }
            None => std::env::var("CINEMATCH_READ_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty()),
        };
        config.reload_interval = Duration::from_secs(self.reload_secs.max(1));
        config.request_timeout = Duration::from_secs(self.timeout_secs.max(1));
        config.max_body_bytes = self.max_body;
        config.pool_size = self.pool.max(1);
        config.max_concurrent_requests = self.max_concurrency.max(1);
        config.header_read_timeout = Duration::from_secs(self.header_timeout_secs.max(1));
        config.stats_ttl = Duration::from_secs(self.stats_secs);
        config.shutdown_grace = Duration::from_secs(self.grace_secs);
        anyhow::ensure!(
            self.precompute_k <= cinematch::recommend::MAX_K,
            "--precompute-k must be at most {}, got {}",
            cinematch::recommend::MAX_K,
            self.precompute_k
        );
        config.precompute_k = self.precompute_k;
        config.list_cache_items = self.list_cache_items;
        Ok(config)
    }
}

pub fn run(args: ServeArgs, ctx: &Ctx) -> Result<()> {
    let (url, from) = ctx.db_url();
    tracing::info!(addr = %args.addr, db = %store::redact_url(&url), from, "starting the server");
    let mut config = args.config(url)?;
    config.objective = ctx.objective;
    server::run(config)?;
    Ok(())
}
