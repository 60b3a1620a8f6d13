use super::diagnose::presented_name;
use super::params::percent_decode;
use super::*;

#[test]
fn redacts_url_passwords() {
    let cases = [
        (
            "postgres://user:secret@host/db",
            "postgres://user:***@host/db",
        ),
        (
            "postgresql://user:secret@host:5433/db?sslmode=require",
            "postgresql://user:***@host:5433/db?sslmode=require",
        ),
        ("postgres://user@host/db", "postgres://user@host/db"),
        ("postgres://host/db", "postgres://host/db"),
        ("postgres://host:5432/db", "postgres://host:5432/db"),
        (
            "postgres://user:p%40ss@host/db",
            "postgres://user:***@host/db",
        ),
        // Raw '@' (invalid but common): nothing after the first '@' leaks.
        (
            "postgres://user:p@ss@host/db",
            "postgres://user:***@host/db",
        ),
        (
            "postgres://user:p?x@host/db?sslmode=disable",
            "postgres://user:***@host/db?sslmode=disable",
        ),
        ("postgres://user:@host/db", "postgres://user:@host/db"),
        // Quotes are legal (') or at least possible in a raw password.
        ("postgres://u:it's@h/db", "postgres://u:***@h/db"),
        (
            "postgres://u:a\"b`c<d@h/db?x=1",
            "postgres://u:***@h/db?x=1",
        ),
        (
            "opening 'postgres://u:it's@h/db' failed",
            "opening 'postgres://u:***@h/db' failed",
        ),
        (
            "error connecting to postgres://a:b@h/d: refused",
            "error connecting to postgres://a:***@h/d: refused",
        ),
        (
            "'postgres://a:b@h/d' and \"postgresql://c:d@e/f\"",
            "'postgres://a:***@h/d' and \"postgresql://c:***@e/f\"",
        ),
        ("no url here", "no url here"),
        ("", ""),
    ];
    for (input, want) in cases {
        assert_eq!(redact(input), want, "redact({input:?})");
    }
}

#[test]
fn redacts_key_value_passwords() {
    let cases = [
        (
            "host=h password=secret dbname=d",
            "host=h password=*** dbname=d",
        ),
        (
            "host=h password = secret dbname=d",
            "host=h password = *** dbname=d",
        ),
        (
            "host=h password='s e c\\'ret' dbname=d",
            "host=h password='***' dbname=d",
        ),
        ("password=secret", "password=***"),
        ("PASSWORD=secret", "PASSWORD=***"),
        ("PGPASSWORD=secret psql", "PGPASSWORD=*** psql"),
        ("sslpassword=secret", "sslpassword=***"),
        (
            "postgres://h/db?password=secret&sslmode=require",
            "postgres://h/db?password=***&sslmode=require",
        ),
        (
            "postgres://h/db?sslmode=require&password=se%26cret",
            "postgres://h/db?sslmode=require&password=***",
        ),
        (
            "password authentication failed for user \"bob\"",
            "password authentication failed for user \"bob\"",
        ),
        ("passwords=x", "passwords=x"),
        ("host=h user=u", "host=h user=u"),
        // Key/value values may contain '&'; only URL queries end at it.
        ("password=a&b host=h", "password=*** host=h"),
        ("password=it's\"x host=h", "password=*** host=h"),
        (
            "postgres://h/db?password=it's&sslmode=require",
            "postgres://h/db?password=***&sslmode=require",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(redact(input), want, "redact({input:?})");
    }
}

#[test]
fn redact_is_idempotent() {
    for s in ["postgres://u:p@h/d?password=x", "password='a b' host=h"] {
        let once = redact(s);
        assert_eq!(redact(&once), once);
    }
}

#[test]
fn parses_sslmodes() {
    let cases = [
        ("postgres://u@h/d", SslMode::Require),
        ("postgres://u@localhost/d", SslMode::Prefer),
        ("postgres://u@h/d?sslmode=disable", SslMode::Disable),
        ("postgres://u@h/d?sslmode=prefer", SslMode::Prefer),
        ("postgres://u@h/d?sslmode=require", SslMode::Require),
        ("postgresql://u@h/d?sslmode=verify-ca", SslMode::VerifyCa),
        (
            "postgresql://u@h/d?application_name=x&sslmode=verify-full",
            SslMode::VerifyFull,
        ),
        ("host=h dbname=d sslmode=verify-full", SslMode::VerifyFull),
        ("host=h dbname=d sslmode='require'", SslMode::Require),
    ];
    for (url, want) in cases {
        let t = PgTarget::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(t.ssl_mode, want, "{url}");
    }
    let pg = |url: &str| PgTarget::parse(url).unwrap().config.get_ssl_mode();
    assert_eq!(
        pg("postgres://h/d?sslmode=disable"),
        postgres::config::SslMode::Disable
    );
    assert_eq!(pg("postgres://h/d"), postgres::config::SslMode::Require);
    assert_eq!(
        pg("postgres://localhost/d"),
        postgres::config::SslMode::Prefer
    );
    assert_eq!(
        pg("postgres://h/d?sslmode=verify-ca"),
        postgres::config::SslMode::Require
    );
}

#[test]
fn rejects_bad_sslmodes() {
    let err = PgTarget::parse("postgres://u:pw@h/d?sslmode=verify").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Config(_)), "{msg}");
    assert!(msg.contains("\"verify\""), "{msg}");
    assert!(
        msg.contains("disable, prefer, require, verify-ca, verify-full"),
        "{msg}"
    );
    let msg = PgTarget::parse("host=h sslmode=allow")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("allow is not supported"), "{msg}");
    let msg = PgTarget::parse("postgres://h/d?sslcrl=/x")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("sslcrl is not supported"), "{msg}");
    let msg = PgTarget::parse("postgres://h/d?sslcert=/x")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("sslcert and sslkey"), "{msg}");
    let msg = PgTarget::parse("postgres://h/d?sslrootcert=system&sslmode=require")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("verify-full"), "{msg}");
}

#[test]
fn unknown_option_is_a_config_error_without_password() {
    let err = PgTarget::parse("postgres://u:hunter2@h/d?frobnicate=1").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Config(_)), "{msg}");
    assert!(msg.contains("frobnicate"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn parses_url_parts() {
    let t = PgTarget::parse(
        "postgresql://b%40b:p%40ss%2Fw@db.example:6543/cine%20match?sslmode=verify-ca&sslrootcert=/etc/ca%2Bx.pem&application_name=cm&connect_timeout=3",
    )
    .unwrap();
    assert_eq!(t.config.get_user(), Some("b@b"));
    assert_eq!(t.config.get_password(), Some(&b"p@ss/w"[..]));
    assert_eq!(t.config.get_dbname(), Some("cine match"));
    assert_eq!(t.config.get_hosts(), &[Host::Tcp("db.example".into())]);
    assert_eq!(t.config.get_ports(), &[6543]);
    assert_eq!(t.config.get_application_name(), Some("cm"));
    assert_eq!(
        t.config.get_connect_timeout(),
        Some(&Duration::from_secs(3))
    );
    assert_eq!(t.root_cert, Some(PathBuf::from("/etc/ca+x.pem")));
    assert_eq!(t.ssl_mode, SslMode::VerifyCa);
    assert!(!t.display().contains("p%40ss"), "{}", t.display());
}

#[test]
fn parses_key_value_strings() {
    let t = PgTarget::parse(
        "host=localhost port=5433 dbname=cm user=bob password='a b\\'c' sslmode=verify-full sslrootcert='/tmp/my ca.pem'",
    )
    .unwrap();
    assert_eq!(t.config.get_password(), Some(&b"a b'c"[..]));
    assert_eq!(t.config.get_ports(), &[5433]);
    assert_eq!(t.config.get_user(), Some("bob"));
    assert_eq!(t.root_cert, Some(PathBuf::from("/tmp/my ca.pem")));
    assert_eq!(t.ssl_mode, SslMode::VerifyFull);
    assert_eq!(t.display(), "host=localhost port=5433 dbname=cm user=bob password='***' sslmode=verify-full sslrootcert='/tmp/my ca.pem'");
}

#[test]
fn defaults() {
    let t = PgTarget::parse("postgres:///cm").unwrap();
    assert_eq!(t.config.get_hosts(), &[Host::Tcp("localhost".into())]);
    assert_eq!(
        t.config.get_connect_timeout(),
        Some(&DEFAULT_CONNECT_TIMEOUT)
    );
    let t = PgTarget::parse("postgres://h/cm?connect_timeout=0").unwrap();
    assert_eq!(
        t.config.get_connect_timeout(),
        None,
        "0 means wait forever, as in libpq"
    );
    #[cfg(unix)]
    {
        let t = PgTarget::parse("host=/var/run/postgresql sslmode=require").unwrap();
        assert_eq!(t.config.get_ssl_mode(), postgres::config::SslMode::Disable);
        assert_eq!(t.ssl_mode, SslMode::Require);
    }
}

#[test]
fn default_sslmode_is_require_except_on_this_machine() {
    let mode = |url: &str| {
        PgTarget::parse(url)
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .ssl_mode
    };
    for url in [
        "postgres://u@localhost/d",
        "postgres://u@LOCALHOST:5433/d",
        "postgres://u@127.0.0.1/d",
        "postgres://u@127.8.9.10/d",
        "postgres://u@[::1]:5432/d",
        "postgres:///d",
        "host=localhost,127.0.0.1 dbname=d",
        "host=localhost hostaddr=127.0.0.1 dbname=d",
    ] {
        assert_eq!(mode(url), SslMode::Prefer, "{url}");
    }
    #[cfg(unix)]
    assert_eq!(
        mode("host=/var/run/postgresql dbname=d"),
        SslMode::Prefer,
        "a Unix socket"
    );
    for url in [
        "postgres://u@db.example/d",
        "postgres://u:pw@ep-cool-name-123.eu-central-1.aws.neon.tech/neondb",
        "postgres://u@10.0.0.5/d",
        "postgres://u@[2001:db8::1]/d",
        "postgres://u@localhost.example.com/d",
        // Any remote endpoint makes the whole URL remote.
        "host=localhost,db.example dbname=d",
        // Connected by address: the address decides too.
        "host=localhost hostaddr=192.0.2.7 dbname=d",
    ] {
        assert_eq!(mode(url), SslMode::Require, "{url}");
    }
    // An explicit mode always wins.
    assert_eq!(
        mode("postgres://u@db.example/d?sslmode=prefer"),
        SslMode::Prefer
    );
    assert_eq!(
        mode("postgres://u@localhost/d?sslmode=verify-full"),
        SslMode::VerifyFull
    );
}

#[test]
fn plaintext_to_a_remote_host_is_warned_about() {
    let warn = |url: &str| PgTarget::parse(url).unwrap().plaintext_warning();
    let w = warn("postgres://u:hunter2@db.example:6543/d?sslmode=disable")
        .expect("a warning for plaintext to a remote host");
    assert!(w.contains("db.example:6543"), "{w}");
    assert!(w.contains("not encrypted"), "{w}");
    assert!(!w.contains("hunter2"), "{w}");
    assert_eq!(warn("postgres://u@localhost/d?sslmode=disable"), None);
    assert_eq!(warn("postgres://u@127.0.0.1/d?sslmode=disable"), None);
    assert_eq!(warn("postgres://u@db.example/d"), None, "require");
    assert_eq!(warn("postgres://u@db.example/d?sslmode=verify-full"), None);
}

#[test]
fn presented_names_are_bare() {
    assert_eq!(presented_name("DnsName(\"localhost\")"), "localhost");
    assert_eq!(presented_name("IpAddress(10.0.0.1)"), "10.0.0.1");
    assert_eq!(presented_name("DirectoryName"), "DirectoryName");
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("a%20b+c%2").unwrap(), "a b+c%2");
    assert_eq!(percent_decode("%").unwrap(), "%");
    assert_eq!(percent_decode("%zz").unwrap(), "%zz");
    assert!(percent_decode("%ff").is_err());
}

#[test]
fn unreachable_port_names_endpoint_not_password() {
    // A port that was just free: connecting is refused immediately.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for mode in ["disable", "require", "verify-full"] {
        let url =
            format!("postgres://bob:hunter2@127.0.0.1:{port}/cm?sslmode={mode}&connect_timeout=5");
        let Err(err) = connect(&url) else {
            panic!("connected to a closed port");
        };
        let msg = err.to_string();
        assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
        assert!(msg.contains("database cm, user bob"), "{msg}");
        assert!(msg.contains(&format!("sslmode={mode}")), "{msg}");
        assert!(msg.contains("connection refused"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}

// The live checks against real servers (TLS modes, a wrong CA or host
// name, client certificates) are in tests/tls.rs, run by scripts/test.sh.

/// A password of any printable characters (spaces, quotes, `@`, `:`, `/`,
/// `%`, `\`...) never shows in what is printed of a URL or key/value string
/// that holds it: as given raw, percent-encoded or quoted, in the parsed
/// target's display, through `redact_url`, and through `redact` in free
/// text (a log line that quotes the URL, a message that echoes the
/// password) once a connection string with it was parsed.
#[test]
fn redaction_hides_passwords_of_every_printable_character() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(18);
    let printable: Vec<char> = (0x20u8..=0x7e)
        .map(char::from)
        .chain(['é', 'ß', '€', '漢'])
        .collect();
    let encode = |p: &str| -> String {
        p.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let mut checked = 0;
    for case in 0..3000 {
        let len = rng.random_range(6..24);
        let mut pw: String = (0..len)
            .map(|_| printable[rng.random_range(0..printable.len())])
            .collect();
        // Every printable character appears in some password.
        pw.push(printable[case % printable.len()]);
        pw.push(' ');
        pw.push(printable[(case * 7 + 3) % printable.len()]);
        if pw.contains("://") {
            continue;
        }
        let kv_quoted = pw.replace('\\', "\\\\").replace('\'', "\\'");
        let forms = [
            format!("postgres://spacey:{pw}@db.example.com:5432/app"),
            format!(
                "postgresql://spacey:{}@db.example.com/app?sslmode=disable",
                encode(&pw)
            ),
            format!("host=db.example.com user=spacey password='{kv_quoted}' dbname=app"),
        ];
        for (i, url) in forms.iter().enumerate() {
            let parsed = PgTarget::parse(url).ok();
            let parsed_pw = parsed
                .as_ref()
                .and_then(|t| t.config.get_password())
                .map(|p| String::from_utf8_lossy(p).into_owned());
            if i > 0 {
                // Encoded or quoted, the password parses as it is.
                assert_eq!(parsed_pw.as_deref(), Some(pw.as_str()), "{url:?}");
            }
            let mut shown = vec![
                redact_url(url),
                redact(url),
                redact(&format!(
                    "error: opening the database {url} (from --db): refused"
                )),
            ];
            if let Some(t) = &parsed {
                shown.push(t.display().to_string());
            }
            if parsed_pw.as_deref() == Some(pw.as_str()) {
                shown.push(redact(&format!("FATAL: password \"{pw}\" is not valid")));
            }
            for s in &shown {
                assert!(!s.contains(&pw), "{pw:?} shows in {s:?} (from {url:?})");
                assert!(
                    !s.contains(&encode(&pw)),
                    "{pw:?} shows encoded in {s:?} (from {url:?})"
                );
                if let Some(p) = parsed_pw.as_deref().filter(|p| p.len() >= 6) {
                    assert!(!s.contains(p), "parsed {p:?} shows in {s:?} (from {url:?})");
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 8000, "{checked}");
}

/// The repro: a password with a space.
#[test]
fn a_password_with_a_space_is_hidden() {
    let url = "postgres://spacey:top secret99@host/db";
    let t = PgTarget::parse(url).unwrap();
    assert_eq!(t.config.get_password(), Some(&b"top secret99"[..]));
    assert_eq!(redact_url(url), "postgres://spacey:***@host/db");
    assert_eq!(t.display(), "postgres://spacey:***@host/db");
}
