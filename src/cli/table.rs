//! Aligned plain-text tables for terminal output, in the style of `psql`.

/// Prints `rows` under `headers`; columns whose cells all look numeric are
/// right-aligned so figures line up.
pub fn print(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render(headers, rows));
}

pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..cols)
        .map(|i| {
            !rows.is_empty()
                && rows.iter().all(|r| {
                    r.get(i).is_some_and(|c| {
                        c.is_empty()
                            || c.chars()
                                .all(|ch| ch.is_ascii_digit() || ",.-+%e".contains(ch))
                    })
                })
        })
        .collect();
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let parts: Vec<String> = (0..cols)
            .map(|i| {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                if numeric[i] {
                    format!("{c:>w$}", w = width[i])
                } else {
                    format!("{c:<w$}", w = width[i])
                }
            })
            .collect();
        out.push_str(parts.join(" | ").trim_end());
        out.push('\n');
    };
    let head: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    line(&head, &mut out);
    out.push_str(
        &width
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    out.push('\n');
    for r in rows {
        line(r, &mut out);
    }
    out
}

/// `1234567` -> `1,234,567`, as the spec's tables print counts.
pub fn thousands(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Bytes as `pg_size_pretty` prints them.
pub fn pretty_bytes(b: i64) -> String {
    const UNITS: &[&str] = &["bytes", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v.abs() >= 10.0 * 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{} {}", v.round() as i64, UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(100836), "100,836");
        assert_eq!(thousands(-1234567), "-1,234,567");
    }

    #[test]
    fn pretty_bytes_matches_pg_size_pretty() {
        // pg_size_pretty(8192) = '8192 bytes', (49152) = '48 kB', (262144000) = '250 MB'
        assert_eq!(pretty_bytes(8192), "8192 bytes");
        assert_eq!(pretty_bytes(49152), "48 kB");
        assert_eq!(pretty_bytes(262_144_000), "250 MB");
    }

    #[test]
    fn numbers_right_aligned() {
        let t = render(
            &["name", "n"],
            &[
                vec!["a".into(), "5".into()],
                vec!["bbb".into(), "100".into()],
            ],
        );
        assert_eq!(t, "name |   n\n-----+----\na    |   5\nbbb  | 100\n");
    }
}
