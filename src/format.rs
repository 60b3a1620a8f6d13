//! Numbers as people read them, in one place, so the CLI's tables and the
//! dashboard print a count, a size or a metric the same way.

/// `1234567` -> `1,234,567`, as the spec's tables print counts.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Bytes as PostgreSQL's `pg_size_pretty` prints them (`8192 bytes`,
/// `48 kB`, `250 MB`), so `db stats` on SQLite reads like the spec's query
/// on PostgreSQL.
pub fn bytes(b: i64) -> String {
    const UNITS: &[&str] = &["bytes", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v.abs() >= 10.0 * 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{} {}", v.round() as i64, UNITS[u])
}

/// A metric with `digits` decimals; an empty cell when there is none.
pub fn decimals(x: Option<f64>, digits: usize) -> String {
    x.map(|v| format!("{v:.digits$}")).unwrap_or_default()
}

/// A change with its sign (`+0.0123`, `-0.0040`); an empty cell when there
/// is none (the first run has no previous one).
pub fn signed(x: Option<f64>, digits: usize) -> String {
    x.map(|v| format!("{v:+.digits$}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(100836), "100,836");
        assert_eq!(thousands(-1234567), "-1,234,567");
        assert_eq!(thousands(i64::MIN), "-9,223,372,036,854,775,808");
    }

    #[test]
    fn bytes_match_pg_size_pretty() {
        // SELECT pg_size_pretty(8192), (49152), (262144000), (10240), (10239)
        assert_eq!(bytes(8192), "8192 bytes");
        assert_eq!(bytes(49152), "48 kB");
        assert_eq!(bytes(262_144_000), "250 MB");
        assert_eq!(bytes(10240), "10 kB");
        assert_eq!(bytes(10239), "10239 bytes");
    }

    #[test]
    fn decimals_and_signs() {
        assert_eq!(decimals(Some(0.87654), 4), "0.8765");
        assert_eq!(decimals(None, 4), "");
        assert_eq!(signed(Some(0.01234), 4), "+0.0123");
        assert_eq!(signed(Some(-0.004), 4), "-0.0040");
        assert_eq!(signed(None, 4), "");
    }
}
