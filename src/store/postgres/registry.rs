//! The model registry: runs with their evaluations, artifacts, champions
//! and tuning trials.

use super::ingestion::MERGE_BUFFER;
use super::PgStore;
use crate::store::{
    rollback_target, ArtifactBlob, ChangeKind, ModelEvaluation, ModelRun, NewModelRun, Promotion,
    RunCommit, TuningTrial,
};
use crate::{Error, Result};

pub(super) fn insert_model_run(
    store: &mut PgStore,
    run: &NewModelRun,
    artifact: &ArtifactBlob,
    commit: &RunCommit,
) -> Result<(ModelRun, u64)> {
    let mut tx = store.client.transaction()?;
    // Serializes version numbering across concurrent trainers.
    tx.batch_execute("LOCK TABLE model_metrics IN SHARE ROW EXCLUSIVE MODE")?;
    if commit.promote_if_champion_is.is_some() {
        // No promotion or rollback between the check and the insert.
        tx.batch_execute("LOCK TABLE model_champions IN SHARE ROW EXCLUSIVE MODE")?;
    }
    let n: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(id), 0)::int + 1 FROM model_metrics",
            &[],
        )?
        .get(0);
    let version = format!("run_{}_v{n}", run.run_id);
    let data_size = i32::try_from(run.data_size).unwrap_or(i32::MAX);
    let id: i64 = tx
        .query_one(
            "INSERT INTO model_metrics (model_version, training_date, rmse, mae, precision_at_10, data_size, notes)
             VALUES ($1, clock_timestamp(), $2, $3, $4, $5, $6)
             RETURNING id::int8",
            &[&version, &run.rmse, &run.mae, &run.precision_at_10, &data_size, &run.notes],
        )?
        .get(0);
    let e = &run.evaluation;
    let int = |x: Option<i64>| x.map(|v| i32::try_from(v).unwrap_or(i32::MAX));
    tx.execute(
        "INSERT INTO model_evaluations (model_version, algorithm, ndcg_at_10, recall_at_10,
             catalogue_precision_at_10, coverage, users_evaluated, users_eligible, test_ratings)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &version,
            &e.algorithm,
            &e.ndcg_at_10,
            &e.recall_at_10,
            &e.catalogue_precision_at_10,
            &e.coverage,
            &int(e.users_evaluated),
            &int(e.users_eligible),
            &int(e.test_ratings),
        ],
    )?;
    tx.execute(
        "INSERT INTO model_artifacts (model_version, algorithm, format_version, size_bytes, checksum, artifact)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &version,
            &artifact.algorithm,
            &artifact.format_version,
            &(artifact.bytes.len() as i64),
            &(artifact.checksum as i64),
            &artifact.bytes,
        ],
    )?;
    if let (Some(_), Some(expected)) = (&commit.promote_reason, &commit.promote_if_champion_is) {
        crate::store::expect_champion(expected.as_deref(), champion_in(&mut tx)?)?;
    }
    match &commit.promote_reason {
        Some(reason) => tx.execute(
            "INSERT INTO model_champions (model_version, promoted_at, reason)
             VALUES ($1, clock_timestamp(), $2)",
            &[&version, reason],
        )?,
        None => tx.execute(
            "INSERT INTO model_champions (model_version, promoted_at, reason)
             SELECT $1, clock_timestamp(), 'first model'
              WHERE NOT EXISTS (SELECT 1 FROM model_champions WHERE rolled_back_at IS NULL)",
            &[&version],
        )?,
    };
    crate::failpoint::hit("retrain:after_promote_before_merge");
    let merged = match &commit.merge_buffer {
        Some(bound) => {
            let n = tx.execute(MERGE_BUFFER, &[&Some(bound.through)])?;
            if n != bound.rows {
                return Err(crate::store::buffer_changed(bound, n));
            }
            if n > 0 {
                super::changes::record_change(&mut tx, ChangeKind::Merge, None, None, n)?;
            }
            crate::failpoint::hit("merge:before_commit");
            n
        }
        None => 0,
    };
    if let Some(hold) = &commit.lease {
        // The row lock makes a take-over wait for this commit.
        let held = tx.query_opt(
            "SELECT 1 FROM cinematch_leases WHERE name = $1 AND holder = $2 FOR UPDATE",
            &[&hold.name, &hold.holder],
        )?;
        if held.is_none() {
            return Err(crate::store::lease_lost(hold));
        }
    }
    let row = tx.query_one(&format!("{MODEL_RUN_SELECT} WHERE m.id = $1::int8"), &[&id])?;
    tx.commit()?;
    Ok((model_run_row(&row), merged))
}

pub(super) fn model_runs(store: &mut PgStore) -> Result<Vec<ModelRun>> {
    let rows = store.client.query(
        &format!("{MODEL_RUN_SELECT} ORDER BY m.training_date, m.id"),
        &[],
    )?;
    Ok(rows.iter().map(model_run_row).collect())
}

pub(super) fn insert_tuning_trial(store: &mut PgStore, t: &TuningTrial) -> Result<()> {
    let int = |x: i64| i32::try_from(x).unwrap_or(i32::MAX);
    store.client.execute(
        "INSERT INTO tuning_trials (study, trial, algorithm, params, objective, value,
             validation_ratings, seconds)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &t.study,
            &int(t.trial),
            &t.algorithm,
            &t.params,
            &t.objective,
            &t.value,
            &int(t.validation_ratings),
            &t.seconds,
        ],
    )?;
    Ok(())
}

pub(super) fn tuning_trials(store: &mut PgStore, study: Option<&str>) -> Result<Vec<TuningTrial>> {
    let rows = store.client.query(
        "SELECT study::text, trial::int8, algorithm::text, params, objective::text, value,
                validation_ratings::int8, seconds
           FROM tuning_trials WHERE $1::text IS NULL OR study = $1 ORDER BY id",
        &[&study],
    )?;
    Ok(rows
        .iter()
        .map(|r| TuningTrial {
            study: r.get(0),
            trial: r.get(1),
            algorithm: r.get(2),
            params: r.get(3),
            objective: r.get(4),
            value: r.get(5),
            validation_ratings: r.get(6),
            seconds: r.get(7),
        })
        .collect())
}

pub(super) fn artifact(store: &mut PgStore, model_version: &str) -> Result<Option<ArtifactBlob>> {
    let row = store.client.query_opt(
        "SELECT algorithm::text, format_version, checksum, artifact FROM model_artifacts
          WHERE model_version = $1",
        &[&model_version],
    )?;
    Ok(row.map(|r| ArtifactBlob {
        algorithm: r.get(0),
        format_version: r.get(1),
        checksum: r.get::<_, i64>(2) as u32,
        bytes: r.get(3),
    }))
}

pub(super) fn promotions(store: &mut PgStore) -> Result<Vec<Promotion>> {
    let rows = store.client.query(
        "SELECT model_version::text, promoted_at, reason, rolled_back_at IS NOT NULL
           FROM model_champions ORDER BY id",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| Promotion {
            model_version: r.get(0),
            promoted_at: r.get(1),
            reason: r.get(2),
            rolled_back: r.get(3),
        })
        .collect())
}

pub(super) fn promote(store: &mut PgStore, model_version: &str, reason: &str) -> Result<()> {
    let n = store.client.execute(
        "INSERT INTO model_champions (model_version, promoted_at, reason)
         SELECT model_version, clock_timestamp(), $2 FROM model_artifacts WHERE model_version = $1",
        &[&model_version, &reason],
    )?;
    if n == 0 {
        return Err(Error::UnknownModel {
            version: model_version.to_string(),
        });
    }
    Ok(())
}

pub(super) fn promote_if_champion_is(
    store: &mut PgStore,
    expected: Option<&str>,
    model_version: &str,
    reason: &str,
) -> Result<()> {
    let mut tx = store.client.transaction()?;
    tx.batch_execute("LOCK TABLE model_champions IN SHARE ROW EXCLUSIVE MODE")?;
    crate::store::expect_champion(expected, champion_in(&mut tx)?)?;
    let n = tx.execute(
        "INSERT INTO model_champions (model_version, promoted_at, reason)
         SELECT model_version, clock_timestamp(), $2 FROM model_artifacts WHERE model_version = $1",
        &[&model_version, &reason],
    )?;
    if n == 0 {
        return Err(Error::UnknownModel {
            version: model_version.to_string(),
        });
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn rollback(store: &mut PgStore) -> Result<(String, String)> {
    let mut tx = store.client.transaction()?;
    tx.batch_execute("LOCK TABLE model_champions IN SHARE ROW EXCLUSIVE MODE")?;
    let history: Vec<(i64, String, bool)> = tx
        .query(
            "SELECT id::int8, model_version::text, rolled_back_at IS NOT NULL
               FROM model_champions ORDER BY id",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let (keep, from, to) = rollback_target(&history)?;
    tx.execute(
        "UPDATE model_champions SET rolled_back_at = clock_timestamp()
          WHERE id > $1::int8 AND rolled_back_at IS NULL",
        &[&keep],
    )?;
    tx.commit()?;
    Ok((from, to))
}

/// The champion as `tx` sees it (the latest promotion not rolled back).
fn champion_in(tx: &mut postgres::Transaction<'_>) -> Result<Option<String>> {
    Ok(tx
        .query_opt(
            "SELECT model_version::text FROM model_champions
              WHERE rolled_back_at IS NULL ORDER BY id DESC LIMIT 1",
            &[],
        )?
        .map(|r| r.get(0)))
}

/// A `model_metrics` row with its `model_evaluations` row, if any.
const MODEL_RUN_SELECT: &str = "SELECT m.id::int8, m.model_version::text, m.training_date, m.rmse,
        m.mae, m.precision_at_10, m.data_size::int8, m.notes, e.algorithm::text, e.ndcg_at_10,
        e.recall_at_10, e.catalogue_precision_at_10, e.coverage, e.users_evaluated::int8,
        e.users_eligible::int8, e.test_ratings::int8
   FROM model_metrics m LEFT JOIN model_evaluations e ON e.model_version = m.model_version";

fn model_run_row(r: &postgres::Row) -> ModelRun {
    let evaluation = r
        .get::<_, Option<String>>(8)
        .map(|algorithm| ModelEvaluation {
            algorithm,
            ndcg_at_10: r.get(9),
            recall_at_10: r.get(10),
            catalogue_precision_at_10: r.get(11),
            coverage: r.get(12),
            users_evaluated: r.get(13),
            users_eligible: r.get(14),
            test_ratings: r.get(15),
        });
    ModelRun {
        id: r.get(0),
        model_version: r.get(1),
        training_date: r.get(2),
        rmse: r.get(3),
        mae: r.get(4),
        precision_at_10: r.get(5),
        data_size: r.get(6),
        notes: r.get(7),
        evaluation,
    }
}
