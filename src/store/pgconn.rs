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

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use postgres::config::Host;
use postgres::NoTls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{Error, Result};

/// libpq's fallback when no `connect_timeout` is given is to wait forever; a
/// firewalled port would then hang a CLI command or a CI job indefinitely.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The special `sslrootcert` value (libpq 16+) that selects the operating
/// system's trust store instead of a file.
const SYSTEM_ROOTS: &str = "system";

/// Redacts passwords in anything that may contain a connection string:
/// `postgres://user:secret@host/db` becomes `postgres://user:***@host/db`,
/// and `password=secret` (key/value strings, `?password=` query parameters,
/// `PGPASSWORD=`, `sslpassword=`) has its value replaced by `***`.
///
/// It errs on the side of hiding too much: error messages and logs are read
/// by people who should not learn the password, and a URL that is mangled in
/// a log line costs nothing.
pub fn redact(s: &str) -> String {
    redact_password_params(&redact_userinfo(s))
}

/// Characters that end a URL embedded in free text (log lines, quoted values).
fn ends_url(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>')
}

fn redact_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("://") {
        let start = pos + 3;
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let token_end = rest.find(ends_url).unwrap_or(rest.len());
        let token = &rest[..token_end];
        // Quotes end a URL in free text, but a password may hold them raw
        // (`'` is even legal there, RFC 3986 sub-delims): the user info is
        // looked for up to whitespace only.
        let wide = &rest[..rest.find(char::is_whitespace).unwrap_or(rest.len())];
        // The user info ends at the last '@' before the query: a password
        // with a raw (unencoded) '@' must still be hidden entirely.
        let userinfo_end = wide.find('@').and_then(|first_at| {
            let query = wide[first_at..]
                .find(['?', '#'])
                .map_or(wide.len(), |q| first_at + q);
            wide[..query].rfind('@')
        });
        if let Some(at) = userinfo_end {
            let userinfo = &wide[..at];
            if let Some(colon) = userinfo.find(':') {
                out.push_str(&userinfo[..=colon]);
                if colon + 1 < userinfo.len() {
                    out.push_str("***");
                }
                rest = &rest[at..];
                continue;
            }
        }
        // No password here; copy the token so a later "://" inside it is
        // still examined.
        let skip = token.find("://").unwrap_or(token.len());
        out.push_str(&rest[..skip]);
        rest = &rest[skip..];
    }
    out.push_str(rest);
    out
}

fn redact_password_params(s: &str) -> String {
    const KEY: &str = "password";
    let lower = s.to_ascii_lowercase();
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(KEY) {
        let key_at = search + found;
        let key_end = key_at + KEY.len();
        search = key_end;
        // Accept prefixed names (`sslpassword`, `PGPASSWORD`) but not words
        // that merely contain it (`passwords`).
        let mut key_start = key_at;
        while key_start > 0
            && (bytes[key_start - 1].is_ascii_alphanumeric() || bytes[key_start - 1] == b'_')
        {
            key_start -= 1;
        }
        if bytes
            .get(key_end)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            continue;
        }
        let in_query = key_start > 0 && matches!(bytes[key_start - 1], b'?' | b'&');
        let mut i = key_end;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let (value_start, value_end, resume) = match bytes.get(i) {
            Some(&q @ (b'\'' | b'"')) => {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != q {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                let end = j.min(bytes.len());
                (i + 1, end, end)
            }
            Some(_) => {
                // Only whitespace ends an unquoted value (libpq's rule; a
                // quote inside it is part of the password).
                let end = s[i..]
                    .find(|c: char| c.is_whitespace() || (in_query && matches!(c, '&' | '#')))
                    .map_or(s.len(), |e| i + e);
                (i, end, end)
            }
            None => continue,
        };
        if value_end > value_start {
            out.push_str(&s[copied..value_start]);
            out.push_str("***");
            copied = value_end;
        }
        search = resume.max(search);
    }
    out.push_str(&s[copied..]);
    out
}

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

/// The parameters handled here rather than by tokio-postgres.
#[derive(Default)]
struct TlsParams {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
    sslsni: Option<String>,
    /// libpq's `connect_timeout=0` means "wait forever", which tokio-postgres
    /// also represents as no timeout; remember it was explicit.
    has_connect_timeout: bool,
}

impl TlsParams {
    /// Takes `key` if it is ours; `Ok(false)` hands it to tokio-postgres.
    fn take(&mut self, key: &str, value: String) -> Result<bool> {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "sslcert" => &mut self.sslcert,
            "sslkey" => &mut self.sslkey,
            "sslsni" => &mut self.sslsni,
            "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(Error::Config(format!(
                    "the connection parameter {key} is not supported"
                )))
            }
            "connect_timeout" => {
                self.has_connect_timeout = true;
                return Ok(false);
            }
            _ => return Ok(false),
        };
        *slot = Some(value);
        Ok(true)
    }
}

impl PgTarget {
    /// Parses a `postgres://` / `postgresql://` URL or a libpq key/value
    /// string (`host=... dbname=...`).
    pub fn parse(url: &str) -> Result<PgTarget> {
        let url = url.trim();
        let display = redact(url);
        let mut params = TlsParams::default();
        let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            strip_url_params(url, &mut params)?
        } else {
            strip_kv_params(url, &mut params)?
        };
        let mut config: postgres::Config = rest.parse().map_err(|e: postgres::Error| {
            Error::Config(format!(
                "cannot parse database URL {display}: {}",
                redact(&error_chain(&e))
            ))
        })?;

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

    fn tls_connector(&self) -> Result<MakeRustlsConnect> {
        let provider = Arc::new(ring::default_provider());
        let verify = self.ssl_mode.verifies_chain() || self.root_cert.is_some();
        let verifier: Arc<dyn ServerCertVerifier> = if verify {
            let roots = Arc::new(self.load_roots()?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| Error::Config(format!("cannot build the TLS verifier: {e}")))?;
            if self.ssl_mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        } else {
            Arc::new(NoVerify(provider.clone()))
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("cannot configure TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut tls = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certs(cert, "sslcert")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    Error::Config(format!("cannot read sslkey {}: {e}", key.display()))
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    Error::Config(format!(
                        "sslcert {} / sslkey do not form a usable client certificate: {e}",
                        cert.display()
                    ))
                })?
            }
        };
        tls.enable_sni = self.sni;
        Ok(MakeRustlsConnect::new(tls))
    }

    fn load_roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match self.root_cert.as_deref() {
            Some(path) if path != Path::new(SYSTEM_ROOTS) => {
                let certs = read_certs(path, "sslrootcert")?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(Error::Config(format!(
                        "sslrootcert {} holds no usable CA certificate",
                        path.display()
                    )));
                }
            }
            _ => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                if roots.is_empty() {
                    let why = native
                        .errors
                        .first()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default();
                    return Err(Error::Config(format!(
                        "sslmode={} needs CA certificates, but none were found in the system \
                         trust store{why}; set sslrootcert to the CA that signed the server certificate",
                        self.ssl_mode
                    )));
                }
            }
        }
        Ok(roots)
    }

    fn roots_description(&self) -> String {
        match self.root_cert.as_deref() {
            Some(p) if p != Path::new(SYSTEM_ROOTS) => format!("sslrootcert {}", p.display()),
            _ => "the system trust store".into(),
        }
    }

    fn connect_error(&self, e: &postgres::Error) -> Error {
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
    fn endpoints(&self) -> String {
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

/// webpki reports the certificate's names in Debug form
/// (`DnsName("localhost")`, `IpAddress(10.0.0.1)`); users need the bare name.
fn presented_name(debug: &str) -> &str {
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

/// Reads every certificate in a PEM file; `what` names the parameter so the
/// user knows which setting points at the bad file.
fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::Config(format!("cannot read {what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{what} {} contains no PEM certificates",
            path.display()
        )));
    }
    Ok(certs)
}

/// tokio-postgres's Display stops at "error performing TLS handshake"; the
/// useful part is in the source chain.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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

/// `verify-ca`: the chain must be trusted but the name may differ, e.g. when
/// connecting by IP address to a server whose certificate names its DNS name.
/// webpki checks the chain before the name, so a name error proves the chain
/// was accepted.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require` without a root certificate: encryption against passive
/// eavesdroppers only, exactly what libpq promises for these modes. The
/// handshake signatures are still checked so the session keys belong to the
/// certificate presented (which channel binding relies on).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Removes our parameters from a URL's query string, leaving the rest
/// byte-for-byte as given so tokio-postgres parses it exactly as before.
fn strip_url_params(url: &str, params: &mut TlsParams) -> Result<String> {
    let scheme_end = url.find("://").map_or(0, |p| p + 3);
    // tokio-postgres takes the credentials up to the first '@'; a '?' in an
    // (unencoded) password must not be mistaken for the query.
    let after = &url[scheme_end..];
    let authority_from = match (after.find('@'), after.find('/')) {
        (Some(at), Some(slash)) if at < slash => at + 1,
        (Some(at), None) => at + 1,
        _ => 0,
    };
    let Some(q) = after[authority_from..].find('?') else {
        return Ok(url.to_string());
    };
    let query_at = scheme_end + authority_from + q;
    let mut kept = Vec::new();
    for segment in url[query_at + 1..].split('&') {
        if segment.is_empty() {
            continue;
        }
        let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
        let key = percent_decode(key)?;
        if !params.take(&key, percent_decode(value)?)? {
            kept.push(segment);
        }
    }
    let mut out = url[..query_at].to_string();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Ok(out)
}

/// Same for libpq key/value strings; the remainder is re-quoted so values
/// with spaces or quotes survive.
fn strip_kv_params(s: &str, params: &mut TlsParams) -> Result<String> {
    let mut out = String::new();
    for (key, value) in kv_pairs(s)? {
        if params.take(&key, value.clone())? {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&key);
        out.push_str("='");
        for c in value.chars() {
            if c == '\'' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('\'');
    }
    Ok(out)
}

/// The key/value grammar of libpq (and tokio-postgres): `key = value`, values
/// optionally single-quoted, backslash escapes the next character.
fn kv_pairs(s: &str) -> Result<Vec<(String, String)>> {
    let bad = |what: &str| {
        Error::Config(format!(
            "cannot parse connection string {}: {what}",
            redact(s)
        ))
    };
    let mut pairs = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            if it.peek().is_some() {
                return Err(bad("expected a parameter name before '='"));
            }
            return Ok(pairs);
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.next() != Some('=') {
            return Err(bad(&format!("expected '=' after {key}")));
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if it.next_if_eq(&'\'').is_some() {
            loop {
                match it.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(it.next()),
                    Some(c) => value.push(c),
                    None => return Err(bad(&format!("unterminated quoted value for {key}"))),
                }
            }
        } else {
            while let Some(c) = it.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(it.next());
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return Err(bad(&format!("missing value for {key}")));
            }
        }
        pairs.push((key, value));
    }
}

/// Plain RFC 3986 decoding: unlike form decoding, '+' stays '+' (libpq does
/// the same), which matters for file paths in `sslrootcert`.
fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| {
        Error::Config(format!(
            "database URL parameter {:?} is not valid UTF-8 once decoded",
            redact(s)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_url_passwords() {
        let cases = [
            (
                "postgres://user:secret@host/db",
                "postgres://user:***@host/db",
            ),
            (
                "postgresql://user:secret@host:5433/db?sslmode=require",
                "postgresql://user:***@host:5433/db?sslmode=require",
            ),
            ("postgres://user@host/db", "postgres://user@host/db"),
            ("postgres://host/db", "postgres://host/db"),
            ("postgres://host:5432/db", "postgres://host:5432/db"),
            (
                "postgres://user:p%40ss@host/db",
                "postgres://user:***@host/db",
            ),
            // Raw '@' (invalid but common): nothing after the first '@' leaks.
            (
                "postgres://user:p@ss@host/db",
                "postgres://user:***@host/db",
            ),
            (
                "postgres://user:p?x@host/db?sslmode=disable",
                "postgres://user:***@host/db?sslmode=disable",
            ),
            ("postgres://user:@host/db", "postgres://user:@host/db"),
            // Quotes are legal (') or at least possible in a raw password.
            ("postgres://u:it's@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u:a\"b`c<d@h/db?x=1",
                "postgres://u:***@h/db?x=1",
            ),
            (
                "opening 'postgres://u:it's@h/db' failed",
                "opening 'postgres://u:***@h/db' failed",
            ),
            (
                "error connecting to postgres://a:b@h/d: refused",
                "error connecting to postgres://a:***@h/d: refused",
            ),
            (
                "'postgres://a:b@h/d' and \"postgresql://c:d@e/f\"",
                "'postgres://a:***@h/d' and \"postgresql://c:***@e/f\"",
            ),
            ("no url here", "no url here"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "redact({input:?})");
        }
    }

    #[test]
    fn redacts_key_value_passwords() {
        let cases = [
            (
                "host=h password=secret dbname=d",
                "host=h password=*** dbname=d",
            ),
            (
                "host=h password = secret dbname=d",
                "host=h password = *** dbname=d",
            ),
            (
                "host=h password='s e c\\'ret' dbname=d",
                "host=h password='***' dbname=d",
            ),
            ("password=secret", "password=***"),
            ("PASSWORD=secret", "PASSWORD=***"),
            ("PGPASSWORD=secret psql", "PGPASSWORD=*** psql"),
            ("sslpassword=secret", "sslpassword=***"),
            (
                "postgres://h/db?password=secret&sslmode=require",
                "postgres://h/db?password=***&sslmode=require",
            ),
            (
                "postgres://h/db?sslmode=require&password=se%26cret",
                "postgres://h/db?sslmode=require&password=***",
            ),
            (
                "password authentication failed for user \"bob\"",
                "password authentication failed for user \"bob\"",
            ),
            ("passwords=x", "passwords=x"),
            ("host=h user=u", "host=h user=u"),
            // Key/value values may contain '&'; only URL queries end at it.
            ("password=a&b host=h", "password=*** host=h"),
            ("password=it's\"x host=h", "password=*** host=h"),
            (
                "postgres://h/db?password=it's&sslmode=require",
                "postgres://h/db?password=***&sslmode=require",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "redact({input:?})");
        }
    }

    #[test]
    fn redact_is_idempotent() {
        for s in ["postgres://u:p@h/d?password=x", "password='a b' host=h"] {
            let once = redact(s);
            assert_eq!(redact(&once), once);
        }
    }

    #[test]
    fn parses_sslmodes() {
        let cases = [
            ("postgres://u@h/d", SslMode::Require),
            ("postgres://u@localhost/d", SslMode::Prefer),
            ("postgres://u@h/d?sslmode=disable", SslMode::Disable),
            ("postgres://u@h/d?sslmode=prefer", SslMode::Prefer),
            ("postgres://u@h/d?sslmode=require", SslMode::Require),
            ("postgresql://u@h/d?sslmode=verify-ca", SslMode::VerifyCa),
            (
                "postgresql://u@h/d?application_name=x&sslmode=verify-full",
                SslMode::VerifyFull,
            ),
            ("host=h dbname=d sslmode=verify-full", SslMode::VerifyFull),
            ("host=h dbname=d sslmode='require'", SslMode::Require),
        ];
        for (url, want) in cases {
            let t = PgTarget::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(t.ssl_mode, want, "{url}");
        }
        let pg = |url: &str| PgTarget::parse(url).unwrap().config.get_ssl_mode();
        assert_eq!(
            pg("postgres://h/d?sslmode=disable"),
            postgres::config::SslMode::Disable
        );
        assert_eq!(pg("postgres://h/d"), postgres::config::SslMode::Require);
        assert_eq!(
            pg("postgres://localhost/d"),
            postgres::config::SslMode::Prefer
        );
        assert_eq!(
            pg("postgres://h/d?sslmode=verify-ca"),
            postgres::config::SslMode::Require
        );
    }

    #[test]
    fn rejects_bad_sslmodes() {
        let err = PgTarget::parse("postgres://u:pw@h/d?sslmode=verify").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Config(_)), "{msg}");
        assert!(msg.contains("\"verify\""), "{msg}");
        assert!(
            msg.contains("disable, prefer, require, verify-ca, verify-full"),
            "{msg}"
        );
        let msg = PgTarget::parse("host=h sslmode=allow")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("allow is not supported"), "{msg}");
        let msg = PgTarget::parse("postgres://h/d?sslcrl=/x")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("sslcrl is not supported"), "{msg}");
        let msg = PgTarget::parse("postgres://h/d?sslcert=/x")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("sslcert and sslkey"), "{msg}");
        let msg = PgTarget::parse("postgres://h/d?sslrootcert=system&sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("verify-full"), "{msg}");
    }

    #[test]
    fn unknown_option_is_a_config_error_without_password() {
        let err = PgTarget::parse("postgres://u:hunter2@h/d?frobnicate=1").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Config(_)), "{msg}");
        assert!(msg.contains("frobnicate"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn parses_url_parts() {
        let t = PgTarget::parse(
            "postgresql://b%40b:p%40ss%2Fw@db.example:6543/cine%20match?sslmode=verify-ca&sslrootcert=/etc/ca%2Bx.pem&application_name=cm&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(t.config.get_user(), Some("b@b"));
        assert_eq!(t.config.get_password(), Some(&b"p@ss/w"[..]));
        assert_eq!(t.config.get_dbname(), Some("cine match"));
        assert_eq!(t.config.get_hosts(), &[Host::Tcp("db.example".into())]);
        assert_eq!(t.config.get_ports(), &[6543]);
        assert_eq!(t.config.get_application_name(), Some("cm"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        assert_eq!(t.root_cert, Some(PathBuf::from("/etc/ca+x.pem")));
        assert_eq!(t.ssl_mode, SslMode::VerifyCa);
        assert!(!t.display().contains("p%40ss"), "{}", t.display());
    }

    #[test]
    fn parses_key_value_strings() {
        let t = PgTarget::parse(
            "host=localhost port=5433 dbname=cm user=bob password='a b\\'c' sslmode=verify-full sslrootcert='/tmp/my ca.pem'",
        )
        .unwrap();
        assert_eq!(t.config.get_password(), Some(&b"a b'c"[..]));
        assert_eq!(t.config.get_ports(), &[5433]);
        assert_eq!(t.config.get_user(), Some("bob"));
        assert_eq!(t.root_cert, Some(PathBuf::from("/tmp/my ca.pem")));
        assert_eq!(t.ssl_mode, SslMode::VerifyFull);
        assert_eq!(t.display(), "host=localhost port=5433 dbname=cm user=bob password='***' sslmode=verify-full sslrootcert='/tmp/my ca.pem'");
    }

    #[test]
    fn defaults() {
        let t = PgTarget::parse("postgres:///cm").unwrap();
        assert_eq!(t.config.get_hosts(), &[Host::Tcp("localhost".into())]);
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&DEFAULT_CONNECT_TIMEOUT)
        );
        let t = PgTarget::parse("postgres://h/cm?connect_timeout=0").unwrap();
        assert_eq!(
            t.config.get_connect_timeout(),
            None,
            "0 means wait forever, as in libpq"
        );
        #[cfg(unix)]
        {
            let t = PgTarget::parse("host=/var/run/postgresql sslmode=require").unwrap();
            assert_eq!(t.config.get_ssl_mode(), postgres::config::SslMode::Disable);
            assert_eq!(t.ssl_mode, SslMode::Require);
        }
    }

    #[test]
    fn default_sslmode_is_require_except_on_this_machine() {
        let mode = |url: &str| {
            PgTarget::parse(url)
                .unwrap_or_else(|e| panic!("{url}: {e}"))
                .ssl_mode
        };
        for url in [
            "postgres://u@localhost/d",
            "postgres://u@LOCALHOST:5433/d",
            "postgres://u@127.0.0.1/d",
            "postgres://u@127.8.9.10/d",
            "postgres://u@[::1]:5432/d",
            "postgres:///d",
            "host=localhost,127.0.0.1 dbname=d",
            "host=localhost hostaddr=127.0.0.1 dbname=d",
        ] {
            assert_eq!(mode(url), SslMode::Prefer, "{url}");
        }
        #[cfg(unix)]
        assert_eq!(
            mode("host=/var/run/postgresql dbname=d"),
            SslMode::Prefer,
            "a Unix socket"
        );
        for url in [
            "postgres://u@db.example/d",
            "postgres://u:pw@ep-cool-name-123.eu-central-1.aws.neon.tech/neondb",
            "postgres://u@10.0.0.5/d",
            "postgres://u@[2001:db8::1]/d",
            "postgres://u@localhost.example.com/d",
            // Any remote endpoint makes the whole URL remote.
            "host=localhost,db.example dbname=d",
            // Connected by address: the address decides too.
            "host=localhost hostaddr=192.0.2.7 dbname=d",
        ] {
            assert_eq!(mode(url), SslMode::Require, "{url}");
        }
        // An explicit mode always wins.
        assert_eq!(
            mode("postgres://u@db.example/d?sslmode=prefer"),
            SslMode::Prefer
        );
        assert_eq!(
            mode("postgres://u@localhost/d?sslmode=verify-full"),
            SslMode::VerifyFull
        );
    }

    #[test]
    fn plaintext_to_a_remote_host_is_warned_about() {
        let warn = |url: &str| PgTarget::parse(url).unwrap().plaintext_warning();
        let w = warn("postgres://u:hunter2@db.example:6543/d?sslmode=disable")
            .expect("a warning for plaintext to a remote host");
        assert!(w.contains("db.example:6543"), "{w}");
        assert!(w.contains("not encrypted"), "{w}");
        assert!(!w.contains("hunter2"), "{w}");
        assert_eq!(warn("postgres://u@localhost/d?sslmode=disable"), None);
        assert_eq!(warn("postgres://u@127.0.0.1/d?sslmode=disable"), None);
        assert_eq!(warn("postgres://u@db.example/d"), None, "require");
        assert_eq!(warn("postgres://u@db.example/d?sslmode=verify-full"), None);
    }

    #[test]
    fn presented_names_are_bare() {
        assert_eq!(presented_name("DnsName(\"localhost\")"), "localhost");
        assert_eq!(presented_name("IpAddress(10.0.0.1)"), "10.0.0.1");
        assert_eq!(presented_name("DirectoryName"), "DirectoryName");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%2").unwrap(), "a b+c%2");
        assert_eq!(percent_decode("%").unwrap(), "%");
        assert_eq!(percent_decode("%zz").unwrap(), "%zz");
        assert!(percent_decode("%ff").is_err());
    }

    #[test]
    fn unreachable_port_names_endpoint_not_password() {
        // A port that was just free: connecting is refused immediately.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        for mode in ["disable", "require", "verify-full"] {
            let url = format!(
                "postgres://bob:hunter2@127.0.0.1:{port}/cm?sslmode={mode}&connect_timeout=5"
            );
            let Err(err) = connect(&url) else {
                panic!("connected to a closed port");
            };
            let msg = err.to_string();
            assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
            assert!(msg.contains("database cm, user bob"), "{msg}");
            assert!(msg.contains(&format!("sslmode={mode}")), "{msg}");
            assert!(msg.contains("connection refused"), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
    }

    // The live checks against real servers (TLS modes, a wrong CA or host
    // name, client certificates) are in tests/tls.rs, run by scripts/test.sh.
}
