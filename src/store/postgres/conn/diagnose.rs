//! Connection failures explained: which server, database, user and TLS
//! mode, and what to change.

use std::io;
use std::time::Duration;

use postgres::config::Host;
use rustls::pki_types::ServerName;
use rustls::CertificateError;

use crate::Error;

use super::{redact, PgTarget, SslMode};

impl PgTarget {
    pub(super) fn connect_error(&self, e: &postgres::Error) -> Error {
        let reason = self.explain(e);
        Error::Postgres(redact(&format!(
            "cannot connect to PostgreSQL at {} ({}): {reason}",
            self.endpoints(),
            self.describe_session()
        )))
    }

    /// "database cm, user bob, sslmode=verify-full".
    fn describe_session(&self) -> String {
        let user = self
            .config
            .get_user()
            .map(str::to_owned)
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "(current OS user)".into());
        let db = self.config.get_dbname().unwrap_or(&user);
        format!("database {db}, user {user}, sslmode={}", self.ssl_mode)
    }

    /// "host:port" for every host tried, the way a user would write them.
    pub(super) fn endpoints(&self) -> String {
        let ports = self.config.get_ports();
        let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let hosts = self.config.get_hosts();
        let list: Vec<String> = if hosts.is_empty() {
            let addrs = self.config.get_hostaddrs();
            addrs
                .iter()
                .enumerate()
                .map(|(i, a)| match a {
                    std::net::IpAddr::V6(v6) => format!("[{v6}]:{}", port(i)),
                    std::net::IpAddr::V4(v4) => format!("{v4}:{}", port(i)),
                })
                .collect()
        } else {
            hosts
                .iter()
                .enumerate()
                .map(|(i, h)| match h {
                    Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", port(i)),
                    Host::Tcp(name) => format!("{name}:{}", port(i)),
                    #[cfg(unix)]
                    Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), port(i)),
                })
                .collect()
        };
        list.join(", ")
    }

    /// Turns a connection error into what a user can act on.
    fn explain(&self, e: &postgres::Error) -> String {
        if let Some(db) = e.as_db_error() {
            let mut msg = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                msg.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                msg.push_str(&format!("; hint: {hint}"));
            }
            if db.message().contains("no pg_hba.conf entry")
                && db.message().contains("no encryption")
            {
                msg.push_str(&format!(
                    "; the server may only accept TLS connections: use sslmode=require or stricter (was {})",
                    self.ssl_mode
                ));
            }
            return msg;
        }
        if let Some(tls) = find_rustls_error(e) {
            let mut msg = self.explain_tls(tls);
            if self.ssl_mode == SslMode::Prefer {
                msg.push_str(
                    "; sslmode=prefer does not retry in plaintext after a TLS failure (an \
                     attacker could force that); fix the TLS setup, or set sslmode=disable \
                     explicitly on a trusted network",
                );
            }
            return msg;
        }
        let chain = error_chain(e);
        if chain.contains("server does not support TLS") {
            return format!(
                "the server does not support TLS but sslmode={}; enable ssl on the server \
                 or use sslmode=prefer/disable",
                self.ssl_mode
            );
        }
        if chain.contains("bytes remaining on stream") || chain.contains("unexpected message") {
            return format!(
                "the server at {} answered, but not as PostgreSQL does: is another service \
                 listening on that port (PostgreSQL's default is 5432)? ({chain})",
                self.endpoints()
            );
        }
        if let Some(io) = find_io_error(e) {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => {
                    return "connection refused (is the server running and listening on that \
                            address and port?)"
                        .into()
                }
                io::ErrorKind::TimedOut => {
                    let secs = self.config.get_connect_timeout().map(Duration::as_secs);
                    return match secs {
                        Some(s) => format!("no answer within {s} s (connect_timeout); check host, port and firewalls"),
                        None => "connection timed out; check host, port and firewalls".into(),
                    };
                }
                _ => {}
            }
        }
        chain
    }

    fn explain_tls(&self, e: &rustls::Error) -> String {
        match e {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::NotValidForName => format!(
                    "the server certificate is not valid for the host name; connect using a \
                     name it lists, or use sslmode=verify-ca to skip the name check (was {})",
                    self.ssl_mode
                ),
                CertificateError::NotValidForNameContext {
                    expected,
                    presented,
                } => {
                    let expected = match expected {
                        ServerName::DnsName(d) => d.as_ref().to_string(),
                        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                        other => format!("{other:?}"),
                    };
                    let valid = if presented.is_empty() {
                        "it names no hosts".to_string()
                    } else {
                        let names: Vec<&str> =
                            presented.iter().map(|p| presented_name(p)).collect();
                        format!("it is valid for {}", names.join(", "))
                    };
                    format!(
                        "certificate is not valid for name {expected:?} ({valid}); connect using \
                         one of those names, or use sslmode=verify-ca to skip the host name check"
                    )
                }
                CertificateError::UnknownIssuer => format!(
                    "the server certificate is not signed by a CA in {}; set sslrootcert to \
                     the CA that issued it",
                    self.roots_description()
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    format!("the server certificate has expired ({e})")
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    format!("the server certificate is not valid yet; check both clocks ({e})")
                }
                _ => format!("the server certificate was rejected: {e}"),
            },
            rustls::Error::AlertReceived(_) => format!(
                "the server rejected the TLS handshake ({e}); if it requires a client \
                 certificate, set sslcert and sslkey"
            ),
            _ => format!("TLS handshake failed: {e}"),
        }
    }
}

/// webpki reports the certificate's names in Debug form
/// (`DnsName("localhost")`, `IpAddress(10.0.0.1)`); users need the bare name.
pub(super) fn presented_name(debug: &str) -> &str {
    debug
        .strip_prefix("DnsName(\"")
        .and_then(|s| s.strip_suffix("\")"))
        .or_else(|| {
            debug
                .strip_prefix("IpAddress(")
                .and_then(|s| s.strip_suffix(')'))
        })
        .unwrap_or(debug)
}

/// tokio-postgres's Display stops at "error performing TLS handshake"; the
/// useful part is in the source chain.
pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}

/// `io::Error::source()` skips the error it wraps, so walking `source()`
/// alone never reaches the `rustls::Error` inside tokio-rustls's io error.
fn find_rustls_error(e: &postgres::Error) -> Option<&rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = err
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        cur = err.source();
    }
    None
}

fn find_io_error(e: &postgres::Error) -> Option<&io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}
