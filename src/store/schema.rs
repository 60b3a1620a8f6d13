//! The CineMatch schema as ordered migrations, one SQL script per backend.
//!
//! Version 1.0 is the spec (`cinematch-schema.md`) verbatim on PostgreSQL:
//! unquoted identifiers (so `userId` folds to `userid` and the spec's queries
//! run unchanged), the same types, defaults, constraints and indexes. SQLite
//! gets the same tables in its own types, with CHECKs standing in for
//! VARCHAR lengths and an FTS5 table standing in for the GIN index.
//!
//! Later versions only add tables and indexes; the six spec tables never
//! change shape.

/// One schema step. Applied in order, each in its own transaction, and
/// recorded in `cinematch_schema`.
pub struct Migration {
    pub version: &'static str,
    pub description: &'static str,
    pub postgres: &'static str,
    pub sqlite: &'static str,
}

/// The six tables of the spec, in the order the spec lists them.
pub const SPEC_TABLES: &[&str] = &[
    "ratings",
    "movies",
    "ratings_buffer",
    "ingestion_metadata",
    "model_metrics",
    "drift_alerts",
];

/// Bookkeeping of applied migrations; created before any migration runs.
pub const VERSION_TABLE_PG: &str = "CREATE TABLE IF NOT EXISTS cinematch_schema (
    version VARCHAR(20) PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
)";

pub const VERSION_TABLE_SQLITE: &str = "CREATE TABLE IF NOT EXISTS cinematch_schema (
    version TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)";

/// The Latin letters with diacritics that SQLite's FTS5 tokenizer
/// (`unicode61`, `remove_diacritics 1`, what `movies_fts` uses) folds to a
/// base letter, and ([`fold_to`]) those letters, position by position:
/// every character of Unicode's Latin-1 Supplement, Latin Extended-A/B and
/// Latin Extended Additional whose canonical decomposition is an ASCII
/// letter and one combining mark, plus the long s. (Letters with two marks,
/// such as Vietnamese `ế`, are left alone, as FTS5 leaves them.) PostgreSQL's
/// title search folds the same letters with `translate` (schema 1.9), so
/// `pokemon` and `pokémon` find the same movies on both backends.
macro_rules! fold_from {
    () => {
        concat!(
            "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆ",
            "ćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐő",
            "ŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžſƠơƯưǍǎǏǐǑǒǓǔǦǧǨǩǪǫ",
            "ǰǴǵǸǹȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȮȯȲȳḀḁḂḃḄḅḆḇḊḋḌḍḎḏḐḑḒ",
            "ḓḘḙḚḛḞḟḠḡḢḣḤḥḦḧḨḩḪḫḬḭḰḱḲḳḴḵḶḷḺḻḼḽḾḿṀṁṂṃṄṅṆṇṈṉṊṋṔṕṖṗṘṙṚṛṞṟṠṡṢ",
            "ṣṪṫṬṭṮṯṰṱṲṳṴṵṶṷṼṽṾṿẀẁẂẃẄẅẆẇẈẉẊẋẌẍẎẏẐẑẒẓẔẕẖẗẘẙẛẠạẢảẸẹẺẻẼẽỈỉỊị",
            "ỌọỎỏỤụỦủỲỳỴỵỶỷỸỹ",
        )
    };
}
pub(crate) use fold_from;

/// The base letters of [`fold_from`], in its order.
macro_rules! fold_to {
    () => {
        concat!(
            "AAAAAACEEEEIIIINOOOOOUUUUYaaaaaaceeeeiiiinooooouuuuyyAaAaAaC",
            "cCcCcCcDdEeEeEeEeEeGgGgGgGgHhIiIiIiIiIJjKkLlLlLlNnNnNnOoOoOo",
            "RrRrRrSsSsSsSsTtTtUuUuUuUuUuUuWwYyYZzZzZzsOoUuAaIiOoUuGgKkOo",
            "jGgNnAaAaEeEeIiIiOoOoRrRrUuUuSsTtHhAaEeOoYyAaBbBbBbDdDdDdDdD",
            "dEeEeFfGgHhHhHhHhHhIiKkKkKkLlLlLlMmMmMmNnNnNnNnPpPpRrRrRrSsS",
            "sTtTtTtTtUuUuUuVvVvWwWwWwWwWwXxXxYyZzZzZzhtwysAaAaEeEeEeIiIi",
            "OoOoUuUuYyYyYyYy",
        )
    };
}
pub(crate) use fold_to;

/// The combining diacritical marks (U+0300 to U+036F), which FTS5 drops
/// (a title written decomposed, `e` + U+0301, is found as `e`; Rust
/// lower-cases `İ` to `i` + U+0307): the title's `translate` deletes them
/// (they come after [`fold_to`]'s length) and [`fold_diacritics`] drops
/// them from the query's words.
macro_rules! fold_marks {
    () => {
        "\u{300}\u{301}\u{302}\u{303}\u{304}\u{305}\u{306}\u{307}\u{308}\u{309}\u{30a}\u{30b}\u{30c}\u{30d}\u{30e}\u{30f}\u{310}\u{311}\u{312}\u{313}\u{314}\u{315}\u{316}\u{317}\u{318}\u{319}\u{31a}\u{31b}\u{31c}\u{31d}\u{31e}\u{31f}\u{320}\u{321}\u{322}\u{323}\u{324}\u{325}\u{326}\u{327}\u{328}\u{329}\u{32a}\u{32b}\u{32c}\u{32d}\u{32e}\u{32f}\u{330}\u{331}\u{332}\u{333}\u{334}\u{335}\u{336}\u{337}\u{338}\u{339}\u{33a}\u{33b}\u{33c}\u{33d}\u{33e}\u{33f}\u{340}\u{341}\u{342}\u{343}\u{344}\u{345}\u{346}\u{347}\u{348}\u{349}\u{34a}\u{34b}\u{34c}\u{34d}\u{34e}\u{34f}\u{350}\u{351}\u{352}\u{353}\u{354}\u{355}\u{356}\u{357}\u{358}\u{359}\u{35a}\u{35b}\u{35c}\u{35d}\u{35e}\u{35f}\u{360}\u{361}\u{362}\u{363}\u{364}\u{365}\u{366}\u{367}\u{368}\u{369}\u{36a}\u{36b}\u{36c}\u{36d}\u{36e}\u{36f}"
    };
}
pub(crate) use fold_marks;

/// PostgreSQL's tsvector of a title column for search: ASCII punctuation
/// to spaces and the diacritics FTS5 removes to their base letters (one
/// `translate`), then the `simple` configuration. One definition for the
/// index (schema 1.9) and the search (`postgres::TITLE_TSVECTOR`), so the
/// planner can use the index: they must be the same expression.
macro_rules! title_tsvector {
    ($column:literal) => {
        concat!(
            "to_tsvector('simple', translate(",
            $column,
            r##", '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~"##,
            $crate::store::schema::fold_from!(),
            $crate::store::schema::fold_marks!(),
            "', '                                ",
            $crate::store::schema::fold_to!(),
            "'))"
        )
    };
}
pub(crate) use title_tsvector;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: "1.0",
        description: "CineMatch schema 1.0 (the spec's six tables and indexes)",
        postgres: r#"
CREATE TABLE IF NOT EXISTS ratings (
    userId INTEGER NOT NULL,
    movieId INTEGER NOT NULL,
    rating FLOAT NOT NULL CHECK (rating >= 0.5 AND rating <= 5.0),
    timestamp BIGINT NOT NULL,
    data_split VARCHAR(10) NOT NULL CHECK (data_split IN ('train', 'test')),
    loaded_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_ratings_user ON ratings(userId);
CREATE INDEX IF NOT EXISTS idx_ratings_movie ON ratings(movieId);
CREATE INDEX IF NOT EXISTS idx_ratings_split ON ratings(data_split);
CREATE INDEX IF NOT EXISTS idx_ratings_timestamp ON ratings(timestamp);

CREATE TABLE IF NOT EXISTS movies (
    movieId INTEGER PRIMARY KEY,
    title VARCHAR(500) NOT NULL,
    genres VARCHAR(200),
    pca_features JSONB
);
CREATE INDEX IF NOT EXISTS idx_movies_title ON movies(title);
CREATE INDEX IF NOT EXISTS idx_movies_genres ON movies USING GIN(to_tsvector('english', genres));

CREATE TABLE IF NOT EXISTS ratings_buffer (
    userId INTEGER NOT NULL,
    movieId INTEGER NOT NULL,
    rating FLOAT NOT NULL CHECK (rating >= 0.5 AND rating <= 5.0),
    timestamp BIGINT NOT NULL,
    batch_id VARCHAR(50),
    ingested_at TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_buffer_batch ON ratings_buffer(batch_id);
CREATE INDEX IF NOT EXISTS idx_buffer_ingested ON ratings_buffer(ingested_at);
CREATE INDEX IF NOT EXISTS idx_buffer_timestamp ON ratings_buffer(timestamp);

CREATE TABLE IF NOT EXISTS ingestion_metadata (
    id SERIAL PRIMARY KEY,
    batch_id VARCHAR(50) UNIQUE NOT NULL,
    ingestion_date TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    record_count INTEGER,
    status VARCHAR(20),
    notes TEXT
);

CREATE TABLE IF NOT EXISTS model_metrics (
    id SERIAL PRIMARY KEY,
    model_version VARCHAR(50) NOT NULL,
    training_date TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    rmse FLOAT,
    mae FLOAT,
    precision_at_10 FLOAT,
    data_size INTEGER,
    notes TEXT
);

CREATE TABLE IF NOT EXISTS drift_alerts (
    id SERIAL PRIMARY KEY,
    alert_date TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    feature_name VARCHAR(100),
    drift_score FLOAT,
    threshold FLOAT,
    alert_triggered BOOLEAN,
    notes TEXT
);
"#,
        sqlite: r#"
CREATE TABLE IF NOT EXISTS ratings (
    userId INTEGER NOT NULL,
    movieId INTEGER NOT NULL,
    rating REAL NOT NULL CHECK (rating >= 0.5 AND rating <= 5.0),
    timestamp INTEGER NOT NULL,
    data_split VARCHAR(10) NOT NULL CHECK (data_split IN ('train', 'test')),
    loaded_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_ratings_user ON ratings(userId);
CREATE INDEX IF NOT EXISTS idx_ratings_movie ON ratings(movieId);
CREATE INDEX IF NOT EXISTS idx_ratings_split ON ratings(data_split);
CREATE INDEX IF NOT EXISTS idx_ratings_timestamp ON ratings(timestamp);

CREATE TABLE IF NOT EXISTS movies (
    movieId INTEGER PRIMARY KEY,
    title VARCHAR(500) NOT NULL CHECK (length(title) <= 500),
    genres VARCHAR(200) CHECK (genres IS NULL OR length(genres) <= 200),
    pca_features JSON CHECK (pca_features IS NULL OR json_valid(pca_features))
);
CREATE INDEX IF NOT EXISTS idx_movies_title ON movies(title);
-- In place of PostgreSQL's GIN full-text index on genres: an FTS5 index over
-- title and genres, kept in step with `movies` by triggers.
CREATE VIRTUAL TABLE IF NOT EXISTS movies_fts USING fts5(
    title, genres, content='movies', content_rowid='movieId'
);
CREATE TRIGGER IF NOT EXISTS movies_fts_insert AFTER INSERT ON movies BEGIN
    INSERT INTO movies_fts(rowid, title, genres) VALUES (new.movieId, new.title, new.genres);
END;
CREATE TRIGGER IF NOT EXISTS movies_fts_delete AFTER DELETE ON movies BEGIN
    INSERT INTO movies_fts(movies_fts, rowid, title, genres) VALUES ('delete', old.movieId, old.title, old.genres);
END;
CREATE TRIGGER IF NOT EXISTS movies_fts_update AFTER UPDATE ON movies BEGIN
    INSERT INTO movies_fts(movies_fts, rowid, title, genres) VALUES ('delete', old.movieId, old.title, old.genres);
    INSERT INTO movies_fts(rowid, title, genres) VALUES (new.movieId, new.title, new.genres);
END;

CREATE TABLE IF NOT EXISTS ratings_buffer (
    userId INTEGER NOT NULL,
    movieId INTEGER NOT NULL,
    rating REAL NOT NULL CHECK (rating >= 0.5 AND rating <= 5.0),
    timestamp INTEGER NOT NULL,
    batch_id VARCHAR(50) CHECK (batch_id IS NULL OR length(batch_id) <= 50),
    ingested_at TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_buffer_batch ON ratings_buffer(batch_id);
CREATE INDEX IF NOT EXISTS idx_buffer_ingested ON ratings_buffer(ingested_at);
CREATE INDEX IF NOT EXISTS idx_buffer_timestamp ON ratings_buffer(timestamp);

CREATE TABLE IF NOT EXISTS ingestion_metadata (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id VARCHAR(50) UNIQUE NOT NULL CHECK (length(batch_id) <= 50),
    ingestion_date TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    record_count INTEGER,
    status VARCHAR(20) CHECK (status IS NULL OR length(status) <= 20),
    notes TEXT
);

CREATE TABLE IF NOT EXISTS model_metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_version VARCHAR(50) NOT NULL CHECK (length(model_version) <= 50),
    training_date TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    rmse REAL,
    mae REAL,
    precision_at_10 REAL,
    data_size INTEGER,
    notes TEXT
);

CREATE TABLE IF NOT EXISTS drift_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_date TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    feature_name VARCHAR(100) CHECK (feature_name IS NULL OR length(feature_name) <= 100),
    drift_score REAL,
    threshold REAL,
    alert_triggered BOOLEAN CHECK (alert_triggered IS NULL OR alert_triggered IN (0, 1)),
    notes TEXT
);
"#,
    },
    Migration {
        version: "1.1",
        description:
            "round(double precision, integer), so the spec's statistics queries run as written",
        // The spec's own queries call ROUND(AVG(rating), 2) on a FLOAT column;
        // PostgreSQL only has round(numeric, integer), so as written they fail
        // with "function round(double precision, integer) does not exist".
        // This overload makes them run unchanged. SQLite's ROUND already works.
        postgres: r#"
CREATE OR REPLACE FUNCTION round(double precision, integer) RETURNS numeric
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS 'SELECT pg_catalog.round($1::numeric, $2)';
"#,
        sqlite: "",
    },
    Migration {
        version: "1.2",
        description: "model registry: artifacts and champion history",
        // Artifacts live in the database so that any process that can reach
        // it (a server on another machine) can load a model with nothing but
        // the URL. The champion is the latest promotion not rolled back.
        postgres: r#"
CREATE TABLE IF NOT EXISTS model_artifacts (
    model_version VARCHAR(50) PRIMARY KEY,
    algorithm VARCHAR(20) NOT NULL,
    format_version INTEGER NOT NULL,
    size_bytes BIGINT NOT NULL,
    checksum BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    artifact BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS model_champions (
    id SERIAL PRIMARY KEY,
    model_version VARCHAR(50) NOT NULL,
    promoted_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    reason TEXT,
    rolled_back_at TIMESTAMP
);
"#,
        sqlite: r#"
CREATE TABLE IF NOT EXISTS model_artifacts (
    model_version VARCHAR(50) PRIMARY KEY,
    algorithm VARCHAR(20) NOT NULL,
    format_version INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    checksum INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    artifact BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS model_champions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_version VARCHAR(50) NOT NULL,
    promoted_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    reason TEXT,
    rolled_back_at TIMESTAMP
);
"#,
    },
    Migration {
        version: "1.3",
        description: "pipeline runs: one row per monitoring cycle with each step's outcome",
        postgres: r#"
CREATE TABLE IF NOT EXISTS pipeline_runs (
    id SERIAL PRIMARY KEY,
    started_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    finished_at TIMESTAMP,
    status VARCHAR(20) NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    batch_id VARCHAR(50),
    steps TEXT,
    summary TEXT
);
"#,
        sqlite: r#"
CREATE TABLE IF NOT EXISTS pipeline_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    finished_at TIMESTAMP,
    status VARCHAR(20) NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    batch_id VARCHAR(50),
    steps TEXT,
    summary TEXT
);
"#,
    },
    Migration {
        version: "1.4",
        description: "full-text index on movie titles for search (PostgreSQL; SQLite's movies_fts has titles)",
        // Title search (`Store::search_movies`) matches word prefixes with
        // the `simple` configuration; without this index every search reads
        // the whole movies table. ASCII punctuation becomes spaces first, so
        // the parser sees plain words as FTS5 does: no `<tag>` dropped as
        // markup, no `Sex.com` kept as one host name, no `E.T.` as one
        // token. The expression must stay identical to the search's
        // (`postgres::TITLE_TSVECTOR`); the schema tests EXPLAIN it. The
        // spec's tables keep their columns; this adds an index only.
        // SQLite's FTS5 table indexes titles already.
        postgres: r##"
CREATE INDEX IF NOT EXISTS idx_movies_title_fts ON movies USING GIN(
    to_tsvector('simple', translate(title, '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~', '                                ')));
"##,
        sqlite: "",
    },
    Migration {
        version: "1.5",
        description: "leases: the pipeline lock as a row with an expiry (no session state)",
        // `Store::acquire_lease`: the lock that keeps pipeline cycles and
        // retrains apart, taken and renewed in short transactions so that it
        // survives transaction-mode poolers and lapses when its holder dies.
        postgres: r#"
CREATE TABLE IF NOT EXISTS cinematch_leases (
    name VARCHAR(50) PRIMARY KEY,
    holder TEXT NOT NULL,
    acquired_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
"#,
        sqlite: r#"
CREATE TABLE IF NOT EXISTS cinematch_leases (
    name VARCHAR(50) PRIMARY KEY CHECK (length(name) <= 50),
    holder TEXT NOT NULL,
    acquired_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
"#,
    },
    Migration {
        version: "1.6",
        description: "model_evaluations (ranking metrics of every run as columns) and tuning_trials",
        // The spec's model_metrics keeps its columns and their meaning (a
        // ranking model's rmse is NULL); the metrics that judge the lists
        // users see get their own table, one row per run, so that
        // `ORDER BY ndcg_at_10 DESC` works in SQL like the spec's
        // `ORDER BY rmse ASC`.
        postgres: r#"
CREATE TABLE IF NOT EXISTS model_evaluations (
    model_version VARCHAR(50) PRIMARY KEY,
    algorithm VARCHAR(20) NOT NULL,
    ndcg_at_10 FLOAT,
    recall_at_10 FLOAT,
    catalogue_precision_at_10 FLOAT,
    coverage FLOAT,
    users_evaluated INTEGER,
    users_eligible INTEGER,
    test_ratings INTEGER
);
CREATE TABLE IF NOT EXISTS tuning_trials (
    id SERIAL PRIMARY KEY,
    study VARCHAR(50) NOT NULL,
    trial INTEGER NOT NULL,
    algorithm VARCHAR(20) NOT NULL,
    params TEXT NOT NULL,
    objective VARCHAR(20) NOT NULL,
    value FLOAT,
    validation_ratings INTEGER NOT NULL,
    seconds FLOAT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"#,
        sqlite: r#"
CREATE TABLE IF NOT EXISTS model_evaluations (
    model_version VARCHAR(50) PRIMARY KEY,
    algorithm VARCHAR(20) NOT NULL,
    ndcg_at_10 FLOAT,
    recall_at_10 FLOAT,
    catalogue_precision_at_10 FLOAT,
    coverage FLOAT,
    users_evaluated INTEGER,
    users_eligible INTEGER,
    test_ratings INTEGER
);
CREATE TABLE IF NOT EXISTS tuning_trials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study VARCHAR(50) NOT NULL,
    trial INTEGER NOT NULL,
    algorithm VARCHAR(20) NOT NULL,
    params TEXT NOT NULL,
    objective VARCHAR(20) NOT NULL,
    value FLOAT,
    validation_ratings INTEGER NOT NULL,
    seconds FLOAT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"#,
    },
    Migration {
        version: "1.7",
        description: "idempotent API writes (api_idempotency) and the change log servers follow (data_versions, data_changes)",
        // `api_idempotency`: a retried POST /api/ratings with the same
        // Idempotency-Key answers what the first attempt answered and stores
        // nothing new, across every server sharing the database; the key is
        // written in the same transaction as the ratings.
        // `data_changes`: every transaction that appends to, merges or
        // clears the buffer or loads a dataset records one row, numbered by
        // the counter in `data_versions`, which it updates last, so the
        // numbers follow commit order; a server reads what is newer than
        // the last number it saw (the appended rows are found again by
        // their batch and `ingested_at`) instead of the whole buffer.
        postgres: r#"
CREATE TABLE IF NOT EXISTS api_idempotency (
    idempotency_key VARCHAR(255) PRIMARY KEY,
    request_hash CHAR(64) NOT NULL,
    status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_idempotency_created ON api_idempotency(created_at);
CREATE TABLE IF NOT EXISTS data_versions (
    name VARCHAR(50) PRIMARY KEY,
    version BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS data_changes (
    version BIGINT PRIMARY KEY,
    kind VARCHAR(10) NOT NULL CHECK (kind IN ('append', 'merge', 'clear', 'load')),
    batch_id VARCHAR(50),
    ingested_at TIMESTAMP,
    row_count BIGINT NOT NULL,
    changed_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"#,
        sqlite: r#"
CREATE TABLE IF NOT EXISTS api_idempotency (
    idempotency_key VARCHAR(255) PRIMARY KEY CHECK (length(idempotency_key) <= 255),
    request_hash CHAR(64) NOT NULL,
    status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_idempotency_created ON api_idempotency(created_at);
CREATE TABLE IF NOT EXISTS data_versions (
    name VARCHAR(50) PRIMARY KEY,
    version BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS data_changes (
    version BIGINT PRIMARY KEY,
    kind VARCHAR(10) NOT NULL CHECK (kind IN ('append', 'merge', 'clear', 'load')),
    batch_id VARCHAR(50),
    ingested_at TIMESTAMP,
    row_count BIGINT NOT NULL,
    changed_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"#,
    },
    Migration {
        version: "1.8",
        description: "backtest results (backtests): a time-ordered replay's weekly scores per retraining policy",
        // One row per policy of a `cinematch backtest`: the whole result as
        // JSON (per week and the means, the policy, the models and their
        // hyperparameters), so the dashboard can chart the latest one and
        // SQL can list them; `backtest_id` groups the policies of one run.
        postgres: r#"
CREATE TABLE IF NOT EXISTS backtests (
    id SERIAL PRIMARY KEY,
    backtest_id VARCHAR(64) NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    policy VARCHAR(32) NOT NULL,
    source TEXT NOT NULL,
    served_ndcg_at_10 FLOAT,
    most_rated_ndcg_at_10 FLOAT,
    trending_ndcg_at_10 FLOAT,
    report TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_backtests_created ON backtests(created_at);
"#,
        sqlite: r#"
CREATE TABLE IF NOT EXISTS backtests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    backtest_id VARCHAR(64) NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    policy VARCHAR(32) NOT NULL,
    source TEXT NOT NULL,
    served_ndcg_at_10 FLOAT,
    most_rated_ndcg_at_10 FLOAT,
    trending_ndcg_at_10 FLOAT,
    report TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_backtests_created ON backtests(created_at);
"#,
    },
    Migration {
        version: "1.9",
        description: "title search folds diacritics on PostgreSQL as SQLite's FTS5 does (pokemon finds Pokémon)",
        // The 1.4 index again, on the expression that also maps accented
        // Latin letters to their base letters ([`fold_from`]); the search
        // folds the query's words with the same table. SQLite's movies_fts
        // folds them already.
        postgres: concat!(
            "DROP INDEX IF EXISTS idx_movies_title_fts;\n",
            "CREATE INDEX idx_movies_title_fts ON movies USING GIN(",
            title_tsvector!("title"),
            ");\n"
        ),
        sqlite: "",
    },
];

/// [`fold_from`]'s letters, for tests that spell out the index definition.
pub const FOLD_FROM: &str = fold_from!();
/// [`fold_to`]'s letters.
pub const FOLD_TO: &str = fold_to!();
/// [`fold_marks`]' combining marks.
pub const FOLD_MARKS: &str = fold_marks!();

/// Folds the letters of [`fold_from`] to their base letters ([`fold_to`])
/// and drops [`fold_marks`], as the title index does on PostgreSQL (and
/// FTS5 on SQLite); every other character is kept.
pub fn fold_diacritics(s: &str) -> String {
    s.chars()
        .filter(|c| !FOLD_MARKS.contains(*c))
        .map(|c| {
            FOLD_FROM
                .chars()
                .position(|f| f == c)
                .and_then(|i| FOLD_TO.chars().nth(i))
                .unwrap_or(c)
        })
        .collect()
}

/// The version a fully migrated database reports.
pub fn latest_version() -> &'static str {
    MIGRATIONS.last().map(|m| m.version).unwrap_or("0")
}

/// Orders `major.minor` versions numerically ("1.10" after "1.9").
pub(crate) fn version_key(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// The spec's tables first, in the spec's order, then CineMatch's own.
pub(crate) fn ordered_tables(mut names: Vec<String>) -> Vec<String> {
    names.sort_by_key(|n| {
        (
            SPEC_TABLES
                .iter()
                .position(|t| t == n)
                .unwrap_or(usize::MAX),
            n.clone(),
        )
    });
    names
}
