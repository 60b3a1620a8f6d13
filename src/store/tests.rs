use super::*;

#[test]
fn urls_go_to_the_engine_that_serves_them() {
    let pg = |u: &str| DbUrl::Postgres(u.to_string());
    let lite = |p: &str| DbUrl::Sqlite(p.to_string());
    for (url, want) in [
        ("postgres://u@h/db", pg("postgres://u@h/db")),
        (
            "postgresql://u@h/db?sslmode=require",
            pg("postgresql://u@h/db?sslmode=require"),
        ),
        ("host=localhost dbname=cm", pg("host=localhost dbname=cm")),
        ("sqlite://data/cm.db", lite("data/cm.db")),
        ("sqlite:cm.db", lite("cm.db")),
        ("sqlite::memory:", lite(":memory:")),
        ("cinematch.sqlite3", lite("cinematch.sqlite3")),
        ("  sqlite://x.db  ", lite("x.db")),
    ] {
        assert_eq!(DbUrl::parse(url).unwrap(), want, "{url}");
    }
    assert_eq!(
        DbUrl::parse(DEFAULT_DB_URL).unwrap().backend(),
        Backend::Sqlite
    );
    assert_eq!(
        DbUrl::parse("postgres://h/db").unwrap().backend(),
        Backend::Postgres
    );
}

#[test]
fn an_unknown_url_is_a_config_error_without_its_password() {
    let err = DbUrl::parse("mysql://bob:hunter2@h/db").unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("unrecognised database URL"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}
