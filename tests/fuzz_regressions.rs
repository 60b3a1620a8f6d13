//! Inputs that the fuzz targets in `fuzz/` (run by `scripts/fuzz.sh`) found
//! to crash a reader, kept here so every `cargo test` checks they stay fixed.
//! Each goes through the public API the way its fuzz target sent it.

use std::path::{Path, PathBuf};

use cinematch::data::formats::read_ratings;
use cinematch::data::{IssueKind, ReadOptions, SkipReport};
use cinematch::{Error, Rating};

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn ratings(path: &Path, skip_invalid: bool) -> (cinematch::Result<Vec<Rating>>, SkipReport) {
    let mut skipped = SkipReport::default();
    let got = read_ratings(path, ReadOptions { skip_invalid }, None, &mut skipped);
    (got, skipped)
}

/// Found by `ratings_csv` (crash-9589a01c217472c0233d9b85fce61229ef348b19):
/// the line `1,356,4.0,\0\0\0\0\0\0\0\0\0964980962` panicked with "attempt
/// to multiply with overflow" wherever overflow checks are on (debug and
/// test builds, the fuzz build). The integer parser's branch-free fast path
/// accumulated every byte of a field of up to 18 bytes before checking that
/// they were all digits, and a NUL (or any byte far from '0'..'9') adds up
/// to 255 per place. A NUL-padded file, as a crashed writer or a
/// preallocated download leaves, is enough. Now such a field is the
/// ordinary "not an integer" problem, in every layout and every integer
/// column.
#[test]
fn non_digit_bytes_in_an_integer_field_are_not_numeric_not_an_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let padded: &[u8] = b"\0\0\0\0\0\0\0\0\0964980962";
    let garbage: &[u8] = b"//////////////////"; // 18 bytes of '0' - 1
    for (name, sep, header, first_line) in [
        (
            "ratings.csv",
            &b","[..],
            &b"userId,movieId,rating,timestamp\n"[..],
            2,
        ),
        ("ratings.dat", &b"::"[..], &b""[..], 1),
        ("u.data", &b"\t"[..], &b""[..], 1),
    ] {
        for bad in [padded, garbage] {
            for column in 0..4 {
                if column == 2 {
                    continue; // ratings are parsed as floats
                }
                let mut fields: Vec<&[u8]> = vec![b"1", b"356", b"4.0", b"964980962"];
                fields[column] = bad;
                let mut content = header.to_vec();
                content.extend_from_slice(&fields.join(sep));
                content.extend_from_slice(b"\n");
                content.extend_from_slice(&[b"2", sep, b"1", sep, b"3.5", sep, b"5\n"].concat());
                let path = write(dir.path(), name, &content);

                let (strict, _) = ratings(&path, false);
                match strict {
                    Err(Error::Input(e)) => {
                        assert_eq!(e.kind, IssueKind::NotNumeric, "{name} column {column}: {e}");
                        assert_eq!(e.line, first_line, "{name} column {column}: {e}");
                        assert!(e.detail.contains("not an integer"), "{e}");
                    }
                    other => {
                        panic!("{name} column {column}: expected an input error, got {other:?}")
                    }
                }

                let (lenient, skipped) = ratings(&path, true);
                let rows = lenient.unwrap_or_else(|e| panic!("{name} column {column}: {e}"));
                assert_eq!(
                    rows,
                    [Rating {
                        user_id: 2,
                        movie_id: 1,
                        rating: 3.5,
                        timestamp: 5
                    }],
                    "{name} column {column}"
                );
                assert_eq!(skipped.counts.get(&IssueKind::NotNumeric), Some(&1));
                assert_eq!(skipped.total(), 1);
            }
        }
    }
}

/// The crashing line as the fuzzer found it (the rest of the saved input
/// was a mutated slice of ml-latest-small's ratings.csv): read strictly it
/// is a "not an integer" error on its line; leniently it is skipped.
#[test]
fn fuzz_crash_9589a01c_nul_padded_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let content = b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,356,4.0,\0\0\0\0\0\0\0\0\0964980962\n";
    let path = write(dir.path(), "ratings.csv", content);
    match ratings(&path, false).0 {
        Err(Error::Input(e)) => {
            assert_eq!((e.line, e.kind), (3, IssueKind::NotNumeric), "{e}");
            assert!(e.detail.starts_with("timestamp "), "{e}");
        }
        other => panic!("expected an input error, got {other:?}"),
    }
    let (rows, skipped) = ratings(&path, true);
    assert_eq!(rows.unwrap().len(), 1);
    assert_eq!(skipped.examples.len(), 1);
    assert_eq!(skipped.examples[0].line, 3);
}
