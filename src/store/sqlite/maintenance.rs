//! Schema migrations, table counts and sizes, reset and VACUUM.

use rusqlite::params;

use super::SqliteStore;
use crate::store::schema::{self, ordered_tables, version_key, MIGRATIONS};
use crate::store::{TableCount, TableSize};
use crate::Result;

impl SqliteStore {
    fn user_tables(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
               AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'movies_fts%'
             ORDER BY name",
        )?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(names)
    }
}

pub(super) fn migrate(store: &mut SqliteStore) -> Result<Vec<&'static str>> {
    // Up to date: a read, no write lock, so opening a connection never
    // waits behind another process's write (a server's pool opening one
    // while a batch is ingested, say).
    if schema_version(store)?
        .is_some_and(|v| version_key(&v) >= version_key(schema::latest_version()))
    {
        return Ok(Vec::new());
    }
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(schema::VERSION_TABLE_SQLITE)?;
    let mut applied = Vec::new();
    for m in MIGRATIONS {
        let done: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM cinematch_schema WHERE version = ?1)",
            [m.version],
            |r| r.get(0),
        )?;
        if !done {
            tx.execute_batch(m.sqlite)?;
            tx.execute(
                "INSERT INTO cinematch_schema (version, description) VALUES (?1, ?2)",
                params![m.version, m.description],
            )?;
            applied.push(m.version);
        }
    }
    tx.commit()?;
    Ok(applied)
}

pub(super) fn schema_version(store: &mut SqliteStore) -> Result<Option<String>> {
    let exists: bool = store.conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type='table' AND name='cinematch_schema')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    // Versions are "major.minor"; order numerically, not as text.
    let mut versions: Vec<String> = store
        .conn
        .prepare("SELECT version FROM cinematch_schema")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    versions.sort_by_key(|v| version_key(v));
    Ok(versions.pop())
}

pub(super) fn table_counts(store: &mut SqliteStore) -> Result<Vec<TableCount>> {
    let tables = ordered_tables(store.user_tables()?);
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let rows: i64 =
            store
                .conn
                .query_row(&format!("SELECT COUNT(*) FROM \"{t}\""), [], |r| r.get(0))?;
        out.push(TableCount { table: t, rows });
    }
    Ok(out)
}

pub(super) fn table_sizes(store: &mut SqliteStore) -> Result<Vec<TableSize>> {
    // dbstat reports bytes per b-tree (table or index); fold each index
    // into its table, as pg_total_relation_size does.
    let tables = store.user_tables()?;
    let mut stmt = store.conn.prepare(
        "SELECT m.tbl_name, SUM(s.pgsize)
           FROM dbstat s JOIN sqlite_master m ON m.name = s.name
          GROUP BY m.tbl_name",
    )?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out: Vec<TableSize> = tables
        .into_iter()
        .map(|t| {
            // FTS5 shadow tables belong to `movies`.
            let bytes = rows
                .iter()
                .filter(|(name, _)| *name == t || (t == "movies" && name.starts_with("movies_fts")))
                .map(|(_, b)| *b)
                .sum();
            TableSize { table: t, bytes }
        })
        .collect();
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.table.cmp(&b.table)));
    Ok(out)
}

pub(super) fn reset(store: &mut SqliteStore) -> Result<()> {
    let tables: Vec<String> = store
        .user_tables()?
        .into_iter()
        .filter(|t| t != "cinematch_schema")
        .collect();
    let tx = store.conn.transaction()?;
    for t in &tables {
        tx.execute(&format!("DELETE FROM \"{t}\""), [])?;
    }
    tx.execute_batch("DELETE FROM sqlite_sequence")?;
    tx.commit()?;
    Ok(())
}

pub(super) fn vacuum(store: &mut SqliteStore) -> Result<()> {
    // SQLite vacuums the whole file; ANALYZE the core tables as the spec asks.
    store
        .conn
        .execute_batch("VACUUM; ANALYZE ratings; ANALYZE ratings_buffer; ANALYZE movies;")?;
    Ok(())
}
