//! The model registry: runs with their evaluations, artifacts, champions
//! and tuning trials.

use rusqlite::{params, Transaction};

use super::ingestion::merge_buffer_in;
use super::rows::parse_ts;
use super::SqliteStore;
use crate::store::{
    rollback_target, ArtifactBlob, ModelEvaluation, ModelRun, NewModelRun, Promotion, RunCommit,
    TuningTrial,
};
use crate::{Error, Result};

pub(super) fn insert_model_run(
    store: &mut SqliteStore,
    run: &NewModelRun,
    artifact: &ArtifactBlob,
    commit: &RunCommit,
) -> Result<(ModelRun, u64)> {
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let n: i64 = tx.query_row(
        "SELECT COALESCE(MAX(id), 0) + 1 FROM model_metrics",
        [],
        |r| r.get(0),
    )?;
    let version = format!("run_{}_v{n}", run.run_id);
    tx.execute(
        "INSERT INTO model_metrics (model_version, training_date, rmse, mae, precision_at_10, data_size, notes)
         VALUES (?1, strftime('%Y-%m-%d %H:%M:%f', 'now'), ?2, ?3, ?4, ?5, ?6)",
        params![version, run.rmse, run.mae, run.precision_at_10, run.data_size, run.notes],
    )?;
    let id = tx.last_insert_rowid();
    let e = &run.evaluation;
    tx.execute(
        "INSERT INTO model_evaluations (model_version, algorithm, ndcg_at_10, recall_at_10,
             catalogue_precision_at_10, coverage, users_evaluated, users_eligible, test_ratings)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            version,
            e.algorithm,
            e.ndcg_at_10,
            e.recall_at_10,
            e.catalogue_precision_at_10,
            e.coverage,
            e.users_evaluated,
            e.users_eligible,
            e.test_ratings
        ],
    )?;
    tx.execute(
        "INSERT INTO model_artifacts (model_version, algorithm, format_version, size_bytes, checksum, artifact)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            version,
            artifact.algorithm,
            artifact.format_version,
            artifact.bytes.len() as i64,
            artifact.checksum as i64,
            artifact.bytes
        ],
    )?;
    let has_champion: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM model_champions WHERE rolled_back_at IS NULL)",
        [],
        |r| r.get(0),
    )?;
    if let (Some(_), Some(expected)) = (&commit.promote_reason, &commit.promote_if_champion_is) {
        crate::store::expect_champion(expected.as_deref(), champion_in(&tx)?)?;
    }
    let reason = match (&commit.promote_reason, has_champion) {
        (Some(r), _) => Some(r.as_str()),
        (None, false) => Some("first model"),
        (None, true) => None,
    };
    if let Some(reason) = reason {
        tx.execute(
            "INSERT INTO model_champions (model_version, promoted_at, reason)
             VALUES (?1, strftime('%Y-%m-%d %H:%M:%f', 'now'), ?2)",
            [&version, reason],
        )?;
    }
    crate::failpoint::hit("retrain:after_promote_before_merge");
    let merged = match &commit.merge_buffer {
        Some(bound) => {
            let n = merge_buffer_in(&tx, Some(bound))?;
            crate::failpoint::hit("merge:before_commit");
            n
        }
        None => 0,
    };
    if let Some(hold) = &commit.lease {
        // IMMEDIATE: nobody can take the lease over between here and the commit.
        let held: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM cinematch_leases WHERE name = ?1 AND holder = ?2)",
            [&hold.name, &hold.holder],
            |r| r.get(0),
        )?;
        if !held {
            return Err(crate::store::lease_lost(hold));
        }
    }
    let row = tx.query_row(
        &format!("{MODEL_RUN_SELECT} WHERE m.id = ?1"),
        [id],
        model_run_row,
    )?;
    tx.commit()?;
    Ok((row, merged))
}

pub(super) fn model_runs(store: &mut SqliteStore) -> Result<Vec<ModelRun>> {
    let mut stmt = store.conn.prepare(&format!(
        "{MODEL_RUN_SELECT} ORDER BY m.training_date, m.id"
    ))?;
    let rows = stmt
        .query_map([], model_run_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn insert_tuning_trial(store: &mut SqliteStore, t: &TuningTrial) -> Result<()> {
    store.conn.execute(
        "INSERT INTO tuning_trials (study, trial, algorithm, params, objective, value,
             validation_ratings, seconds)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            t.study,
            t.trial,
            t.algorithm,
            t.params,
            t.objective,
            t.value,
            t.validation_ratings,
            t.seconds
        ],
    )?;
    Ok(())
}

pub(super) fn tuning_trials(
    store: &mut SqliteStore,
    study: Option<&str>,
) -> Result<Vec<TuningTrial>> {
    let mut stmt = store.conn.prepare(
        "SELECT study, trial, algorithm, params, objective, value, validation_ratings, seconds
           FROM tuning_trials WHERE ?1 IS NULL OR study = ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map([study], |r| {
            Ok(TuningTrial {
                study: r.get(0)?,
                trial: r.get(1)?,
                algorithm: r.get(2)?,
                params: r.get(3)?,
                objective: r.get(4)?,
                value: r.get(5)?,
                validation_ratings: r.get(6)?,
                seconds: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn artifact(
    store: &mut SqliteStore,
    model_version: &str,
) -> Result<Option<ArtifactBlob>> {
    let mut stmt = store.conn.prepare(
        "SELECT algorithm, format_version, checksum, artifact FROM model_artifacts WHERE model_version = ?1",
    )?;
    let mut rows = stmt.query_map([model_version], |r| {
        Ok(ArtifactBlob {
            algorithm: r.get(0)?,
            format_version: r.get(1)?,
            checksum: r.get::<_, i64>(2)? as u32,
            bytes: r.get(3)?,
        })
    })?;
    Ok(rows.next().transpose()?)
}

pub(super) fn promotions(store: &mut SqliteStore) -> Result<Vec<Promotion>> {
    let mut stmt = store.conn.prepare(
        "SELECT model_version, promoted_at, reason, rolled_back_at IS NOT NULL
           FROM model_champions ORDER BY id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Promotion {
                model_version: r.get(0)?,
                promoted_at: parse_ts(&r.get::<_, String>(1)?),
                reason: r.get(2)?,
                rolled_back: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn promote(store: &mut SqliteStore, model_version: &str, reason: &str) -> Result<()> {
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let exists: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM model_artifacts WHERE model_version = ?1)",
        [model_version],
        |r| r.get(0),
    )?;
    if !exists {
        return Err(Error::UnknownModel {
            version: model_version.to_string(),
        });
    }
    tx.execute(
        "INSERT INTO model_champions (model_version, promoted_at, reason)
         VALUES (?1, strftime('%Y-%m-%d %H:%M:%f', 'now'), ?2)",
        [model_version, reason],
    )?;
    tx.commit()?;
    Ok(())
}

pub(super) fn promote_if_champion_is(
    store: &mut SqliteStore,
    expected: Option<&str>,
    model_version: &str,
    reason: &str,
) -> Result<()> {
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    crate::store::expect_champion(expected, champion_in(&tx)?)?;
    let n = tx.execute(
        "INSERT INTO model_champions (model_version, promoted_at, reason)
         SELECT model_version, strftime('%Y-%m-%d %H:%M:%f', 'now'), ?2
           FROM model_artifacts WHERE model_version = ?1",
        [model_version, reason],
    )?;
    if n == 0 {
        return Err(Error::UnknownModel {
            version: model_version.to_string(),
        });
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn rollback(store: &mut SqliteStore) -> Result<(String, String)> {
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let history = tx
        .prepare(
            "SELECT id, model_version, rolled_back_at IS NOT NULL FROM model_champions ORDER BY id",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (keep, from, to) = rollback_target(&history)?;
    tx.execute(
        "UPDATE model_champions SET rolled_back_at = strftime('%Y-%m-%d %H:%M:%f', 'now')
          WHERE id > ?1 AND rolled_back_at IS NULL",
        [keep],
    )?;
    tx.commit()?;
    Ok((from, to))
}

/// A `model_metrics` row with its `model_evaluations` row, if any.
const MODEL_RUN_SELECT: &str = "SELECT m.id, m.model_version, m.training_date, m.rmse, m.mae,
        m.precision_at_10, m.data_size, m.notes, e.algorithm, e.ndcg_at_10, e.recall_at_10,
        e.catalogue_precision_at_10, e.coverage, e.users_evaluated, e.users_eligible, e.test_ratings
   FROM model_metrics m LEFT JOIN model_evaluations e ON e.model_version = m.model_version";

/// The champion as `tx` sees it (the latest promotion not rolled back).
fn champion_in(tx: &Transaction<'_>) -> Result<Option<String>> {
    match tx.query_row(
        "SELECT model_version FROM model_champions
          WHERE rolled_back_at IS NULL ORDER BY id DESC LIMIT 1",
        [],
        |r| r.get(0),
    ) {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn model_run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ModelRun> {
    let algorithm: Option<String> = r.get(8)?;
    let evaluation = match algorithm {
        Some(algorithm) => Some(ModelEvaluation {
            algorithm,
            ndcg_at_10: r.get(9)?,
            recall_at_10: r.get(10)?,
            catalogue_precision_at_10: r.get(11)?,
            coverage: r.get(12)?,
            users_evaluated: r.get(13)?,
            users_eligible: r.get(14)?,
            test_ratings: r.get(15)?,
        }),
        None => None,
    };
    Ok(ModelRun {
        id: r.get(0)?,
        model_version: r.get(1)?,
        training_date: parse_ts(&r.get::<_, String>(2)?),
        rmse: r.get(3)?,
        mae: r.get(4)?,
        precision_at_10: r.get(5)?,
        data_size: r.get(6)?,
        notes: r.get(7)?,
        evaluation,
    })
}
