//! TLS to PostgreSQL against real servers, with libpq's `sslmode` meanings,
//! and passwords that never show. `scripts/test.sh` starts two clusters:
//!
//! * `CINEMATCH_TEST_PG_TLS`: ssl=on with a server certificate for
//!   DNS:localhost only, signed by a CA made for the run
//!   (`CINEMATCH_TEST_CA`; `CINEMATCH_TEST_WRONG_CA` is another CA). TCP
//!   logins need a password; role certuser logs in with a client
//!   certificate (`CINEMATCH_TEST_CLIENT_CERT`/`_KEY`) instead.
//! * `CINEMATCH_TEST_PG`: the main test cluster, without TLS.
//!
//! Every connection that should work is checked for encryption in
//! `pg_stat_ssl`; every one that should fail is checked for a message that
//! names the problem and not the password.

mod common;
#[path = "browser/support.rs"]
mod support;

use std::process::Command;

use cinematch::store::postgres::conn;

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| {
        panic!(
            "{k} is not set: run the tests with ./scripts/test.sh, which starts a PostgreSQL \
             with TLS and a test CA (scripts/pg-cluster.sh, pg_cluster_start_tls)"
        )
    })
}

/// The TLS cluster's parts, from `CINEMATCH_TEST_PG_TLS`.
struct Tls {
    user: String,
    password: String,
    port: u16,
    ca: String,
    wrong_ca: String,
}

fn tls() -> Tls {
    let u = url::Url::parse(&env("CINEMATCH_TEST_PG_TLS")).expect("CINEMATCH_TEST_PG_TLS");
    Tls {
        user: u.username().to_string(),
        password: u
            .password()
            .expect("a password in CINEMATCH_TEST_PG_TLS")
            .to_string(),
        port: u.port().expect("a port in CINEMATCH_TEST_PG_TLS"),
        ca: env("CINEMATCH_TEST_CA"),
        wrong_ca: env("CINEMATCH_TEST_WRONG_CA"),
    }
}

impl Tls {
    /// The admin URL on `host` with `query` (without the `?`).
    fn url(&self, host: &str, query: &str) -> String {
        self.url_db(host, "postgres", query)
    }

    fn url_db(&self, host: &str, db: &str, query: &str) -> String {
        format!(
            "postgres://{}:{}@{host}:{}/{db}?{query}",
            self.user, self.password, self.port
        )
    }
}

/// The plain cluster with `query` appended.
fn plain(query: &str) -> String {
    let base = env("CINEMATCH_TEST_PG");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{query}")
}

/// Connects and returns whether the session is encrypted (and its protocol).
#[track_caller]
fn connects(what: &str, url: &str) -> (bool, Option<String>) {
    let mut c = conn::connect(url).unwrap_or_else(|e| panic!("{what}: expected success: {e}"));
    let row = c
        .query_one(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    let tz: String = c.query_one("SHOW TIME ZONE", &[]).unwrap().get(0);
    assert_eq!(tz, "UTC", "{what}: sessions run in UTC");
    (row.get(0), row.get(1))
}

#[track_caller]
fn encrypted(what: &str, url: &str) {
    let (ssl, version) = connects(what, url);
    assert!(ssl, "{what}: the session is not encrypted");
    let v = version.unwrap_or_default();
    assert!(
        v.starts_with("TLSv1.2") || v.starts_with("TLSv1.3"),
        "{what}: {v}"
    );
}

#[track_caller]
fn plaintext(what: &str, url: &str) {
    assert!(!connects(what, url).0, "{what}: expected no TLS");
}

/// Fails with a message containing every one of `want`, without `secret`.
#[track_caller]
fn refused(what: &str, url: &str, want: &[&str], secret: &str) -> String {
    let msg = match conn::connect(url) {
        Ok(_) => panic!("{what}: expected a refusal, but it connected"),
        Err(e) => e.to_string(),
    };
    for w in want {
        assert!(msg.contains(w), "{what}: {msg:?} should mention {w:?}");
    }
    assert!(
        !msg.contains(secret),
        "{what}: the message shows the password: {msg}"
    );
    msg
}

#[test]
fn require_connects_encrypted() {
    let t = tls();
    for host in ["localhost", "127.0.0.1"] {
        encrypted(
            &format!("require via {host}"),
            &t.url(host, "sslmode=require"),
        );
    }
    // libpq's default (prefer) uses TLS when the server offers it.
    encrypted("prefer", &t.url("127.0.0.1", "sslmode=prefer"));
    encrypted("no sslmode", &t.url("127.0.0.1", ""));
    plaintext("disable", &t.url("127.0.0.1", "sslmode=disable"));
}

#[test]
fn verify_full_with_the_right_ca_connects() {
    let t = tls();
    encrypted(
        "verify-full via localhost",
        &t.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", t.ca),
        ),
    );
    // verify-ca checks the chain only, so the IP address is fine.
    encrypted(
        "verify-ca via 127.0.0.1",
        &t.url(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={}", t.ca),
        ),
    );
    // The same as a libpq key/value string.
    encrypted(
        "key/value verify-full",
        &format!(
            "host=localhost port={} dbname=postgres user={} password='{}' sslmode=verify-full sslrootcert='{}'",
            t.port, t.user, t.password, t.ca
        ),
    );
}

#[test]
fn a_wrong_ca_is_refused_naming_the_certificate_problem() {
    let t = tls();
    let not_signed = format!("not signed by a CA in sslrootcert {}", t.wrong_ca);
    refused(
        "verify-full, wrong CA",
        &t.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", t.wrong_ca),
        ),
        &[
            &not_signed,
            "set sslrootcert to the CA that issued it",
            "sslmode=verify-full",
        ],
        &t.password,
    );
    refused(
        "verify-ca, wrong CA",
        &t.url(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={}", t.wrong_ca),
        ),
        &[&not_signed],
        &t.password,
    );
    // As in libpq, require with a root certificate verifies the chain.
    refused(
        "require with a wrong sslrootcert",
        &t.url(
            "127.0.0.1",
            &format!("sslmode=require&sslrootcert={}", t.wrong_ca),
        ),
        &[&not_signed],
        &t.password,
    );
    refused(
        "verify-full, missing CA file",
        &t.url(
            "localhost",
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ),
        &["cannot read sslrootcert /nonexistent/ca.pem"],
        &t.password,
    );
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    refused(
        "verify-full, a CA file without certificates",
        &t.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", junk.display()),
        ),
        &["contains no PEM certificates"],
        &t.password,
    );
    // libpq's prefer would retry without TLS after the failed verification,
    // which lets anyone on the path force plaintext: here it is an error,
    // although this server also accepts plaintext logins (pg_hba `host`).
    for (host, query) in [
        (
            "127.0.0.1",
            format!("sslmode=prefer&sslrootcert={}", t.wrong_ca),
        ),
        // Loopback without sslmode means prefer: the same.
        ("localhost", format!("sslrootcert={}", t.wrong_ca)),
    ] {
        refused(
            &format!("prefer with a wrong sslrootcert via {host}"),
            &t.url(host, &query),
            &[
                &not_signed,
                "sslmode=prefer does not retry in plaintext after a TLS failure",
            ],
            &t.password,
        );
    }
    // And the CLI: an error (exit 1), not a plaintext session.
    let out = Command::new(env!("CARGO_BIN_EXE_cinematch"))
        .args([
            "--db",
            &t.url(
                "127.0.0.1",
                &format!("sslmode=prefer&sslrootcert={}", t.wrong_ca),
            ),
            "db",
            "status",
        ])
        .env_remove("CINEMATCH_DB")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&not_signed), "{stderr}");
    assert!(!stderr.contains("retrying without TLS"), "{stderr}");
    assert!(!stderr.contains(&t.password), "{stderr}");
}

#[test]
fn a_wrong_host_name_is_refused() {
    let t = tls();
    // The certificate names localhost only.
    refused(
        "verify-full via 127.0.0.1",
        &t.url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={}", t.ca),
        ),
        &[
            "certificate is not valid for name \"127.0.0.1\"",
            "it is valid for localhost",
            "sslmode=verify-full",
        ],
        &t.password,
    );
}

#[test]
fn require_against_a_server_without_tls_fails_clearly() {
    for mode in ["require", "verify-ca", "verify-full"] {
        refused(
            &format!("{mode} against the plain cluster"),
            &plain(&format!("sslmode={mode}")),
            &[
                &format!("the server does not support TLS but sslmode={mode}"),
                "cannot connect to PostgreSQL at 127.0.0.1:",
            ],
            "\u{0}",
        );
    }
    for query in ["sslmode=prefer", "sslmode=disable", ""] {
        plaintext(
            &format!("{query:?} against the plain cluster"),
            &plain(query),
        );
    }
    // The CLI says the same, exits 1, and does not panic.
    let out = Command::new(env!("CARGO_BIN_EXE_cinematch"))
        .args(["--db", &plain("sslmode=require"), "db", "status"])
        .env_remove("CINEMATCH_DB")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the server does not support TLS but sslmode=require"),
        "{stderr}"
    );
}

#[test]
fn wrong_password_is_refused_without_showing_it() {
    let t = tls();
    let wrong = format!("not-{}", t.password);
    let url = format!(
        "postgres://{}:{wrong}@127.0.0.1:{}/postgres?sslmode=require",
        t.user, t.port
    );
    refused(
        "wrong password",
        &url,
        &["password authentication failed for user \"postgres\""],
        &wrong,
    );
}

#[test]
fn client_certificate_logs_in() {
    let t = tls();
    let (cert, key) = (
        env("CINEMATCH_TEST_CLIENT_CERT"),
        env("CINEMATCH_TEST_CLIENT_KEY"),
    );
    let base = format!(
        "postgres://certuser@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        t.port, t.ca
    );
    encrypted(
        "client certificate",
        &format!("{base}&sslcert={cert}&sslkey={key}"),
    );
    refused(
        "no client certificate",
        &base,
        &["FATAL", "certificate"],
        &t.password,
    );
}

/// A database on the TLS cluster owned by a role of its own, whose password
/// contains a token that must never be printed.
struct Canary {
    admin: postgres::Client,
    db: String,
    role: String,
    /// The alphanumeric heart of the password: any leak of it, raw or
    /// percent-encoded, contains this.
    token: String,
    password: String,
}

impl Canary {
    fn new() -> Canary {
        let t = tls();
        let n = format!(
            "{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let token = format!("LeakCanary{}", n.replace('_', ""));
        let password = format!("{token}'\\\"@:/?&#%pw");
        let (db, role) = (format!("cm_tls_{n}"), format!("cm_tls_user_{n}"));
        let mut admin = conn::connect(&t.url("localhost", "sslmode=require")).unwrap();
        let lit = cinematch::store::roles::quote_literal(&password).unwrap();
        // CREATE DATABASE cannot share a transaction (one simple query) with anything.
        admin
            .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD {lit}"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {db} OWNER {role}"))
            .unwrap();
        Canary {
            admin,
            db,
            role,
            token,
            password,
        }
    }

    /// A URL as the canary role, password percent-encoded as URLs need.
    fn url(&self, host: &str, password: &str, query: &str) -> String {
        let t = tls();
        let mut u = url::Url::parse(&format!(
            "postgres://placeholder@{host}:{}/{}",
            t.port, self.db
        ))
        .unwrap();
        u.set_username(&self.role).unwrap();
        u.set_password(Some(password)).unwrap();
        if !query.is_empty() {
            u.set_query(Some(query));
        }
        u.to_string()
    }

    /// Panics if `text` shows the password (or the wrong one) in any form.
    #[track_caller]
    fn assert_hidden(&self, what: &str, text: &str) {
        assert!(
            !text.contains(&self.token),
            "{what} shows the password: {text}"
        );
        assert!(
            !text.contains("%27%5C"),
            "{what} shows the encoded password: {text}"
        );
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db));
        let _ = self
            .admin
            .batch_execute(&format!("DROP ROLE IF EXISTS {}", self.role));
    }
}

fn cinematch(db: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cinematch"));
    cmd.arg("--db")
        .arg(db)
        .args(args)
        .env_remove("CINEMATCH_DB")
        .env_remove("DATABASE_URL")
        .env_remove("NEON_CONNECTION_STRING")
        // No ~/.postgresql/root.crt of the developer's in the way.
        .env("HOME", home.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cinematch");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn passwords_never_appear_in_errors_logs_db_status_or_the_dashboard() {
    let t = tls();
    let c = Canary::new();
    let verify = format!("sslmode=verify-full&sslrootcert={}", t.ca);
    let good = c.url("localhost", &c.password, &verify);
    let wrong_password = format!("{}-wrong", c.password);
    let bad = c.url("localhost", &wrong_password, &verify);
    let debug = [("CINEMATCH_LOG", "debug")];

    // In-process errors.
    let msg = refused(
        "wrong password",
        &bad,
        &["password authentication failed"],
        &c.token,
    );
    c.assert_hidden("the connection error", &msg);

    // The CLI, with debug logging: success, wrong password, TLS failure,
    // unreachable port, and the key/value and ?password= spellings.
    let (code, out, err) = cinematch(&good, &["db", "status"], &debug);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&format!("{}:***@localhost", c.role)), "{out}");
    assert!(out.contains("schema version:"), "{out}");
    c.assert_hidden("db status", &out);
    c.assert_hidden("db status logs", &err);
    let (code, out, err) = cinematch(&bad, &["db", "status"], &debug);
    assert_eq!(code, Some(1));
    assert!(err.contains("password authentication failed"), "{err}");
    c.assert_hidden("db status with a wrong password", &format!("{out}{err}"));
    let wrong_ca = c.url(
        "localhost",
        &c.password,
        &format!("sslmode=verify-full&sslrootcert={}", t.wrong_ca),
    );
    let (code, out, err) = cinematch(&wrong_ca, &["db", "status"], &debug);
    assert_eq!(code, Some(1));
    assert!(err.contains("not signed by a CA"), "{err}");
    c.assert_hidden("a TLS failure", &format!("{out}{err}"));
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let unreachable = good.replace(&format!(":{}/", t.port), &format!(":{closed}/"));
    let (code, out, err) = cinematch(&unreachable, &["db", "status"], &debug);
    assert_eq!(code, Some(1));
    assert!(err.contains("connection refused"), "{err}");
    c.assert_hidden("an unreachable server", &format!("{out}{err}"));
    let kv_password = c.password.replace('\\', "\\\\").replace('\'', "\\'");
    let kv = format!(
        "host=localhost port={} dbname={} user={} password='{kv_password}' sslmode=verify-full sslrootcert={}",
        t.port, c.db, c.role, t.ca
    );
    let (code, out, err) = cinematch(&kv, &["db", "status"], &debug);
    assert_eq!(code, Some(0), "{out}{err}");
    c.assert_hidden("db status (key/value)", &format!("{out}{err}"));
    let (code, out, err) = cinematch(
        &kv.replace("dbname=", "dbname=x"),
        &["db", "status"],
        &debug,
    );
    assert_eq!(code, Some(1), "{out}");
    c.assert_hidden("a key/value error", &format!("{out}{err}"));
    let query_password = format!(
        "postgres://{}@localhost:{}/{}?{verify}&password={}",
        c.role,
        t.port,
        c.db,
        url::form_urlencoded::byte_serialize(wrong_password.as_bytes()).collect::<String>()
    );
    let (code, out, err) = cinematch(&query_password, &["db", "status"], &debug);
    assert_eq!(code, Some(1));
    c.assert_hidden("?password= in the URL", &format!("{out}{err}"));
    // Through the environment instead of --db: the same.
    let (code, out, err) = cinematch("", &["db", "stats"], &[("CINEMATCH_DB", &good)]);
    assert_eq!(code, Some(0), "{out}{err}");
    c.assert_hidden("db stats from CINEMATCH_DB", &format!("{out}{err}"));

    // The dashboard and every monitoring endpoint of a server given the URL.
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("r");
    let release_s = release.to_str().unwrap();
    for args in [
        vec![
            "data",
            "synth",
            "--out",
            release_s,
            "--users",
            "100",
            "--movies",
            "60",
            "--ratings",
            "3000",
        ],
        vec!["load", release_s],
        vec!["train", "--algo", "baseline", "--no-ranking"],
    ] {
        let (code, out, err) = cinematch(&good, &args, &[]);
        assert_eq!(code, Some(0), "{args:?}: {out}{err}");
        c.assert_hidden("the CLI", &format!("{out}{err}"));
    }
    {
        let server = support::TestServer::start(&good, |_| {});
        server.wait_ready();
        for path in [
            "/",
            "/api/status",
            "/api/models",
            "/api/ingestions",
            "/readyz",
            "/metrics",
            "/api/openapi.json",
        ] {
            let r = server.get(path);
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            c.assert_hidden(path, &r.text());
            assert!(
                !r.text().contains(&c.role),
                "{path} shows the database user"
            );
        }
    }
    // A server whose password is wrong: 503s, still without the password.
    let server = support::TestServer::start(&bad, |_| {});
    for path in ["/", "/api/status", "/readyz", "/api/models", "/metrics"] {
        let r = server.get(path);
        assert!(r.status == 503 || r.status == 200, "{path}: {}", r.status);
        c.assert_hidden(path, &r.text());
    }
}
