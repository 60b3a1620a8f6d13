//! The TLS parameters tokio-postgres does not know, taken out of URLs and
//! key/value strings before it parses them.

use super::redact;
use crate::{Error, Result};

/// The parameters handled here rather than by tokio-postgres.
#[derive(Default)]
pub(super) struct TlsParams {
    pub(super) sslmode: Option<String>,
    pub(super) sslrootcert: Option<String>,
    pub(super) sslcert: Option<String>,
    pub(super) sslkey: Option<String>,
    pub(super) sslsni: Option<String>,
    /// libpq's `connect_timeout=0` means "wait forever", which tokio-postgres
    /// also represents as no timeout; remember it was explicit.
    pub(super) has_connect_timeout: bool,
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

/// Removes our parameters from a URL's query string, leaving the rest
/// byte-for-byte as given so tokio-postgres parses it exactly as before.
pub(super) fn strip_url_params(url: &str, params: &mut TlsParams) -> Result<String> {
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
pub(super) fn strip_kv_params(s: &str, params: &mut TlsParams) -> Result<String> {
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
pub(super) fn percent_decode(s: &str) -> Result<String> {
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
