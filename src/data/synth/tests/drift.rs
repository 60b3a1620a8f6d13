//! The drift's CLI form: what parses, and errors that name the bad part.

use crate::data::synth::*;
use crate::Error;

#[test]
fn parses_the_cli_form() {
    let kinds = parse_drift("mean:+0.4,genre:comedy:+0.3,new-movies:0.2,spread:1.5").unwrap();
    assert_eq!(
        kinds,
        vec![
            DriftKind::Mean(0.4),
            DriftKind::Genre {
                genre: "Comedy".into(),
                delta: 0.3
            },
            DriftKind::NewMovies(0.2),
            DriftKind::Spread(1.5),
        ]
    );
    // Display writes the CLI form back.
    let text: Vec<String> = kinds.iter().map(ToString::to_string).collect();
    assert_eq!(
        text.join(","),
        "mean:+0.4,genre:Comedy:+0.3,new-movies:0.2,spread:1.5"
    );
    assert_eq!(parse_drift(&text.join(",")).unwrap(), kinds);
    assert_eq!(
        parse_drift(" Mean : -0.25 , SPREAD:0.5, new_movies:1, genre:Sci-Fi:-1").unwrap(),
        vec![
            DriftKind::Mean(-0.25),
            DriftKind::Spread(0.5),
            DriftKind::NewMovies(1.0),
            DriftKind::Genre {
                genre: "Sci-Fi".into(),
                delta: -1.0
            },
        ]
    );
    // Two different genres are two statistics.
    assert_eq!(
        parse_drift("genre:Drama:+0.2,genre:Horror:-0.2")
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn drift_errors_name_the_bad_part() {
    for (input, needle) in [
        ("", "no drift given"),
        ("  ", "no drift given"),
        ("mean", "\"mean\": expected the form mean:DELTA"),
        ("mean:+0.4:1", "expected the form mean:DELTA"),
        (
            "mean:abc",
            "\"mean:abc\": the mean shift \"abc\" is not a number",
        ),
        ("mean:inf", "is not a number"),
        ("mean:NaN", "is not a number"),
        ("mean:+9", "between -4.5 and +4.5"),
        ("genre:Comedy", "expected the form genre:GENRE:DELTA"),
        ("genre:Cartoons:+0.3", "unknown genre \"Cartoons\""),
        ("genre:Comedy:x", "the genre shift \"x\" is not a number"),
        ("new-movies:1.5", "between 0 and 1"),
        ("new-movies:-0.1", "between 0 and 1"),
        ("spread:0", "must be above 0"),
        ("spread:-1", "must be above 0"),
        ("spread:11", "at most 10"),
        ("drift:1", "unknown drift kind \"drift\""),
        ("mean:0.1,,spread:2", "empty item between commas"),
        ("mean:0.1,", "empty item"),
        ("mean:0.1,mean:0.2", "\"mean:0.2\": repeats \"mean:+0.1\""),
        ("genre:Drama:1,genre:drama:2", "repeats \"genre:Drama:+1\""),
    ] {
        let e = parse_drift(input).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{input}: {e:?}");
        let msg = e.to_string();
        assert!(msg.contains(needle), "{input:?}: {msg}");
        assert!(msg.contains("expected e.g. mean:+0.4"), "{msg}");
    }
}
