//! Passwords out of anything that may hold a connection string.

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
