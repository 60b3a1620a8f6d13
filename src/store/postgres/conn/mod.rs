//! PostgreSQL connection strings and TLS, with libpq's `sslmode` semantics.
//!
//! tokio-postgres only knows `disable`, `prefer` and `require`, and its
//! `require` never verifies the server. Operators copy URLs from `psql`, so
//! `verify-ca`/`verify-full` and `sslrootcert` must mean here what they mean
//! there; this module strips those parameters before tokio-postgres sees the
//! URL and builds the matching rustls configuration itself.
//!
//! Every message that can contain a URL goes through [`redact`] first: these
//! strings end up in logs and CI output.

mod diagnose;
mod params;
mod redact;
#[cfg(test)]
mod tests;
mod tls;

pub use redact::redact;

/// A database URL safe to print, redacted from its parsed configuration: a
/// PostgreSQL URL or key/value string is parsed and the password it holds,
/// whatever the characters, is hidden (and remembered, so [`redact`] hides
/// it wherever it appears later); anything else goes through [`redact`].
pub fn redact_url(url: &str) -> String {
    match PgTarget::parse(url) {
        Ok(target) => target.display,
        Err(_) => redact(url),
    }
}

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use postgres::config::Host;
use postgres::NoTls;
use rustls::crypto::ring;

use crate::{Error, Result};

use diagnose::error_chain;
use params::{strip_kv_params, strip_url_params, TlsParams};
/// libpq's fallback when no `connect_timeout` is given is to wait forever; a
/// firewalled port would then hang a CLI command or a CI job indefinitely.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The special `sslrootcert` value (libpq 16+) that selects the operating
/// system's trust store instead of a file.
const SYSTEM_ROOTS: &str = "system";

/// TLS modes as libpq defines them (`allow` is not offered: tokio-postgres
/// cannot try plaintext first and upgrade afterwards). Without `sslmode` the
/// mode is [`default_ssl_mode`]: `require`, or `prefer` on loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server offers it (the certificate is only verified
    /// when a root certificate is configured); plaintext only when the server
    /// declines TLS. Unlike libpq, a TLS handshake or certificate failure is
    /// an error, never a reason to retry in plaintext: otherwise anyone on
    /// the path could force plaintext by breaking the handshake.
    Prefer,
    /// TLS is mandatory; the certificate is only checked against a CA when a
    /// root certificate is configured (as libpq does).
    Require,
    /// TLS, and the server certificate must chain to a trusted CA.
    VerifyCa,
    /// TLS, trusted chain, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    const ALLOWED: &'static str = "disable, prefer, require, verify-ca, verify-full";

    /// The libpq spelling, so messages can be pasted back into a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn verifies_chain(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            "allow" => Err(Error::Config(
                "sslmode=allow is not supported; use prefer (TLS when available) or disable".into(),
            )),
            other => Err(Error::Config(format!(
                "invalid sslmode {other:?}: expected one of {}",
                SslMode::ALLOWED
            ))),
        }
    }
}

/// A parsed PostgreSQL URL. Everything tokio-postgres understands lives in
/// `config`; the TLS parameters it does not know are kept beside it.
#[derive(Debug, Clone)]
pub struct PgTarget {
    /// Connection settings; its `ssl_mode` is the closest tokio-postgres
    /// equivalent of `ssl_mode` (verification is done by our TLS connector).
    pub config: postgres::Config,
    /// The mode as the user wrote it; `connect` re-derives `config`'s mode
    /// from it, so changing it after parsing is safe.
    pub ssl_mode: SslMode,
    /// PEM CA bundle that server certificates must chain to: `sslrootcert`,
    /// else `~/.postgresql/root.crt` when it exists (as libpq does).
    /// `system` means the operating system's trust store.
    pub root_cert: Option<PathBuf>,
    /// Client certificate and key (`sslcert`/`sslkey`, or libpq's defaults
    /// under `~/.postgresql/` when both exist) for `cert` authentication.
    client_cert: Option<(PathBuf, PathBuf)>,
    sni: bool,
    /// The URL as given, with the password redacted: safe to log.
    display: String,
}

impl PgTarget {
    /// Parses a `postgres://` / `postgresql://` URL or a libpq key/value
    /// string (`host=... dbname=...`).
    pub fn parse(url: &str) -> Result<PgTarget> {
        let url = url.trim();
        let mut params = TlsParams::default();
        let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            strip_url_params(url, &mut params)?
        } else {
            strip_kv_params(url, &mut params)?
        };
        let mut config: postgres::Config = rest.parse().map_err(|e: postgres::Error| {
            Error::Config(format!(
                "cannot parse database URL {}: {}",
                redact(url),
                redact(&error_chain(&e))
            ))
        })?;
        // The password as the driver will send it, whatever it holds, is
        // hidden from here on in everything that goes through `redact`.
        if let Some(password) = config.get_password() {
            redact::remember_password(password);
        }
        let display = redact(url);

        let explicit_mode: Option<SslMode> = match &params.sslmode {
            Some(mode) => Some(mode.parse()?),
            None => None,
        };
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            // libpq would try a Unix socket whose directory depends on the
            // build; TCP to localhost is what users of a URL without host mean
            // far more often, and it gives a predictable error when it fails.
            config.host("localhost");
        }
        let ssl_mode = explicit_mode.unwrap_or_else(|| default_ssl_mode(&config));
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let root_cert = match params.sslrootcert {
            Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
            _ => home
                .as_ref()
                .map(|h| h.join(".postgresql/root.crt"))
                .filter(|p| p.is_file()),
        };
        if root_cert.as_deref() == Some(Path::new(SYSTEM_ROOTS)) && ssl_mode != SslMode::VerifyFull
        {
            // Same rule as libpq: any public CA can issue a certificate for
            // some name, so trusting system roots without the name check
            // would accept any publicly trusted server.
            return Err(Error::Config(format!(
                "sslrootcert=system requires sslmode=verify-full (got sslmode={ssl_mode})"
            )));
        }
        let client_cert = match (params.sslcert, params.sslkey) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::Config(
                    "sslcert and sslkey must be given together".into(),
                ))
            }
            (None, None) => home
                .map(|h| {
                    (
                        h.join(".postgresql/postgresql.crt"),
                        h.join(".postgresql/postgresql.key"),
                    )
                })
                .filter(|(c, k)| c.is_file() && k.is_file()),
        };
        let sni = match params.sslsni.as_deref() {
            None | Some("1") => true,
            Some("0") => false,
            Some(other) => {
                return Err(Error::Config(format!(
                    "invalid sslsni {other:?}: expected 0 or 1"
                )))
            }
        };

        if !params.has_connect_timeout {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        config.ssl_mode(tokio_ssl_mode(ssl_mode, &config));

        Ok(PgTarget {
            config,
            ssl_mode,
            root_cert,
            client_cert,
            sni,
            display,
        })
    }

    /// The URL with its password redacted.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Opens a connection. Errors name the server, database, user and TLS
    /// mode, because "connection refused" alone does not say which of several
    /// configured databases is down.
    pub fn connect(&self) -> Result<postgres::Client> {
        // Some dependency paths ask rustls for the process-wide provider;
        // with only `ring` compiled in there is no automatic choice.
        let _ = ring::default_provider().install_default();

        // The public fields may have been changed since parsing; derive the
        // tokio-postgres mode from `ssl_mode` so the two cannot disagree.
        let mut config = self.config.clone();
        config.ssl_mode(tokio_ssl_mode(self.ssl_mode, &config));
        if config.get_ssl_mode() == postgres::config::SslMode::Disable {
            return config.connect(NoTls).map_err(|e| self.connect_error(&e));
        }
        let tls = self.tls_connector()?;
        // No second attempt in plaintext after a TLS failure, whatever the
        // mode: see [`SslMode::Prefer`].
        config.connect(tls).map_err(|e| self.connect_error(&e))
    }

    /// Whether every endpoint is this machine (loopback or a Unix socket),
    /// where plaintext never crosses a network.
    pub fn is_local(&self) -> bool {
        all_local(&self.config)
    }

    /// The warning to log when a connection with this target may travel
    /// unencrypted over a network: `sslmode=disable` to a host that is not
    /// this machine. (`prefer` to such a host is checked after connecting,
    /// as only the server's answer tells.)
    pub fn plaintext_warning(&self) -> Option<String> {
        (self.ssl_mode == SslMode::Disable && !self.is_local()).then(|| {
            format!(
                "the connection to {} is not encrypted (sslmode=disable) although the \
                 server is not on this machine: passwords and data cross the network in \
                 plaintext; use sslmode=require or stricter",
                self.endpoints()
            )
        })
    }
}

/// Convenience for callers that only have a URL. Sets the session time zone
/// to UTC because TIMESTAMP columns default to `now()` in the session zone,
/// and servers are configured with all kinds of zones.
pub fn connect(url: &str) -> Result<postgres::Client> {
    let target = PgTarget::parse(url)?;
    let mut client = target.connect()?;
    client.batch_execute("SET TIME ZONE 'UTC'")?;
    let warning = match target.ssl_mode {
        SslMode::Prefer if !target.is_local() => {
            // The server may have declined TLS; only it can say.
            let ssl: Option<bool> = client
                .query_opt(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .ok()
                .flatten()
                .and_then(|r| r.get(0));
            (ssl == Some(false)).then(|| {
                format!(
                    "the connection to {} is not encrypted: the server declined TLS and \
                     sslmode=prefer allowed plaintext; use sslmode=require or stricter",
                    target.endpoints()
                )
            })
        }
        _ => target.plaintext_warning(),
    };
    if let Some(w) = warning {
        tracing::warn!(target_db = %target.display(), "{w}");
    }
    tracing::debug!(target_db = %target.display(), "connected to PostgreSQL");
    Ok(client)
}

/// tokio-postgres has no verify modes: they are `Require` there, and the
/// verification happens in our rustls verifier.
fn tokio_ssl_mode(mode: SslMode, config: &postgres::Config) -> postgres::config::SslMode {
    use postgres::config::SslMode as Tokio;
    if only_unix_sockets(config) {
        // PostgreSQL never speaks TLS on Unix sockets and libpq ignores
        // sslmode there; asking would make `require` always fail.
        return Tokio::Disable;
    }
    match mode {
        SslMode::Disable => Tokio::Disable,
        SslMode::Prefer => Tokio::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Tokio::Require,
    }
}

/// The mode when the URL names none: `require` unless every endpoint is
/// loopback (`localhost`, 127.0.0.0/8, `::1`) or a Unix socket, where
/// `prefer` keeps local servers without TLS working and nothing crosses a
/// network. The spec connects with `sslmode=require`; a remote server
/// reached without TLS is an error, not a silent downgrade.
pub fn default_ssl_mode(config: &postgres::Config) -> SslMode {
    if all_local(config) {
        SslMode::Prefer
    } else {
        SslMode::Require
    }
}

/// Every host and host address is loopback or a Unix socket. Host names are
/// taken at face value (only `localhost` counts): what a name resolves to can
/// change, and erring towards TLS costs nothing.
fn all_local(config: &postgres::Config) -> bool {
    let host_local = |h: &Host| match h {
        Host::Tcp(name) => {
            let name = name.trim_start_matches('[').trim_end_matches(']');
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    };
    config.get_hosts().iter().all(host_local)
        && config.get_hostaddrs().iter().all(|a| a.is_loopback())
}

fn only_unix_sockets(config: &postgres::Config) -> bool {
    #[cfg(unix)]
    {
        let hosts = config.get_hosts();
        !hosts.is_empty()
            && config.get_hostaddrs().is_empty()
            && hosts.iter().all(|h| matches!(h, Host::Unix(_)))
    }
    #[cfg(not(unix))]
    {
        let _ = config;
        false
    }
}
