//! The spec's PostgreSQL roles ("Security & Access"), as `cinematch db roles`
//! creates them:
//!
//! * `analyst`: `SELECT` on every table, nothing else.
//! * `ml_pipeline`: `SELECT, INSERT, UPDATE, DELETE` on every table as the
//!   spec says, plus what CineMatch's own commands need: `TRUNCATE` (`load
//!   --replace` swaps the dataset with it) and `USAGE, SELECT` on the
//!   sequences behind the `SERIAL` ids. Advisory locks (the pipeline and
//!   migration locks) need no privilege. Neither role may create, alter or
//!   drop anything: the schema stays with the role that migrates it.
//!
//! `ALTER DEFAULT PRIVILEGES` extends the same grants to tables and sequences
//! that later migrations create, so upgrading the schema never locks the
//! pipeline out.
//!
//! Everything happens in one transaction and converges: running it again
//! re-creates exactly these privileges (revoking anything extra a role was
//! given by hand on CineMatch's tables) and changes a password only when one
//! is given. Role names are fixed (they are the spec's); passwords never
//! travel as SQL text: `CREATE ROLE ... PASSWORD` takes no bind parameter,
//! so the client hashes the password into a SCRAM-SHA-256 verifier (as
//! `psql`'s `\password` does) and only that, quoted by [`quote_literal`],
//! reaches the server and its statement log.

use std::fmt;

use postgres::error::SqlState;
use postgres::{Client, Transaction};

use crate::{Error, Result};

/// One of the spec's two roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Read-only, for analysts.
    Analyst,
    /// Read-write on rows, for the ML pipeline.
    MlPipeline,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Analyst, Role::MlPipeline];

    /// The role name in PostgreSQL.
    pub fn name(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::MlPipeline => "ml_pipeline",
        }
    }

    /// The environment variable `db roles` reads the password from.
    pub fn password_env(self) -> &'static str {
        match self {
            Role::Analyst => "CINEMATCH_ANALYST_PASSWORD",
            Role::MlPipeline => "CINEMATCH_ML_PIPELINE_PASSWORD",
        }
    }

    /// Privileges on every table of the schema, present and future.
    pub fn table_privileges(self) -> &'static str {
        match self {
            Role::Analyst => "SELECT",
            Role::MlPipeline => "SELECT, INSERT, UPDATE, DELETE, TRUNCATE",
        }
    }

    /// Privileges on every sequence of the schema, present and future.
    pub fn sequence_privileges(self) -> Option<&'static str> {
        match self {
            Role::Analyst => None,
            Role::MlPipeline => Some("USAGE, SELECT"),
        }
    }

    fn may_write(self) -> bool {
        self == Role::MlPipeline
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to do with a role's password.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// Set this password (creating the role if needed).
    Set(String),
    /// Keep the password an existing role has; a missing role is an error.
    Keep,
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Password::Set(_) => f.write_str("Set(***)"),
            Password::Keep => f.write_str("Keep"),
        }
    }
}

/// What `apply` did for one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleOutcome {
    pub role: Role,
    /// Created now (else it existed and was updated).
    pub created: bool,
    pub password_set: bool,
    /// Role attributes that were changed back to what the role must have
    /// (e.g. `NOCREATEDB`).
    pub attributes_fixed: Vec<String>,
    pub database: String,
    pub schema: String,
    /// Tables (and views) of the schema the grants cover now.
    pub tables: usize,
    pub sequences: usize,
    /// The roles whose future tables the default privileges cover.
    pub default_privileges_for: Vec<String>,
}

/// The result of [`apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolesReport {
    pub roles: Vec<RoleOutcome>,
    /// Things the grants cannot fix, for the operator to know.
    pub warnings: Vec<String>,
}

/// Quotes a string as a PostgreSQL string literal, as libpq's
/// `PQescapeLiteral` does: quotes are doubled, and a string holding a
/// backslash is written as an `E'...'` literal with the backslashes doubled,
/// so its meaning does not depend on `standard_conforming_strings`. NUL
/// cannot be part of a PostgreSQL string and is refused.
pub fn quote_literal(s: &str) -> Result<String> {
    if s.contains('\0') {
        return Err(Error::InvalidArgument(
            "a PostgreSQL string cannot contain a NUL character".into(),
        ));
    }
    let mut out = String::with_capacity(s.len() + 4);
    if s.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

/// Quotes an identifier (`"name"`, inner quotes doubled), for names the
/// server reports (database, schema, owner) that may need it.
pub fn quote_ident(s: &str) -> Result<String> {
    if s.contains('\0') {
        return Err(Error::InvalidArgument(
            "a PostgreSQL identifier cannot contain a NUL character".into(),
        ));
    }
    Ok(format!("\"{}\"", s.replace('"', "\"\"")))
}

/// The password as the server stores it: a salted SCRAM-SHA-256 verifier,
/// so the cleartext never reaches the server, its logs or `pg_stat_activity`.
fn password_verifier(password: &str) -> Result<String> {
    if password.is_empty() {
        // PostgreSQL would store an empty password as "no password" and
        // refuse every login, which is never what was meant.
        return Err(Error::InvalidArgument("the password is empty".into()));
    }
    if password.contains('\0') {
        return Err(Error::InvalidArgument(
            "the password contains a NUL character, which PostgreSQL cannot store".into(),
        ));
    }
    Ok(postgres_protocol::password::scram_sha_256(
        password.as_bytes(),
    ))
}

/// Creates or updates the roles in `passwords` on the database `client` is
/// connected to (its current schema), in one transaction. The connection
/// must belong to a role that may create roles and owns CineMatch's tables:
/// the database owner (on Neon) or a superuser.
pub fn apply(client: &mut Client, passwords: &[(Role, Password)]) -> Result<RolesReport> {
    // Validate the passwords before touching anything.
    let mut prepared: Vec<(Role, Option<String>)> = Vec::new();
    for (role, pw) in passwords {
        let verifier = match pw {
            Password::Set(p) => Some(password_verifier(p).map_err(|e| {
                Error::InvalidArgument(format!("the password for role {role}: {e}"))
            })?),
            Password::Keep => None,
        };
        prepared.push((*role, verifier));
    }
    // Two `db roles` at once (on two databases of one cluster: roles are
    // cluster-wide) can collide on creating the same role or updating its
    // catalog row; the loser's transaction is rolled back whole and simply
    // runs again, finding the role in place.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_apply(client, &prepared) {
            Ok(report) => return Ok(report),
            Err(Failure::Db(e)) if attempt < 5 && is_race(&e) => {
                tracing::debug!(attempt, error = %e, "db roles collided with another; retrying");
                std::thread::sleep(std::time::Duration::from_millis(50 * attempt));
            }
            Err(Failure::Db(e)) => return Err(explain(e)),
            Err(Failure::Other(e)) => return Err(e),
        }
    }
}

enum Failure {
    Db(postgres::Error),
    Other(Error),
}

impl From<postgres::Error> for Failure {
    fn from(e: postgres::Error) -> Self {
        Failure::Db(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Other(e)
    }
}

fn is_race(e: &postgres::Error) -> bool {
    match e.code() {
        Some(c) => {
            *c == SqlState::UNIQUE_VIOLATION
                || *c == SqlState::DUPLICATE_OBJECT
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || (*c == SqlState::INTERNAL_ERROR
                    && e.as_db_error()
                        .is_some_and(|d| d.message().contains("concurrently")))
        }
        None => false,
    }
}

fn explain(e: postgres::Error) -> Error {
    let insufficient = e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE);
    let base = Error::from(e);
    if insufficient {
        Error::Postgres(format!(
            "{}; the roles must be applied by a role that may create roles and owns \
             CineMatch's tables (the database owner, or a superuser)",
            base.to_string().trim_start_matches("PostgreSQL: ")
        ))
    } else {
        base
    }
}

/// The state of an existing role.
struct Existing {
    can_login: bool,
    superuser: bool,
    create_db: bool,
    create_role: bool,
    replication: bool,
    bypass_rls: bool,
}

fn try_apply(
    client: &mut Client,
    roles: &[(Role, Option<String>)],
) -> std::result::Result<RolesReport, Failure> {
    let mut tx = client.transaction()?;
    let me = tx.query_one(
        "SELECT current_database()::text, current_schema()::text, current_user::text,
                r.rolsuper, r.rolcreaterole
           FROM pg_roles r WHERE r.rolname = current_user",
        &[],
    )?;
    let database: String = me.get(0);
    let schema: Option<String> = me.get(1);
    let current_user: String = me.get(2);
    let (i_am_superuser, i_create_roles): (bool, bool) = (me.get(3), me.get(4));
    let schema = schema.ok_or_else(|| {
        Error::Config("the connection has no current schema (check search_path)".into())
    })?;
    if !i_am_superuser && !i_create_roles {
        return Err(Error::InvalidArgument(format!(
            "role {current_user:?} may not create roles: apply the roles as the database \
             owner (it has CREATEROLE on Neon) or a superuser"
        ))
        .into());
    }
    let db_ident = quote_ident(&database)?;
    let schema_ident = quote_ident(&schema)?;

    // The spec's "Archive Old Metadata" creates drift_alerts_archive on first
    // use; ml_pipeline cannot create tables, so it is made here, exactly as
    // the store would make it, and covered by the grants below.
    tx.batch_execute(
        "DO $$ BEGIN
           IF to_regclass('drift_alerts') IS NOT NULL AND to_regclass('drift_alerts_archive') IS NULL THEN
             CREATE TABLE drift_alerts_archive (LIKE drift_alerts INCLUDING DEFAULTS);
           END IF;
         END $$",
    )?;

    // Whose future tables the default privileges must cover: the role that
    // owns the schema's CineMatch tables (it runs the migrations), and the
    // role running this, which may migrate next time.
    let mut owners: Vec<String> = tx
        .query(
            "SELECT DISTINCT tableowner::text FROM pg_tables
              WHERE schemaname = $1 AND tablename IN ('cinematch_schema', 'ratings')",
            &[&schema],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !owners.contains(&current_user) {
        owners.push(current_user.clone());
    }
    owners.sort();

    let mut report = RolesReport::default();
    for (role, verifier) in roles {
        let name = role.name();
        let ident = quote_ident(name)?;
        let existing = tx
            .query_opt(
                "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls
                   FROM pg_roles WHERE rolname = $1",
                &[&name],
            )?
            .map(|r| Existing {
                can_login: r.get(0),
                superuser: r.get(1),
                create_db: r.get(2),
                create_role: r.get(3),
                replication: r.get(4),
                bypass_rls: r.get(5),
            });
        let password_sql = match verifier {
            Some(v) => format!(" PASSWORD {}", quote_literal(v)?),
            None => String::new(),
        };
        let mut fixed = Vec::new();
        let created = match &existing {
            None => {
                if verifier.is_none() {
                    return Err(Error::InvalidArgument(format!(
                        "role {name} does not exist yet, so it needs a password: set {}",
                        role.password_env()
                    ))
                    .into());
                }
                tx.batch_execute(&format!(
                    "CREATE ROLE {ident} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
                     NOBYPASSRLS{password_sql}"
                ))?;
                true
            }
            Some(e) => {
                // Only what differs is altered: PostgreSQL refuses some
                // attribute changes (even to "NO...") to non-superusers.
                let flags = [
                    (!e.can_login, "LOGIN"),
                    (e.superuser, "NOSUPERUSER"),
                    (e.create_db, "NOCREATEDB"),
                    (e.create_role, "NOCREATEROLE"),
                    (e.replication, "NOREPLICATION"),
                    (e.bypass_rls, "NOBYPASSRLS"),
                ];
                for (needed, flag) in flags {
                    if needed {
                        fixed.push(flag.to_string());
                    }
                }
                if (e.superuser || e.replication || e.bypass_rls) && !i_am_superuser {
                    return Err(Error::InvalidArgument(format!(
                        "role {name} already exists with {}, which no grant can restrict; \
                         a superuser must remove that first (ALTER ROLE {name} {})",
                        fixed
                            .iter()
                            .filter(|f| f.starts_with("NO"))
                            .map(|f| f.trim_start_matches("NO"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        fixed.join(" ")
                    ))
                    .into());
                }
                if !fixed.is_empty() || verifier.is_some() {
                    tx.batch_execute(&format!(
                        "ALTER ROLE {ident}{}{password_sql}",
                        fixed.iter().map(|f| format!(" {f}")).collect::<String>()
                    ))?;
                }
                false
            }
        };

        tx.batch_execute(&format!(
            "GRANT CONNECT ON DATABASE {db_ident} TO {ident};
             GRANT USAGE ON SCHEMA {schema_ident} TO {ident};
             REVOKE ALL ON ALL TABLES IN SCHEMA {schema_ident} FROM {ident};
             GRANT {tp} ON ALL TABLES IN SCHEMA {schema_ident} TO {ident};
             REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema_ident} FROM {ident};",
            tp = role.table_privileges()
        ))?;
        if let Some(sp) = role.sequence_privileges() {
            tx.batch_execute(&format!(
                "GRANT {sp} ON ALL SEQUENCES IN SCHEMA {schema_ident} TO {ident}"
            ))?;
        }
        for owner in &owners {
            let owner_ident = quote_ident(owner)?;
            let dp =
                format!("ALTER DEFAULT PRIVILEGES FOR ROLE {owner_ident} IN SCHEMA {schema_ident}");
            tx.batch_execute(&format!(
                "{dp} REVOKE ALL ON TABLES FROM {ident};
                 {dp} GRANT {tp} ON TABLES TO {ident};
                 {dp} REVOKE ALL ON SEQUENCES FROM {ident};",
                tp = role.table_privileges()
            ))?;
            if let Some(sp) = role.sequence_privileges() {
                tx.batch_execute(&format!("{dp} GRANT {sp} ON SEQUENCES TO {ident}"))?;
            }
        }

        let (tables, sequences) = check_effective(&mut tx, *role, &schema, &mut report.warnings)?;
        report.roles.push(RoleOutcome {
            role: *role,
            created,
            password_set: verifier.is_some(),
            attributes_fixed: fixed,
            database: database.clone(),
            schema: schema.clone(),
            tables,
            sequences,
            default_privileges_for: owners.clone(),
        });
    }
    tx.commit()?;
    Ok(report)
}

/// Checks what the role can really do, memberships and `PUBLIC` grants
/// included, since those are beyond what `GRANT`/`REVOKE` on the role itself
/// control. Write access for `analyst` is an error (the transaction is rolled
/// back); leftovers that cannot be revoked here become warnings.
fn check_effective(
    tx: &mut Transaction<'_>,
    role: Role,
    schema: &str,
    warnings: &mut Vec<String>,
) -> std::result::Result<(usize, usize), Failure> {
    let name = role.name();
    let rows = tx.query(
        "SELECT c.relname::text, c.relkind::text,
                has_table_privilege($1, c.oid, 'SELECT'),
                has_table_privilege($1, c.oid, 'INSERT'),
                has_table_privilege($1, c.oid, 'UPDATE'),
                has_table_privilege($1, c.oid, 'DELETE'),
                has_table_privilege($1, c.oid, 'TRUNCATE'),
                pg_has_role($1, c.relowner, 'USAGE')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          ORDER BY 1",
        &[&name, &schema],
    )?;
    let (mut tables, mut sequences) = (0, 0);
    let mut writable = Vec::new();
    for r in &rows {
        let table: String = r.get(0);
        let kind: String = r.get(1);
        if r.get::<_, bool>(7) {
            return Err(Error::InvalidArgument(format!(
                "role {name} owns (or is a member of the owner of) {table}, so no grant can \
                 restrict it; give CineMatch's tables to the role that migrates them"
            ))
            .into());
        }
        if kind == "S" {
            sequences += 1;
            continue;
        }
        tables += 1;
        let can_write = (3..=6).any(|i| r.get::<_, bool>(i));
        if !r.get::<_, bool>(2) {
            return Err(Error::InvalidArgument(format!(
                "role {name} still cannot read {table} after the grant"
            ))
            .into());
        }
        if can_write && !role.may_write() {
            writable.push(table);
        }
    }
    if !writable.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "role {name} can still write to {} through a role it belongs to or a grant to \
             PUBLIC, so it would not be read-only; revoke that first",
            writable.join(", ")
        ))
        .into());
    }
    let can_create: bool = tx
        .query_one(
            "SELECT has_schema_privilege($1, $2, 'CREATE')",
            &[&name, &schema],
        )?
        .get(0);
    if can_create {
        warnings.push(format!(
            "role {name} may create objects in schema {schema} (PostgreSQL before 15 grants \
             CREATE on public to everyone); revoke it with REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC"
        ));
    }
    Ok((tables, sequences))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted_like_pq_escape_literal() {
        let cases = [
            ("", "''"),
            ("abc", "'abc'"),
            ("it's", "'it''s'"),
            ("''", "''''''"),
            ("a\\b", "E'a\\\\b'"),
            ("\\'; DROP ROLE x; --", "E'\\\\''; DROP ROLE x; --'"),
            ("ünïcødé \"q\"", "'ünïcødé \"q\"'"),
        ];
        for (input, want) in cases {
            assert_eq!(quote_literal(input).unwrap(), want, "{input:?}");
        }
        assert!(quote_literal("a\0b").is_err());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("public").unwrap(), "\"public\"");
        assert_eq!(quote_ident("my\"db").unwrap(), "\"my\"\"db\"");
        assert!(quote_ident("a\0").is_err());
    }

    #[test]
    fn passwords_become_scram_verifiers() {
        let v = password_verifier("o'Reilly\\ \"x\"").unwrap();
        assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
        assert!(!v.contains('\''), "{v}");
        assert!(!v.contains("Reilly"));
        assert!(password_verifier("").is_err());
        assert!(password_verifier("a\0b").is_err());
        assert_eq!(format!("{:?}", Password::Set("hunter2".into())), "Set(***)");
    }
}
