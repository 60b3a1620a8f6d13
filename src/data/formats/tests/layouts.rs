//! Each MovieLens layout read end to end, detection, and the real releases.

use super::*;

// --- formats ----------------------------------------------------------

#[test]
fn csv_quoted_titles_with_commas_and_quotes() {
    let ds = read_dir(&fixtures().join("csv"), strict()).unwrap();
    assert!(ds.skipped.is_empty());
    let title = |id| {
        ds.movies
            .iter()
            .find(|m| m.movie_id == id)
            .unwrap()
            .title
            .clone()
    };
    assert_eq!(title(11), "American President, The (1995)");
    assert_eq!(title(7789), "11'09\"01 - September 11 (2002)");
    assert_eq!(title(114), "Café au lait (Métisse) (1993)");
    assert_eq!(ds.movies.len(), 6);
    assert_eq!(ds.ratings.len(), 7);
    assert_eq!(ds.ratings[0], r(1, 1, 4.0, 964982703));
    assert_eq!(ds.ratings[3], r(2, 1, 0.5, 1445714835));
    let m = &ds.movies[5];
    assert_eq!(
        (m.genres.as_str(), m.pca_features.is_none()),
        ("(no genres listed)", true)
    );
    assert_eq!(m.genre_list().count(), 0);
}

#[test]
fn csv_line_numbers_survive_bom_crlf_blank_lines_and_multiline_records() {
    // CRLF, a BOM, blank lines, and no final newline.
    let e = strict_ratings_err(b"\xEF\xBB\xBFuserId,movieId,rating,timestamp\r\n1,1,4.0,5\r\n\r\n\r\n1,2,4.0,5\r\n1,3,7.0,5");
    check(&e, IssueKind::RatingOutOfRange, 6, "ratings.csv");
    let e = strict_ratings_err("userId,movieId,rating,timestamp\r1,1,4.0,5\r1,2,x,5\r");
    check(&e, IssueKind::NotNumeric, 3, "ratings.csv");
    // A quoted line break is skipped as malformed; later lines keep
    // their physical numbers.
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "movies.csv",
        "movieId,title,genres\n1,\"Two\nLines (1995)\",Comedy\n\n2,\"Fine, Really (1996)\",Drama\n3,\"\",Drama\n",
    );
    let mut skipped = SkipReport::default();
    let movies = read_movies(&p, lenient(), &mut skipped).unwrap();
    assert_eq!(movies.len(), 1);
    assert_eq!(movies[0].title, "Fine, Really (1996)");
    let got: Vec<(IssueKind, u64)> = skipped.examples.iter().map(|e| (e.kind, e.line)).collect();
    assert_eq!(got, [(IssueKind::Malformed, 2), (IssueKind::Malformed, 6)]);
}

#[test]
fn csv_titles_with_unquoted_commas_are_rejoined() {
    // ml-25m and ml-32m ship a few rows like this.
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "movies.csv",
        format!("{M_HEAD}117845,T,O,U,C,H,I,N,G (1969),(no genres listed)\n80584,Patrik Age 1.5 (Patrik 1,5) (2008),Comedy|Drama|Romance\n"),
    );
    let movies = read_movies(&p, strict(), &mut SkipReport::default()).unwrap();
    assert_eq!(movies[0].title, "T,O,U,C,H,I,N,G (1969)");
    assert_eq!(movies[1].title, "Patrik Age 1.5 (Patrik 1,5) (2008)");
    assert_eq!(movies[1].genres, "Comedy|Drama|Romance");
}

#[test]
fn dat_reads_latin1_titles_and_modern_genre_names() {
    let dir = fixtures().join("dat");
    let ds = read_dir(&dir, strict()).unwrap();
    assert_eq!(ds.movies.len(), 5);
    assert_eq!(ds.ratings.len(), 6);
    let m = ds.movies.iter().find(|m| m.movie_id == 73).unwrap();
    assert_eq!(m.title, "Misérables, Les (1995)");
    assert_eq!(ds.movies[0].genres, "Animation|Children|Comedy");
    assert_eq!(ds.ratings[0], r(1, 1193, 5.0, 978300760));

    // UTF-8 lines still read as UTF-8; half stars (ml-10m) are fine.
    let tmp = tempfile::tempdir().unwrap();
    let m = write(
        tmp.path(),
        "movies.dat",
        "1::Amélie (2001)::Comedy|Romance\r\n2::Caf\u{e9}::Drama\n",
    );
    let rp = write(
        tmp.path(),
        "ratings.dat",
        "1::1::3.5::838985046\n1::2::5::838983525\n",
    );
    let ds = read_files(&rp, &m, strict()).unwrap();
    assert_eq!(ds.movies[0].title, "Amélie (2001)");
    assert_eq!(ds.movies[0].genres, "Comedy|Romance");
    assert_eq!(ds.ratings[0].rating, 3.5);
    // Latin-1 bytes never produce an encoding error in a .dat file.
    let m = write(
        tmp.path(),
        "movies.dat",
        b"1::\xc0 bout de souffle (1960)::Crime\n",
    );
    let movies = read_movies(&m, strict(), &mut SkipReport::default()).unwrap();
    assert_eq!(movies[0].title, "À bout de souffle (1960)");
    let e = input_err(read_movies(
        &write(tmp.path(), "m.dat", "1::::Crime\n"),
        strict(),
        &mut SkipReport::default(),
    ));
    check(&e, IssueKind::Malformed, 1, "m.dat");
}

#[test]
fn ml100k_reads_genre_flags_and_latin1_titles() {
    let dir = fixtures().join("ml-100k");
    let ds = read_dir(&dir, strict()).unwrap();
    let by_id = |id| ds.movies.iter().find(|m| m.movie_id == id).unwrap();
    assert_eq!(by_id(1).genres, "Animation|Children|Comedy");
    assert_eq!(by_id(2).genres, "Action|Adventure|Thriller");
    assert_eq!(by_id(267).genres, "(no genres listed)");
    assert_eq!(by_id(267).title, "unknown");
    assert_eq!(by_id(1309).title, "Très belle (1997)");
    assert_eq!(by_id(1309).genres, "Drama");
    assert_eq!(ds.ratings.len(), 5);
    assert_eq!(ds.ratings[0], r(196, 1, 3.0, 881250949));
    assert_eq!(ds.ratings[4], r(186, 1, 5.0, 891717743));

    // u.data is not grouped by user, so duplicates are found globally.
    let tmp = tempfile::tempdir().unwrap();
    let p = write(
        tmp.path(),
        "u.data",
        "196\t1\t3\t1\n186\t2\t3\t1\n196\t1\t2\t2\n",
    );
    let e = input_err(read_ratings(&p, strict(), None, &mut SkipReport::default()));
    check(&e, IssueKind::DuplicateRating, 3, "u.data");
    assert!(e.detail.contains("line 1"), "{}", e.detail);
    // A movie file needs all 24 columns.
    let p = write(
        tmp.path(),
        "u.item",
        "1|Toy Story (1995)|01-Jan-1995||url|0|0\n",
    );
    let e = input_err(read_movies(&p, strict(), &mut SkipReport::default()));
    check(&e, IssueKind::ColumnCount, 1, "u.item");
    assert!(e.detail.contains("expected 24"), "{}", e.detail);
}

#[test]
fn read_files_infers_layouts_from_names_and_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let dat = fixtures().join("dat");
    let item = fixtures().join("ml-100k/u.item");
    // Unknown extensions: sniffed from the first line.
    let rp = write(
        tmp.path(),
        "week-12.txt",
        std::fs::read(dat.join("ratings.dat")).unwrap(),
    );
    let m = write(
        tmp.path(),
        "titles.txt",
        std::fs::read(dat.join("movies.dat")).unwrap(),
    );
    let ds = read_files(&rp, &m, strict()).unwrap();
    assert_eq!((ds.ratings.len(), ds.movies.len()), (6, 5));
    let rp = write(tmp.path(), "batch.tsv", "196\t1\t3\t881250949\n");
    let ds = read_files(&rp, &item, strict()).unwrap();
    assert_eq!(ds.ratings, [r(196, 1, 3.0, 881250949)]);
    let rp = write(tmp.path(), "batch.txt", "22\t267\t1\t878887116\n");
    let m = write(tmp.path(), "items.txt", std::fs::read(&item).unwrap());
    let ds = read_files(&rp, &m, strict()).unwrap();
    assert_eq!(ds.ratings.len(), 1);
    assert_eq!(ds.movies.len(), 4);
    let rp = write(tmp.path(), "batch", format!("{R_HEAD}1,1,4.0,5\n"));
    let m = fixtures().join("csv/movies.csv");
    assert_eq!(read_files(&rp, &m, strict()).unwrap().ratings.len(), 1);
    // A movie list passed as ratings is refused up front.
    let e = read_ratings(&item, strict(), None, &mut SkipReport::default()).unwrap_err();
    assert!(matches!(e, crate::Error::InvalidArgument(_)), "{e}");
    // A missing file is an I/O error naming it.
    let e = read_files(&tmp.path().join("nope.csv"), &m, strict()).unwrap_err();
    assert!(
        matches!(e, crate::Error::Io { .. }) && e.to_string().contains("nope.csv"),
        "{e}"
    );
}

#[test]
fn detect_format_recognises_each_layout() {
    let f = fixtures();
    for (sub, format, r, m) in [
        ("csv", Format::Csv, "ratings.csv", "movies.csv"),
        ("dat", Format::Dat, "ratings.dat", "movies.dat"),
        ("ml-100k", Format::Ml100k, "u.data", "u.item"),
    ] {
        let (got, rp, mp) = detect_format(&f.join(sub)).unwrap();
        assert_eq!(got, format);
        assert_eq!((rp, mp), (f.join(sub).join(r), f.join(sub).join(m)));
    }
}

#[test]
fn detect_format_explains_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let e = detect_format(tmp.path()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, crate::Error::NotFound(_)));
    for name in [
        "ratings.csv",
        "movies.csv",
        "ratings.dat",
        "movies.dat",
        "u.data",
        "u.item",
    ] {
        assert!(msg.contains(name), "{msg}");
    }
    assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");

    write(tmp.path(), "ratings.csv", R_HEAD);
    let msg = detect_format(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("found only ratings.csv"), "{msg}");

    let sub = tmp.path().join("ml-latest-small");
    std::fs::create_dir(&sub).unwrap();
    write(&sub, "ratings.csv", R_HEAD);
    write(&sub, "movies.csv", M_HEAD);
    let msg = detect_format(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("ml-latest-small"), "{msg}");

    let e = detect_format(&tmp.path().join("missing")).unwrap_err();
    assert!(matches!(e, crate::Error::NotFound(_)) && e.to_string().contains("missing"));
    let e = detect_format(&tmp.path().join("ratings.csv")).unwrap_err();
    assert!(matches!(e, crate::Error::InvalidArgument(_)), "{e}");
}

// --- real releases ----------------------------------------------------

#[test]
fn reads_ml_latest_small() {
    let dir = shared_data().join("ml-latest-small");
    let ds = read_dir(&dir, strict()).unwrap();
    assert_eq!(ds.ratings.len(), 100_836);
    assert_eq!(ds.movies.len(), 9_742);
    assert!(ds.skipped.is_empty());
    assert_eq!(ds.ratings[0], r(1, 1, 4.0, 964982703));
    assert_eq!(ds.movies[0].title, "Toy Story (1995)");
    assert_eq!(
        ds.movies[0].genres,
        "Adventure|Animation|Children|Comedy|Fantasy"
    );
    let quoted = ds.movies.iter().find(|m| m.movie_id == 7789).unwrap();
    assert_eq!(quoted.title, "11'09\"01 - September 11 (2002)");
}

#[test]
fn reads_ml_25m_movies() {
    let p = shared_data().join("ml-25m-movies/movies.csv");
    let movies = read_movies(&p, strict(), &mut SkipReport::default()).unwrap();
    assert_eq!(movies.len(), 62_423);
    let duck = movies.iter().find(|m| m.movie_id == 2031).unwrap();
    assert_eq!(
        duck.title,
        "Million Dollar Duck;The (a.k.a. $1,000 000 Duck) (1971)"
    );
    assert_eq!(duck.genres, "Children|Comedy");
}
