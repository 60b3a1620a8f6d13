//! One row's fields into values: ids, ratings and timestamps parsed
//! straight from bytes (the hot loop of every ratings read), each problem
//! named with the field and the value as written.

use std::borrow::Cow;

use super::layout::Layout;
use super::NO_GENRES;
use crate::data::IssueKind;
use crate::types::{check_rating, check_timestamp, Rating};

pub(super) const RATINGS_HEADER: [&str; 4] = ["userId", "movieId", "rating", "timestamp"];
pub(super) const MOVIES_HEADER: [&str; 3] = ["movieId", "title", "genres"];

/// A problem found in one row, before it is tied to a file and line.
pub(super) type RowIssue = (IssueKind, String);

pub(super) fn column_count_issue(found: usize, expected: &[&str], layout: Layout) -> RowIssue {
    let sep = match layout {
        Layout::Csv => ",",
        Layout::Dat => "::",
        Layout::Tab => "<tab>",
        Layout::Item => "|",
    };
    (
        IssueKind::ColumnCount,
        format!(
            "expected {} {} fields ({}), found {found}",
            expected.len(),
            layout.describe(),
            expected.join(sep)
        ),
    )
}

pub(super) enum IntError {
    NotInteger,
    Overflow,
}

/// Integer parsing straight from bytes: the hot loop of every ratings read.
pub(super) fn parse_int(field: &[u8]) -> Result<i64, IntError> {
    // Fast path: plain digits, too few to overflow. The loop has no branch;
    // a non-digit byte adds up to 255 per place, which can overflow i64
    // (and panic where overflow checks are on), so it wraps: the value is
    // discarded unless every byte was a digit.
    if !field.is_empty() && field.len() <= 18 {
        let mut v: i64 = 0;
        let mut all_digits = true;
        for &c in field {
            let d = c.wrapping_sub(b'0');
            all_digits &= d < 10;
            v = v.wrapping_mul(10).wrapping_add(i64::from(d));
        }
        if all_digits {
            return Ok(v);
        }
    }
    let b = field.trim_ascii();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(IntError::NotInteger);
    }
    let mut v: i64 = 0;
    for &c in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(c - b'0')))
            .ok_or(IntError::Overflow)?;
    }
    Ok(if neg { -v } else { v })
}

fn show(field: &[u8]) -> String {
    format!("{:?}", truncate(&String::from_utf8_lossy(field), 40))
}

pub(super) fn truncate(s: &str, max_chars: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => Cow::Owned(format!("{}...", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

pub(super) fn parse_id(name: &str, field: &[u8]) -> Result<i32, RowIssue> {
    match parse_int(field) {
        Ok(v) if v > 0 && v <= i64::from(i32::MAX) => Ok(v as i32),
        Ok(v) if v <= 0 => Err((
            IssueKind::NotNumeric,
            format!("{name} {v} is not a positive integer"),
        )),
        Ok(_) | Err(IntError::Overflow) => Err((
            IssueKind::NotNumeric,
            format!("{name} {} is too large for a 32-bit id", show(field)),
        )),
        Err(IntError::NotInteger) => Err((
            IssueKind::NotNumeric,
            format!("{name} {} is not an integer", show(field)),
        )),
    }
}

fn parse_rating_value(field: &[u8]) -> Result<f32, RowIssue> {
    let b = field.trim_ascii();
    // MovieLens writes "4" or "3.5"; only anything else goes through the
    // general float parser.
    let value = match *b {
        [d] if d.is_ascii_digit() => f64::from(d - b'0'),
        [d, b'.', e] if d.is_ascii_digit() && e.is_ascii_digit() => {
            f64::from(d - b'0') + f64::from(e - b'0') / 10.0
        }
        _ => match std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
        {
            Some(v) if v.is_finite() => v,
            _ => {
                return Err((
                    IssueKind::NotNumeric,
                    format!("rating {} is not a number", show(field)),
                ))
            }
        },
    };
    match check_rating(value) {
        Ok(()) => Ok(value as f32),
        Err(e) => Err((
            e.into(),
            format!("rating {} {e}", String::from_utf8_lossy(b)),
        )),
    }
}

pub(super) fn parse_rating_row(f: [&[u8]; 4]) -> Result<Rating, RowIssue> {
    let user_id = parse_id("userId", f[0])?;
    let movie_id = parse_id("movieId", f[1])?;
    let rating = parse_rating_value(f[2])?;
    let timestamp = match parse_int(f[3]) {
        Ok(t) => t,
        Err(IntError::NotInteger) => {
            return Err((
                IssueKind::NotNumeric,
                format!("timestamp {} is not an integer", show(f[3])),
            ))
        }
        Err(IntError::Overflow) => {
            return Err((
                IssueKind::NotNumeric,
                format!("timestamp {} is too large", show(f[3])),
            ))
        }
    };
    if let Err(e) = check_timestamp(timestamp, now_secs()) {
        return Err((
            IssueKind::TimestampOutOfRange,
            format!("timestamp {timestamp} {e}"),
        ));
    }
    Ok(Rating {
        user_id,
        movie_id,
        rating,
        timestamp,
    })
}

/// The clock, for [`check_timestamp`]: read per row, which costs a few
/// nanoseconds (a vDSO call), so a long read never checks against a stale
/// time.
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// MovieLens spells a genre two ways across releases; store the modern one.
pub(super) fn normalize_genres(genres: &str) -> Cow<'_, str> {
    let g = genres.trim();
    if g.is_empty() {
        Cow::Borrowed(NO_GENRES)
    } else if g.contains("Children's") {
        Cow::Owned(g.replace("Children's", "Children"))
    } else {
        Cow::Borrowed(g)
    }
}
