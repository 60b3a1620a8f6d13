//! The schema checked against the contract itself: the spec's DDL, taken
//! verbatim from `cinematch-schema.md`, is created in a reference PostgreSQL
//! database and its catalog compared with what `cinematch` migrates. The
//! spec's example queries must run unchanged. SQLite is checked from its own
//! catalog, and CHECK constraints are exercised at the database level on both.

mod common;

use std::collections::BTreeSet;

fn spec_text() -> String {
    let p = common::shared_dir().join("spec/cinematch-schema.md");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The statements of every ```sql block in the spec, comments stripped.
fn spec_statements() -> Vec<String> {
    let text = spec_text();
    let mut out = Vec::new();
    let mut in_sql = false;
    let mut buf = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("```sql") {
            in_sql = true;
            continue;
        }
        if t.starts_with("```") && in_sql {
            in_sql = false;
            continue;
        }
        if in_sql {
            let code = match line.find("--") {
                Some(i) => &line[..i],
                None => line,
            };
            buf.push_str(code);
            buf.push('\n');
            if code.trim_end().ends_with(';') {
                out.push(buf.trim().trim_end_matches(';').to_string());
                buf.clear();
            }
        }
    }
    out
}

fn spec_ddl() -> Vec<String> {
    spec_statements()
        .into_iter()
        .filter(|s| {
            (s.starts_with("CREATE TABLE") && !s.contains(" AS")) || s.starts_with("CREATE INDEX")
        })
        .collect()
}

/// The spec tables' columns, constraints and indexes, one line each. Tables
/// CineMatch adds by later migrations are outside the comparison.
fn catalog(c: &mut postgres::Client) -> BTreeSet<String> {
    let spec_tables: Vec<String> = cinematch::store::schema::SPEC_TABLES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut out = BTreeSet::new();
    for r in c
        .query(
            "SELECT table_name::text, column_name::text, data_type::text,
                    COALESCE(character_maximum_length, -1), is_nullable::text,
                    COALESCE(regexp_replace(column_default, '_id_seq', '_SEQ'), '')
               FROM information_schema.columns
              WHERE table_schema = 'public' AND table_name = ANY($1)",
            &[&spec_tables],
        )
        .unwrap()
    {
        out.insert(format!(
            "column {}.{} {} len={} nullable={} default={}",
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, String>(2),
            r.get::<_, i32>(3),
            r.get::<_, String>(4),
            r.get::<_, String>(5)
        ));
    }
    for r in c
        .query(
            "SELECT cl.relname::text, co.contype::text, pg_get_constraintdef(co.oid)
               FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid
               JOIN pg_namespace n ON n.oid = cl.relnamespace
              WHERE n.nspname = 'public' AND cl.relname = ANY($1)",
            &[&spec_tables],
        )
        .unwrap()
    {
        out.insert(format!(
            "constraint {} {} {}",
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, String>(2)
        ));
    }
    for r in c
        .query(
            "SELECT tablename::text, indexname::text, indexdef FROM pg_indexes
              WHERE schemaname = 'public' AND tablename = ANY($1)",
            &[&spec_tables],
        )
        .unwrap()
    {
        out.insert(format!(
            "index {} {} {}",
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, String>(2)
        ));
    }
    out
}

/// The index `cinematch` adds to a spec table (schema 1.9, which replaced
/// 1.4's), as `catalog` lists it: punctuation to spaces and diacritics to
/// base letters in one `translate`.
fn title_fts_index() -> String {
    use cinematch::store::schema::{FOLD_FROM, FOLD_MARKS, FOLD_TO};
    format!(
        "index movies idx_movies_title_fts CREATE INDEX idx_movies_title_fts ON public.movies \
         USING gin (to_tsvector('simple'::regconfig, translate((title)::text, \
         '!\"#$%&''()*+,-./:;<=>?@[\\]^_`{{|}}~{FOLD_FROM}{FOLD_MARKS}'::text, \
         '                                {FOLD_TO}'::text)))"
    )
}

#[test]
fn postgres_schema_is_exactly_the_spec() {
    let ddl = spec_ddl();
    assert_eq!(
        ddl.iter().filter(|s| s.starts_with("CREATE TABLE")).count(),
        6,
        "the spec defines six tables"
    );
    assert_eq!(
        ddl.iter().filter(|s| s.starts_with("CREATE INDEX")).count(),
        9
    );

    let reference = common::PgDb::new();
    let mut rc = reference.client();
    for s in &ddl {
        rc.batch_execute(s)
            .unwrap_or_else(|e| panic!("spec DDL failed: {s}: {e}"));
    }
    let ours = common::PgDb::new();
    drop(ours.store()); // migrates
    let mut oc = ours.client();

    let expected = catalog(&mut rc);
    let mut actual = catalog(&mut oc);
    // The one addition to the spec's tables: the title index for search,
    // exactly this definition, and nothing else.
    assert!(
        actual.remove(&title_fts_index()),
        "schema 1.9's title index is missing or differs: {actual:#?}"
    );
    let missing: Vec<_> = expected.difference(&actual).collect();
    let extra: Vec<_> = actual.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "schema differs from the spec\nmissing: {missing:#?}\nextra: {extra:#?}"
    );
    // Sanity: the comparison saw what matters (folded identifiers, GIN index).
    assert!(actual.contains("column ratings.userid integer len=-1 nullable=NO default="));
    assert!(actual.iter().any(|s| s.contains("idx_movies_genres")
        && s.contains("USING gin (to_tsvector('english'::regconfig, (genres)::text))")));
}

#[test]
fn spec_example_queries_run_unchanged_on_postgres() {
    let db = common::PgDb::new();
    let mut store = db.store();
    let (movies, ratings) = (
        vec![cinematch::Movie {
            movie_id: 1,
            title: "Toy Story (1995)".into(),
            genres: "Adventure|Animation".into(),
            pca_features: None,
        }],
        vec![cinematch::Rating {
            user_id: 1,
            movie_id: 1,
            rating: 4.0,
            timestamp: 1,
        }],
    );
    store
        .load_dataset(
            &movies,
            &ratings,
            &[cinematch::Split::Train],
            false,
            &cinematch::progress::Silent,
        )
        .unwrap();
    let mut c = db.client();
    let queries: Vec<String> = spec_statements()
        .into_iter()
        .filter(|s| s.starts_with("SELECT") || s.starts_with("WITH"))
        .collect();
    assert!(queries.len() >= 15, "found {} queries", queries.len());
    for q in &queries {
        c.simple_query(q)
            .unwrap_or_else(|e| panic!("spec query failed: {q}\n{e}"));
    }
    // The maintenance "merge" (option 2) as written, inside a transaction.
    let mut tx = c.transaction().unwrap();
    for s in spec_statements().iter().filter(|s| {
        s.starts_with("INSERT INTO ratings") || s.starts_with("DELETE FROM ratings_buffer")
    }) {
        tx.batch_execute(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    tx.rollback().unwrap();
    // The statistics query, verbatim, answers with the loaded mean.
    let stats = queries
        .iter()
        .find(|q| q.contains("ROUND(STDDEV(rating), 2) as std_rating"))
        .expect("the spec's statistics query");
    let rows = c.simple_query(stats).unwrap();
    let row = rows
        .iter()
        .find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .expect("one row");
    assert_eq!(row.get("data_split"), Some("train"));
    assert_eq!(row.get("avg_rating"), Some("4.00"));
}

/// The store's search statement can use the GIN indexes: the spec's
/// `idx_movies_genres` for the genre filter (the statement uses the index's
/// own expression) and 1.9's `idx_movies_title_fts` for title words. With
/// sequential scans priced out, a plan that could not use them would still
/// show a Seq Scan.
#[test]
fn postgres_search_uses_the_full_text_indexes() {
    use cinematch::store::postgres::search_sql;
    use cinematch::store::search_words;
    let db = common::PgDb::new();
    drop(db.store());
    let mut c = db.client();
    c.batch_execute("SET enable_seqscan = off").unwrap();
    let plan = |c: &mut postgres::Client, words: &[String], genre: Option<&str>| -> String {
        let (sql, params) = search_sql(words, genre, 20);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p.as_ref()).collect();
        c.query(&format!("EXPLAIN {sql}"), &refs)
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let genre_only = plan(&mut c, &[], Some("Animation"));
    assert!(genre_only.contains("idx_movies_genres"), "{genre_only}");
    let title = plan(&mut c, &search_words("toy story"), None);
    assert!(title.contains("idx_movies_title_fts"), "{title}");
    let both = plan(&mut c, &search_words("toy"), Some("Animation"));
    assert!(
        both.contains("idx_movies_genres") || both.contains("idx_movies_title_fts"),
        "{both}"
    );
    for p in [&genre_only, &title] {
        assert!(!p.contains("Seq Scan on movies"), "{p}");
    }
}

fn sqlite_columns(
    c: &rusqlite::Connection,
    table: &str,
) -> Vec<(String, String, bool, Option<String>, bool)> {
    let mut stmt = c.prepare(&format!("PRAGMA table_info({table})")).unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, bool>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, i64>(5)? > 0,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[test]
fn sqlite_schema_has_the_spec_tables_indexes_and_fts() {
    let db = common::SqliteDb::new();
    drop(db.store());
    let c = db.conn();
    let cols = sqlite_columns(&c, "ratings");
    let names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "userId",
            "movieId",
            "rating",
            "timestamp",
            "data_split",
            "loaded_at"
        ]
    );
    assert!(cols[..5].iter().all(|c| c.2), "NOT NULL on the first five");
    assert_eq!(cols[5].3.as_deref(), Some("CURRENT_TIMESTAMP"));
    let movies = sqlite_columns(&c, "movies");
    assert_eq!(movies[0].0, "movieId");
    assert!(movies[0].4, "movieId is the primary key");
    let expect_cols: &[(&str, &[&str])] = &[
        (
            "ratings_buffer",
            &[
                "userId",
                "movieId",
                "rating",
                "timestamp",
                "batch_id",
                "ingested_at",
            ],
        ),
        (
            "ingestion_metadata",
            &[
                "id",
                "batch_id",
                "ingestion_date",
                "record_count",
                "status",
                "notes",
            ],
        ),
        (
            "model_metrics",
            &[
                "id",
                "model_version",
                "training_date",
                "rmse",
                "mae",
                "precision_at_10",
                "data_size",
                "notes",
            ],
        ),
        (
            "drift_alerts",
            &[
                "id",
                "alert_date",
                "feature_name",
                "drift_score",
                "threshold",
                "alert_triggered",
                "notes",
            ],
        ),
    ];
    for (t, want) in expect_cols {
        let got: Vec<String> = sqlite_columns(&c, t).into_iter().map(|c| c.0).collect();
        assert_eq!(&got, want, "{t}");
    }
    let indexes: BTreeSet<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type='index' AND name LIKE 'idx_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let want: BTreeSet<String> = [
        "idx_ratings_user",
        "idx_ratings_movie",
        "idx_ratings_split",
        "idx_ratings_timestamp",
        "idx_movies_title",
        "idx_buffer_batch",
        "idx_buffer_ingested",
        "idx_buffer_timestamp",
        // 1.7, CineMatch's own: idempotency keys expire by age.
        "idx_idempotency_created",
        // 1.8: the dashboard charts the latest backtest.
        "idx_backtests_created",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(indexes, want);
    // The FTS5 table stands in for the GIN index and follows `movies`.
    c.execute(
        "INSERT INTO movies (movieId, title, genres) VALUES (1, 'Toy Story (1995)', 'Animation|Comedy'), (2, 'Heat (1995)', 'Action|Crime')",
        [],
    )
    .unwrap();
    let hit: i64 = c
        .query_row(
            "SELECT rowid FROM movies_fts WHERE movies_fts MATCH 'genres:comedy'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hit, 1);
    c.execute("UPDATE movies SET genres = 'Drama' WHERE movieId = 1", [])
        .unwrap();
    let n: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM movies_fts WHERE movies_fts MATCH 'genres:comedy'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0, "FTS follows updates");
}

/// Statements every backend must refuse at the database level.
const BAD_ROWS: &[&str] = &[
    "INSERT INTO ratings (userId, movieId, rating, timestamp, data_split) VALUES (1, 1, 5.5, 0, 'train')",
    "INSERT INTO ratings (userId, movieId, rating, timestamp, data_split) VALUES (1, 1, 0.4, 0, 'train')",
    "INSERT INTO ratings (userId, movieId, rating, timestamp, data_split) VALUES (1, 1, 3.0, 0, 'valid')",
    "INSERT INTO ratings (userId, movieId, rating, timestamp, data_split) VALUES (NULL, 1, 3.0, 0, 'train')",
    "INSERT INTO ratings (userId, movieId, rating, data_split) VALUES (1, 1, 3.0, 'train')",
    "INSERT INTO ratings_buffer (userId, movieId, rating, timestamp) VALUES (1, 1, 6.0, 0)",
    "INSERT INTO movies (movieId, title) VALUES (1, NULL)",
    "INSERT INTO movies (movieId, title) VALUES (7, 'dup')",
    "INSERT INTO ingestion_metadata (batch_id) VALUES ('w1')",
    "INSERT INTO ingestion_metadata (batch_id) VALUES (NULL)",
    "INSERT INTO model_metrics (rmse) VALUES (0.9)",
];
const SETUP: &str = "INSERT INTO movies (movieId, title) VALUES (7, 'seven');
                     INSERT INTO ingestion_metadata (batch_id, status) VALUES ('w1', 'completed')";

#[test]
fn check_constraints_reject_bad_rows_on_postgres() {
    let db = common::PgDb::new();
    drop(db.store());
    let mut c = db.client();
    c.batch_execute(SETUP).unwrap();
    let long = long_title();
    for sql in BAD_ROWS.iter().copied().chain([long.as_str()]) {
        let e = c
            .batch_execute(sql)
            .expect_err(&format!("PostgreSQL accepted: {sql}"));
        // Class 23 is "integrity constraint violation" (check, not-null,
        // unique, foreign key); 22001 is a value too long for its VARCHAR.
        // Any other error (a misspelt column, a syntax error) means the
        // statement never reached the constraint it is here to test.
        let code = e.code().map(|c| c.code()).unwrap_or("none");
        let expected = if sql == long {
            code == "22001"
        } else {
            code.starts_with("23")
        };
        assert!(
            expected,
            "{sql}: SQLSTATE {code}, not a constraint violation: {e}"
        );
    }
}

/// A title one character over `movies.title`'s VARCHAR(500).
fn long_title() -> String {
    format!(
        "INSERT INTO movies (movieId, title) VALUES (8, '{}')",
        "x".repeat(501)
    )
}

#[test]
fn check_constraints_reject_bad_rows_on_sqlite() {
    let db = common::SqliteDb::new();
    drop(db.store());
    let c = db.conn();
    c.execute_batch(SETUP).unwrap();
    let long = long_title();
    for sql in BAD_ROWS.iter().copied().chain([long.as_str()]) {
        let e = c
            .execute_batch(sql)
            .expect_err(&format!("SQLite accepted: {sql}"));
        // SQLite reports every constraint (CHECK standing in for VARCHAR
        // lengths too) as SQLITE_CONSTRAINT; "no such column" and syntax
        // errors are other codes.
        assert_eq!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::ConstraintViolation),
            "{sql}: not a constraint violation: {e}"
        );
    }
}
