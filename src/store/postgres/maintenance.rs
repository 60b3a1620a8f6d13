//! Schema migrations, table counts and sizes, reset and VACUUM.

use super::PgStore;
use crate::store::schema::{self, ordered_tables, version_key, MIGRATIONS};
use crate::store::{Store, TableCount, TableSize};
use crate::Result;

/// Serializes concurrent `migrate` calls from several processes.
const MIGRATION_LOCK: i64 = 0x6369_6e65_6d61_0001;

impl PgStore {
    fn user_tables(&mut self) -> Result<Vec<String>> {
        let rows = self.client.query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
            &[],
        )?;
        Ok(ordered_tables(rows.iter().map(|r| r.get(0)).collect()))
    }
}

pub(super) fn migrate(store: &mut PgStore) -> Result<Vec<&'static str>> {
    // Up to date: no DDL at all, so roles without CREATE (ml_pipeline, analyst) can open it.
    if store
        .schema_version()?
        .is_some_and(|v| version_key(&v) >= version_key(schema::latest_version()))
    {
        return Ok(Vec::new());
    }
    let mut tx = store.client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(schema::VERSION_TABLE_PG)?;
    let mut applied = Vec::new();
    for m in MIGRATIONS {
        let done: bool = tx
            .query_one(
                "SELECT EXISTS(SELECT 1 FROM cinematch_schema WHERE version = $1)",
                &[&m.version],
            )?
            .get(0);
        if !done {
            tx.batch_execute(m.postgres)?;
            tx.execute(
                "INSERT INTO cinematch_schema (version, description) VALUES ($1, $2)",
                &[&m.version, &m.description],
            )?;
            applied.push(m.version);
        }
    }
    tx.commit()?;
    Ok(applied)
}

pub(super) fn schema_version(store: &mut PgStore) -> Result<Option<String>> {
    let exists: bool = store
        .client
        .query_one("SELECT to_regclass('cinematch_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let mut versions: Vec<String> = store
        .client
        .query("SELECT version::text FROM cinematch_schema", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    versions.sort_by_key(|v| version_key(v));
    Ok(versions.pop())
}

pub(super) fn table_counts(store: &mut PgStore) -> Result<Vec<TableCount>> {
    let tables = store.user_tables()?;
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        // Table names come from the catalog, never from input; quote anyway.
        let rows: i64 = store
            .client
            .query_one(&format!("SELECT COUNT(*) FROM \"{t}\""), &[])?
            .get(0);
        out.push(TableCount { table: t, rows });
    }
    Ok(out)
}

pub(super) fn table_sizes(store: &mut PgStore) -> Result<Vec<TableSize>> {
    let rows = store.client.query(
        "SELECT tablename::text,
                pg_total_relation_size(quote_ident(schemaname) || '.' || quote_ident(tablename))
           FROM pg_tables
          WHERE schemaname = current_schema()
          ORDER BY 2 DESC, 1",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| TableSize {
            table: r.get(0),
            bytes: r.get(1),
        })
        .collect())
}

pub(super) fn reset(store: &mut PgStore) -> Result<()> {
    let tables: Vec<String> = store
        .user_tables()?
        .into_iter()
        .filter(|t| t != "cinematch_schema")
        .map(|t| format!("\"{t}\""))
        .collect();
    store
        .client
        .batch_execute(&format!("TRUNCATE {} RESTART IDENTITY", tables.join(", ")))?;
    Ok(())
}

pub(super) fn vacuum(store: &mut PgStore) -> Result<()> {
    // VACUUM cannot run inside a transaction block; each is its own statement.
    for t in ["ratings", "ratings_buffer", "movies"] {
        store.client.batch_execute(&format!("VACUUM ANALYZE {t}"))?;
    }
    Ok(())
}
