//! `cinematch db`: the schema, statistics, maintenance and roles.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use cinematch::pipeline::retrain;
use cinematch::store::roles::{self, Password, Role};
use cinematch::store::{self, Store};

use super::{print, Ctx, JsonArg};

#[derive(Subcommand)]
pub enum DbCommand {
    /// VACUUM ANALYZE the core tables (the spec's weekly maintenance).
    Vacuum,
    /// Move drift alerts older than a cutoff into drift_alerts_archive, in one transaction.
    ArchiveDrift {
        /// Archive alerts older than this, e.g. 30d, 12h.
        #[arg(long, default_value = "30d", value_name = "AGE")]
        older_than: String,
    },
    /// Create or upgrade the schema (idempotent).
    Migrate,
    /// Schema version and the row count of every table.
    Status {
        #[command(flatten)]
        json: JsonArg,
    },
    /// The spec's "Database Statistics": record counts and storage per table.
    Stats {
        #[command(flatten)]
        json: JsonArg,
    },
    /// Create or update the spec's PostgreSQL roles: analyst (read-only) and ml_pipeline (rows read-write, no schema changes).
    ///
    /// Passwords come from CINEMATCH_ANALYST_PASSWORD and CINEMATCH_ML_PIPELINE_PASSWORD,
    /// else they are asked for on the terminal; never from the command line. Run it as the
    /// database owner or a superuser; tables later migrations add are covered by default privileges.
    Roles(RolesArgs),
}

#[derive(Args)]
pub struct RolesArgs {
    /// Keep the current password of a role that already exists when its variable is unset, instead of asking.
    #[arg(long)]
    keep_passwords: bool,
}

pub fn run(cmd: DbCommand, ctx: &Ctx) -> Result<()> {
    // Roles connect on their own, after asking for the passwords.
    if let DbCommand::Roles(args) = cmd {
        return db_roles(ctx, &args);
    }
    let mut store = ctx.open_store()?;
    match cmd {
        DbCommand::Migrate => {
            // `open` already migrated; report what the database is at.
            let v = store.schema_version()?.unwrap_or_default();
            print::schema_version(&v, &store.location());
        }
        DbCommand::Status { json } => status(store.as_mut(), json.json)?,
        DbCommand::Vacuum => {
            store.vacuum()?;
            print::vacuumed();
        }
        DbCommand::ArchiveDrift { older_than } => {
            let secs = retrain::parse_duration_secs(&older_than)?;
            let n = store.archive_drift_alerts(secs)?;
            print::drift_archived(n, &older_than);
        }
        DbCommand::Stats { json } => stats(store.as_mut(), json.json)?,
        DbCommand::Roles(_) => unreachable!("db roles is handled before opening a store"),
    }
    Ok(())
}

fn status(store: &mut dyn Store, json: bool) -> Result<()> {
    let version = store.schema_version()?;
    let counts = store.table_counts()?;
    if json {
        return print::json(&print::DbJson::status(
            &store.location(),
            store.backend(),
            version,
            counts,
        ));
    }
    print::db_status(&store.location(), store.backend(), version, counts);
    Ok(())
}

fn stats(store: &mut dyn Store, json: bool) -> Result<()> {
    let counts = store.table_counts()?;
    let sizes = store.table_sizes()?;
    let splits = store.split_stats()?;
    if json {
        return print::json(&print::DbJson::stats(
            &store.location(),
            store.backend(),
            counts,
            sizes,
            splits,
        ));
    }
    print::db_stats(&store.location(), store.backend(), counts, sizes, splits);
    Ok(())
}

/// `db roles`: the spec's two roles on PostgreSQL; a clear refusal on SQLite.
fn db_roles(ctx: &Ctx, args: &RolesArgs) -> Result<()> {
    let (url, from) = ctx.db_url();
    if let Ok(store::DbUrl::Sqlite(_)) = store::DbUrl::parse(&url) {
        bail!(
            "roles are a PostgreSQL feature: the database is the SQLite file {} (from {from}), \
             which has no users or privileges; protect the file with file permissions \
             (chmod 600), or point --db at PostgreSQL to create analyst and ml_pipeline",
            store::redact(&url)
        );
    }
    // Ask for every password before connecting, so nothing changes when one is missing.
    let mut passwords = Vec::new();
    for role in Role::ALL {
        passwords.push((role, role_password(role, args.keep_passwords)?));
    }
    let mut pg = store::postgres::PgStore::connect(&url).with_context(|| {
        format!(
            "opening the database {} (from {from})",
            store::redact_url(&url)
        )
    })?;
    pg.migrate()?;
    let report = roles::apply(pg.client(), &passwords).context("`cinematch db roles`")?;
    print::roles_report(&report);
    Ok(())
}

/// A role's password from its environment variable, else from the terminal
/// (typed twice, not echoed); never from the command line.
fn role_password(role: Role, keep: bool) -> Result<Password> {
    let var = role.password_env();
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => return Ok(Password::Set(p)),
        Ok(_) => bail!("{var} is set but empty; give role {role} a password or unset it"),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{var} is not valid UTF-8"),
        Err(std::env::VarError::NotPresent) => {}
    }
    if keep {
        return Ok(Password::Keep);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password for role {role}: set {var}, run on a terminal to be asked, \
             or pass --keep-passwords to keep the password of a role that already exists"
        );
    }
    let first = rpassword::prompt_password(format!("password for role {role}: "))
        .context("reading the password from the terminal")?;
    if first.is_empty() {
        bail!("no password entered for role {role}");
    }
    let again = rpassword::prompt_password(format!("password for role {role} again: "))
        .context("reading the password from the terminal")?;
    if first != again {
        bail!("the two passwords for role {role} differ; nothing was changed");
    }
    Ok(Password::Set(first))
}
