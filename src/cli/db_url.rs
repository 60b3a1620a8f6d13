//! Where the database is: `--db`, then the environment, then the embedded default.

use cinematch::store::DEFAULT_DB_URL;

/// Environment variables consulted, in order, when `--db` is not given.
/// `NEON_CONNECTION_STRING` is the spec's own variable.
pub const DB_ENV_VARS: &[&str] = &["CINEMATCH_DB", "DATABASE_URL", "NEON_CONNECTION_STRING"];

/// Picks the database URL and says where it came from (for `db status`).
pub fn resolve_db_url(flag: Option<&str>) -> (String, &'static str) {
    resolve_with(flag, |k| std::env::var(k).ok())
}

/// [`resolve_db_url`] with an injectable environment, so tests need not
/// mutate the process environment.
pub fn resolve_with(
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> (String, &'static str) {
    if let Some(url) = flag.filter(|s| !s.trim().is_empty()) {
        return (url.to_string(), "--db");
    }
    for var in DB_ENV_VARS {
        if let Some(url) = env(var).filter(|s| !s.trim().is_empty()) {
            return (url, var);
        }
    }
    (DEFAULT_DB_URL.to_string(), "default")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_flag_then_env_in_order_then_default() {
        let env = |k: &str| match k {
            "DATABASE_URL" => Some("postgres://a@h/db".to_string()),
            "NEON_CONNECTION_STRING" => Some("postgres://neon@h/db".to_string()),
            _ => None,
        };
        assert_eq!(resolve_with(Some("sqlite://x.db"), env).0, "sqlite://x.db");
        assert_eq!(
            resolve_with(None, env),
            ("postgres://a@h/db".into(), "DATABASE_URL")
        );
        let neon_only =
            |k: &str| (k == "NEON_CONNECTION_STRING").then(|| "postgres://n@h/d".to_string());
        assert_eq!(resolve_with(None, neon_only).1, "NEON_CONNECTION_STRING");
        let cm = |k: &str| Some(format!("sqlite://{k}.db"));
        assert_eq!(resolve_with(None, cm).0, "sqlite://CINEMATCH_DB.db");
        assert_eq!(
            resolve_with(Some("  "), |_| None),
            (DEFAULT_DB_URL.into(), "default")
        );
    }
}
