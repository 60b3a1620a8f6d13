//! `db`: schema version, status, table statistics and the database roles.

use cinematch::format::{decimals, thousands};
use cinematch::store::roles::RolesReport;
use cinematch::store::{Backend, SplitStats, TableCount, TableSize};

use crate::cli::table;

pub fn schema_version(version: &str, location: &str) {
    println!("schema is at version {version} ({location})");
}

pub fn vacuumed() {
    println!("VACUUM ANALYZE done on ratings, ratings_buffer, movies");
}

pub fn drift_archived(n: u64, older_than: &str) {
    println!("moved {n} drift alerts older than {older_than} into drift_alerts_archive");
}

pub fn db_status(
    location: &str,
    backend: Backend,
    version: Option<String>,
    counts: Vec<TableCount>,
) {
    println!("database: {location} ({backend})");
    println!(
        "schema version: {}",
        version.unwrap_or_else(|| "none".into())
    );
    let rows: Vec<Vec<String>> = counts
        .into_iter()
        .map(|t| vec![t.table, thousands(t.rows)])
        .collect();
    table::print(&["table", "rows"], &rows);
}

/// The spec's "Database Statistics" in its three parts.
pub fn db_stats(
    location: &str,
    backend: Backend,
    mut counts: Vec<TableCount>,
    sizes: Vec<TableSize>,
    splits: Vec<SplitStats>,
) {
    println!("Record counts ({location})");
    counts.sort_by(|a, b| b.rows.cmp(&a.rows).then(a.table.cmp(&b.table)));
    let rows: Vec<Vec<String>> = counts
        .into_iter()
        .map(|t| vec![t.table, thousands(t.rows)])
        .collect();
    table::print(&["table_name", "records"], &rows);
    println!();
    println!(
        "Storage usage ({})",
        match backend {
            Backend::Postgres => "pg_total_relation_size, indexes included",
            Backend::Sqlite => "SQLite pages (dbstat), indexes included",
        }
    );
    let rows: Vec<Vec<String>> = sizes
        .into_iter()
        .map(|t| {
            vec![
                t.table,
                cinematch::format::bytes(t.bytes),
                thousands(t.bytes),
            ]
        })
        .collect();
    table::print(&["tablename", "size", "size_bytes"], &rows);
    println!();
    println!("Data distribution");
    let rows: Vec<Vec<String>> = splits
        .into_iter()
        .map(|s| {
            vec![
                s.split,
                thousands(s.records),
                decimals(Some(s.avg_rating), 2),
                decimals(Some(s.std_rating), 2),
            ]
        })
        .collect();
    table::print(
        &["data_split", "records", "avg_rating", "std_rating"],
        &rows,
    );
}

pub fn roles_report(report: &RolesReport) {
    for r in &report.roles {
        let mut what = vec![if r.created { "created" } else { "updated" }.to_string()];
        what.push(
            if r.password_set {
                "password set"
            } else {
                "password unchanged"
            }
            .into(),
        );
        if !r.attributes_fixed.is_empty() {
            what.push(format!("now {}", r.attributes_fixed.join(" ")));
        }
        let mut grants = format!("{} on {} tables", r.role.table_privileges(), r.tables);
        if let Some(sp) = r.role.sequence_privileges() {
            grants.push_str(&format!(" and {sp} on {} sequences", r.sequences));
        }
        println!(
            "role {} ({}): {grants} of schema {} in database {}",
            r.role,
            what.join(", "),
            r.schema,
            r.database
        );
    }
    if let Some(r) = report.roles.first() {
        println!(
            "default privileges: tables and sequences that {} {} in schema {} later get the same grants",
            r.default_privileges_for.join(" or "),
            if r.default_privileges_for.len() == 1 {
                "creates"
            } else {
                "create"
            },
            r.schema
        );
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    println!(
        "neither role can create, alter or drop tables; run `cinematch db migrate` as the owner"
    );
}
