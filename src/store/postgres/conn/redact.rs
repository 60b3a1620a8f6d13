//! Passwords out of anything that may hold a connection string.

use std::sync::Mutex;

/// Redacts passwords in anything that may contain a connection string:
/// every password a connection string parsed in this process held
/// ([`remember_password`]: `PgTarget::parse` registers it), wherever it
/// appears and whatever it holds; then, by the text's shape,
/// `postgres://user:secret@host/db` becomes `postgres://user:***@host/db`
/// (the user info ends at the line's last `@` before another URL, so a
/// password with spaces, quotes or a raw `@` is hidden whole) and
/// `password=secret` (key/value strings, `?password=` query parameters,
/// `PGPASSWORD=`, `sslpassword=`) has its value replaced by `***`.
///
/// It errs on the side of hiding too much: error messages and logs are read
/// by people who should not learn the password, and a URL that is mangled in
/// a log line costs nothing.
pub fn redact(s: &str) -> String {
    redact_password_params(&redact_userinfo(&redact_known(s)))
}

/// Passwords remembered, newest last; a few suffice (a process connects
/// with one or two URLs).
static KNOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());
const KNOWN_KEPT: usize = 16;

/// Shorter passwords are not searched for in free text (every "a" of a log
/// line would go); the shape rules still hide them in connection strings.
const MIN_KNOWN_LEN: usize = 4;

/// Remembers a parsed password so that [`redact`] hides it, and the forms
/// it takes in connection strings (percent-encoded, backslash-escaped),
/// wherever they appear.
pub(crate) fn remember_password(password: &[u8]) {
    let Ok(p) = std::str::from_utf8(password) else {
        return;
    };
    if p.len() < MIN_KNOWN_LEN {
        return;
    }
    let mut forms = vec![
        p.to_string(),
        percent_encode(p, false),
        percent_encode(p, true),
        p.replace('\\', "\\\\").replace('\'', "\\'"),
    ];
    forms.sort();
    forms.dedup();
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    for f in forms {
        known.retain(|k| k != &f);
        known.push(f);
    }
    let excess = known.len().saturating_sub(KNOWN_KEPT * 4);
    known.drain(..excess);
}

/// Every byte outside RFC 3986's unreserved set as `%XX`.
fn percent_encode(s: &str, lower: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else if lower {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn redact_known(s: &str) -> String {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = s.to_string();
    // Longest first: a form may contain another.
    let mut forms: Vec<&String> = known.iter().collect();
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    for f in forms {
        if out.contains(f.as_str()) {
            out = out.replace(f.as_str(), "***");
        }
    }
    out
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
        // The user info may hold anything a password can (spaces, quotes,
        // a raw '@'), so it is looked for up to the end of the line or the
        // next URL, and ends at the last '@' there: hiding too much text of
        // a log line costs nothing, a password's tail shown costs a lot.
        let line_end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        let wide = &rest[..rest[..line_end].find("://").unwrap_or(line_end)];
        if let Some(at) = wide.rfind('@') {
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
