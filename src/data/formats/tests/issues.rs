//! One test per [`IssueKind`]: each names its file and physical line.

use std::collections::HashSet;

use super::*;

// --- one test per IssueKind -------------------------------------------

#[test]
fn empty_file_is_an_error_even_when_skipping() {
    for content in [
        "",
        R_HEAD,
        "userId,movieId,rating,timestamp\n\n\n",
        "\n  \n",
    ] {
        let e = strict_ratings_err(content);
        check(&e, IssueKind::EmptyFile, 0, "ratings.csv");
        let (_dir, p) = ratings_file(content);
        let e = input_err(read_ratings(
            &p,
            lenient(),
            None,
            &mut SkipReport::default(),
        ));
        check(&e, IssueKind::EmptyFile, 0, "ratings.csv");
    }
    check(
        &strict_movies_err(M_HEAD),
        IssueKind::EmptyFile,
        0,
        "movies.csv",
    );
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "ratings.dat", "\n");
    let e = input_err(read_ratings(&p, strict(), None, &mut SkipReport::default()));
    check(&e, IssueKind::EmptyFile, 0, "ratings.dat");
}

#[test]
fn invalid_utf8_is_an_encoding_issue_on_its_line() {
    // NUL is valid UTF-8 but PostgreSQL text cannot hold it.
    let e = strict_movies_err(
        b"movieId,title,genres\n1,Toy Story (1995),Comedy\n2,Heat\0 (1995),Drama\n",
    );
    check(&e, IssueKind::Malformed, 3, "movies.csv");
    assert!(e.detail.contains("NUL"), "{}", e.detail);
    let e = strict_movies_err(b"movieId,title,genres\n7,Heat (1995),Dra\0ma\n");
    check(&e, IssueKind::Malformed, 2, "movies.csv");
    let e = strict_movies_err(
        b"movieId,title,genres\n1,Toy Story (1995),Comedy\n2,Caf\xe9 (2000),Drama\n",
    );
    check(&e, IssueKind::Encoding, 3, "movies.csv");
    assert!(e.detail.contains("0xE9"), "{}", e.detail);
    let e = strict_ratings_err(b"userId,movieId,rating,timestamp\n1,1,4.0,5\n1,\xff2,4.0,5\n");
    check(&e, IssueKind::Encoding, 3, "ratings.csv");
}

#[test]
fn utf16_is_an_encoding_error_for_the_whole_file() {
    let text = "movieId,title,genres\n1,Toy Story (1995),Comedy\n";
    let mut le = vec![0xFF, 0xFE];
    le.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    let mut be = vec![0xFE, 0xFF];
    be.extend(text.encode_utf16().flat_map(|u| u.to_be_bytes()));
    let no_bom: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    for bytes in [le, be, no_bom] {
        let e = strict_movies_err(&bytes);
        check(&e, IssueKind::Encoding, 0, "movies.csv");
        assert!(e.detail.contains("UTF-16"), "{}", e.detail);
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "movies.csv", &bytes);
        let e = input_err(read_movies(&p, lenient(), &mut SkipReport::default()));
        assert_eq!(e.kind, IssueKind::Encoding);
    }
}

#[test]
fn empty_title_and_open_quote_are_malformed() {
    let e = strict_movies_err("movieId,title,genres\n1,Toy Story (1995),Comedy\n3,  ,Drama\n");
    check(&e, IssueKind::Malformed, 3, "movies.csv");
    let e = strict_movies_err(
        "movieId,title,genres\n1,Toy Story (1995),Comedy\n2,\"Broken (1999),Drama\n3,Fine (2000),Comedy\n",
    );
    check(&e, IssueKind::Malformed, 3, "movies.csv");
    assert!(e.detail.contains("quote"), "{}", e.detail);
    // u.item genre flags must be 0 or 1.
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "u.item",
        "1|Toy Story (1995)|01-Jan-1995||url|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n\
         2|GoldenEye (1995)|01-Jan-1995||url|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|x|0|0\n",
    );
    let e = input_err(read_movies(&p, strict(), &mut SkipReport::default()));
    check(&e, IssueKind::Malformed, 2, "u.item");
    assert!(e.detail.contains("Thriller"), "{}", e.detail);
}

#[test]
fn missing_or_extra_columns_are_column_count() {
    let e = strict_ratings_err(format!("{R_HEAD}1,1,4.0,5\n1,2,4.0\n"));
    check(&e, IssueKind::ColumnCount, 3, "ratings.csv");
    assert!(e.detail.contains("found 3"), "{}", e.detail);
    let e = strict_ratings_err(format!("{R_HEAD}1,1,4.0,5\n\n1,2,4.0,5,9\n"));
    check(&e, IssueKind::ColumnCount, 4, "ratings.csv");
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "ratings.dat", "1::1::4::5\n1::2::4\n");
    let e = input_err(read_ratings(&p, strict(), None, &mut SkipReport::default()));
    check(&e, IssueKind::ColumnCount, 2, "ratings.dat");
    let p = write(dir.path(), "u.data", "1\t1\t4\t5\n1\t2\t4\t5\t6\n");
    let e = input_err(read_ratings(&p, strict(), None, &mut SkipReport::default()));
    check(&e, IssueKind::ColumnCount, 2, "u.data");
    let e = strict_movies_err("movieId,title,genres\n1,Toy Story (1995)\n");
    check(&e, IssueKind::ColumnCount, 2, "movies.csv");
    // An unquoted comma whose last field is not a genre list.
    let e = strict_movies_err("movieId,title,genres\n1,Toy Story (1995),Comedy,extra\n");
    check(&e, IssueKind::ColumnCount, 2, "movies.csv");
}

#[test]
fn non_numeric_fields_name_the_field() {
    let e = strict_ratings_err(format!("{R_HEAD}1,1,4.0,5\n1,2,4.0,5\nabc,3,4.0,5\n"));
    check(&e, IssueKind::NotNumeric, 4, "ratings.csv");
    assert!(
        e.detail.contains("userId \"abc\" is not an integer"),
        "{}",
        e.detail
    );
    let cases = [
        ("1,x,4.0,5", "movieId \"x\" is not an integer"),
        ("0,1,4.0,5", "userId 0 is not a positive integer"),
        ("1,-3,4.0,5", "movieId -3 is not a positive integer"),
        ("1,3000000000,4.0,5", "movieId \"3000000000\" is too large"),
        ("1,1,four,5", "rating \"four\" is not a number"),
        ("1,1,NaN,5", "rating \"NaN\" is not a number"),
        ("1,1,4.0,12.5", "timestamp \"12.5\" is not an integer"),
        ("1,1,4.0,", "timestamp \"\" is not an integer"),
    ];
    for (row, detail) in cases {
        let e = strict_ratings_err(format!("{R_HEAD}{row}\n"));
        check(&e, IssueKind::NotNumeric, 2, "ratings.csv");
        assert!(e.detail.contains(detail), "{row}: {}", e.detail);
    }
    let e = strict_movies_err("movieId,title,genres\nabc,Toy Story (1995),Comedy\n");
    check(&e, IssueKind::NotNumeric, 2, "movies.csv");
}

#[test]
fn ratings_outside_the_scale_are_out_of_range() {
    for bad in ["5.5", "0", "0.0", "-1", "10"] {
        let e = strict_ratings_err(format!("{R_HEAD}1,1,4.0,5\n1,2,{bad},5\n"));
        check(&e, IssueKind::RatingOutOfRange, 3, "ratings.csv");
        assert!(e.detail.contains(bad), "{}", e.detail);
    }
}

#[test]
fn ratings_off_the_half_step_are_reported() {
    for bad in ["3.7", "4.25", "0.75", "4.50001"] {
        let e = strict_ratings_err(format!("{R_HEAD}1,1,4.0,5\n1,2,{bad},5\n"));
        check(&e, IssueKind::RatingNotHalfStep, 3, "ratings.csv");
    }
    // Every valid spelling of a half step is accepted.
    let (_dir, p) = ratings_file(format!(
        "{R_HEAD}1,1,4,5\n1,2,3.50,5\n1,3, 0.5 ,5\n1,4,5.0,5\n"
    ));
    let got = read_ratings(&p, strict(), None, &mut SkipReport::default()).unwrap();
    let values: Vec<f32> = got.iter().map(|r| r.rating).collect();
    assert_eq!(values, [4.0, 3.5, 0.5, 5.0]);
}

#[test]
fn duplicate_rating_names_the_first_line() {
    // Adjacent in a sorted run.
    let e = strict_ratings_err(format!("{R_HEAD}1,1,4.0,5\n1,2,4.0,5\n1,2,3.0,6\n"));
    check(&e, IssueKind::DuplicateRating, 4, "ratings.csv");
    assert!(e.detail.contains("line 3"), "{}", e.detail);
    // Within an unsorted run (ml-1m style).
    let e = strict_ratings_err(format!(
        "{R_HEAD}1,9,4.0,5\n1,2,4.0,5\n1,9,3.0,6\n2,1,4.0,5\n"
    ));
    check(&e, IssueKind::DuplicateRating, 4, "ratings.csv");
    assert!(e.detail.contains("line 2"), "{}", e.detail);
    // A user coming back after other users (unsorted file, like u.data).
    let e = strict_ratings_err(format!(
        "{R_HEAD}1,9,4.0,5\n1,2,4.0,5\n\n2,1,4.0,5\n1,3,4.0,5\n1,2,1.0,7\n"
    ));
    check(&e, IssueKind::DuplicateRating, 7, "ratings.csv");
    assert!(e.detail.contains("line 3"), "{}", e.detail);
    // ... and over a later bad row once the whole file is being checked.
    let e = strict_ratings_err(format!(
        "{R_HEAD}1,9,4.0,5\n2,1,4.0,5\n1,9,3.0,6\n1,x,3.0,6\n"
    ));
    check(&e, IssueKind::DuplicateRating, 4, "ratings.csv");
    assert!(e.detail.contains("line 2"), "{}", e.detail);
    // The earlier duplicate wins over a later bad row in the same run.
    let e = strict_ratings_err(format!(
        "{R_HEAD}1,9,4.0,5\n1,2,4.0,5\n1,9,3.0,6\n1,x,3.0,6\n"
    ));
    check(&e, IssueKind::DuplicateRating, 4, "ratings.csv");
}

#[test]
fn duplicate_lines_stay_right_after_dropping_rows() {
    let (_dir, p) = ratings_file(format!(
        "{R_HEAD}1,9,4.0,5\n1,2,4.0,5\n1,9,3.0,6\n1,5,3.0,6\n2,1,4.0,5\n1,5,1.0,7\n1,2,1.0,7\n"
    ));
    let mut skipped = SkipReport::default();
    let got = read_ratings(&p, lenient(), None, &mut skipped).unwrap();
    assert_eq!(
        got,
        [
            r(1, 9, 4.0, 5),
            r(1, 2, 4.0, 5),
            r(1, 5, 3.0, 6),
            r(2, 1, 4.0, 5)
        ]
    );
    let found: Vec<(u64, &str)> = skipped
        .examples
        .iter()
        .map(|e| (e.line, e.detail.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (4, "user 1 already rated movie 9 on line 2"),
            (7, "user 1 already rated movie 5 on line 5"),
            (8, "user 1 already rated movie 2 on line 3"),
        ]
    );
}

#[test]
fn duplicate_movie_names_the_first_line() {
    let e = strict_movies_err(
        "movieId,title,genres\n1,A (1995),Comedy\n2,B (1995),Drama\n1,C (1996),Drama\n",
    );
    check(&e, IssueKind::DuplicateMovie, 4, "movies.csv");
    assert!(e.detail.contains("line 2"), "{}", e.detail);
}

#[test]
fn ratings_for_unlisted_movies_are_unknown_movie() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(
        dir.path(),
        "movies.csv",
        format!("{M_HEAD}1,A (1995),Comedy\n2,B (1995),Drama\n"),
    );
    let rp = write(
        dir.path(),
        "ratings.csv",
        format!("{R_HEAD}1,1,4.0,5\n1,2,4.0,5\n1,99,4.0,5\n"),
    );
    let e = input_err(read_files(&rp, &m, strict()));
    check(&e, IssueKind::UnknownMovie, 4, "ratings.csv");
    assert!(e.detail.contains("99"), "{}", e.detail);
    let e = input_err(read_dir(dir.path(), strict()));
    check(&e, IssueKind::UnknownMovie, 4, "ratings.csv");

    let known: HashSet<i32> = [1, 2].into();
    let e = input_err(read_ratings(
        &rp,
        strict(),
        Some(&known),
        &mut SkipReport::default(),
    ));
    check(&e, IssueKind::UnknownMovie, 4, "ratings.csv");
    // Huge ids take the hash-set path.
    let known: HashSet<i32> = [1, 2, i32::MAX].into();
    let e = input_err(read_ratings(
        &rp,
        strict(),
        Some(&known),
        &mut SkipReport::default(),
    ));
    check(&e, IssueKind::UnknownMovie, 4, "ratings.csv");
    // Without a movie list nothing is unknown.
    assert_eq!(
        read_ratings(&rp, strict(), None, &mut SkipReport::default())
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn wrong_header_is_bad_header_even_when_skipping() {
    let e = strict_ratings_err("user,movie,rating,timestamp\n1,1,4.0,5\n");
    check(&e, IssueKind::BadHeader, 1, "ratings.csv");
    assert!(
        e.detail.contains("userId,movieId,rating,timestamp"),
        "{}",
        e.detail
    );
    // Missing header: the first line is data.
    let e = strict_ratings_err("1,1,4.0,5\n");
    check(&e, IssueKind::BadHeader, 1, "ratings.csv");
    assert!(e.detail.contains("looks like data"), "{}", e.detail);
    // A DAT file with a .csv name.
    let e = strict_ratings_err("1::1::4::5\n");
    assert!(e.detail.contains(".dat"), "{}", e.detail);
    // Leading blank lines and a BOM shift the header's line.
    let e = strict_ratings_err("\u{feff}\n\nuserId,movieId,rating\n1,1,4.0\n");
    check(&e, IssueKind::BadHeader, 3, "ratings.csv");
    let (_dir, p) = ratings_file("a,b,c,d\n1,1,4.0,5\n");
    let e = input_err(read_ratings(
        &p,
        lenient(),
        None,
        &mut SkipReport::default(),
    ));
    check(&e, IssueKind::BadHeader, 1, "ratings.csv");
    let e = strict_movies_err("movieId,name,genres\n1,A (1995),Comedy\n");
    check(&e, IssueKind::BadHeader, 1, "movies.csv");
}

#[test]
fn overlong_title_or_genres_is_too_long() {
    let ok = "é".repeat(TITLE_MAX_CHARS); // 1000 bytes, 500 characters
    let long = "a".repeat(TITLE_MAX_CHARS + 1);
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "movies.csv", format!("{M_HEAD}1,{ok},Comedy\n"));
    let movies = read_movies(&p, strict(), &mut SkipReport::default()).unwrap();
    assert_eq!(movies[0].title.chars().count(), TITLE_MAX_CHARS);

    let e = strict_movies_err(format!("{M_HEAD}1,{ok},Comedy\n2,{long},Drama\n"));
    check(&e, IssueKind::TooLong, 3, "movies.csv");
    assert!(e.detail.contains("title"), "{}", e.detail);
    let genres = "Comedy|".repeat(29); // 203 characters
    let e = strict_movies_err(format!("{M_HEAD}1,A (1995),{genres}\n"));
    check(&e, IssueKind::TooLong, 2, "movies.csv");
    assert!(e.detail.contains("genres"), "{}", e.detail);
}

// --- skipping ---------------------------------------------------------

#[test]
fn skip_invalid_counts_each_kind_and_keeps_good_rows() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(
        dir.path(),
        "movies.csv",
        format!("{M_HEAD}1,A (1995),Comedy\n2,B (1995),Drama\n3,,Drama\n2,B again,Drama\n4,C (1997),Drama\n"),
    );
    let rp = write(
        dir.path(),
        "ratings.csv",
        b"userId,movieId,rating,timestamp\n\
          1,1,4.0,5\n\
          1,2,9.0,5\n\
          1,2,3.3,5\n\
          1,4,3.0,5\n\
          1,x,3.0,5\n\
          1,1,2.0,6\n\
          1,3,2.0,6\n\
          1,2\n\
          2,\xff,1.0,5\n\
          2,2,1.0,5\n\
          2,1,1.0,5\n\
          2,2,1.5,5\n",
    );
    let ds = read_files(&rp, &m, lenient()).unwrap();
    assert_eq!(ds.movies.len(), 3);
    assert_eq!(
        ds.ratings,
        [
            r(1, 1, 4.0, 5),
            r(1, 4, 3.0, 5),
            r(2, 2, 1.0, 5),
            r(2, 1, 1.0, 5)
        ]
    );
    let c = |k| ds.skipped.counts.get(&k).copied().unwrap_or(0);
    assert_eq!(c(IssueKind::Malformed), 1);
    assert_eq!(c(IssueKind::DuplicateMovie), 1);
    assert_eq!(c(IssueKind::RatingOutOfRange), 1);
    assert_eq!(c(IssueKind::RatingNotHalfStep), 1);
    assert_eq!(c(IssueKind::NotNumeric), 1);
    assert_eq!(c(IssueKind::DuplicateRating), 2);
    assert_eq!(c(IssueKind::UnknownMovie), 1);
    assert_eq!(c(IssueKind::ColumnCount), 1);
    assert_eq!(c(IssueKind::Encoding), 1);
    assert_eq!(ds.skipped.total(), 10);
    let examples: Vec<(&str, u64, IssueKind)> = ds
        .skipped
        .examples
        .iter()
        .map(|e| {
            (
                e.file.file_name().unwrap().to_str().unwrap(),
                e.line,
                e.kind,
            )
        })
        .collect();
    assert_eq!(
        examples,
        [
            ("movies.csv", 4, IssueKind::Malformed),
            ("movies.csv", 5, IssueKind::DuplicateMovie),
            ("ratings.csv", 3, IssueKind::RatingOutOfRange),
            ("ratings.csv", 4, IssueKind::RatingNotHalfStep),
            ("ratings.csv", 6, IssueKind::NotNumeric),
        ]
    );

    // Duplicates found when an unsorted run closes, and across users.
    let p = write(
        dir.path(),
        "batch.csv",
        format!("{R_HEAD}5,9,4.0,5\n5,2,4.0,5\n5,9,3.0,6\n6,1,4.0,5\n5,2,1.0,7\n6,1,2.0,8\n"),
    );
    let mut skipped = SkipReport::default();
    let got = read_ratings(&p, lenient(), None, &mut skipped).unwrap();
    assert_eq!(got, [r(5, 9, 4.0, 5), r(5, 2, 4.0, 5), r(6, 1, 4.0, 5)]);
    let lines: Vec<(u64, &str)> = skipped
        .examples
        .iter()
        .map(|e| (e.line, e.detail.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (4, "user 5 already rated movie 9 on line 2"),
            (6, "user 5 already rated movie 2 on line 3"),
            (7, "user 6 already rated movie 1 on line 5"),
        ]
    );
}
