//! `cinematch demo`: the spec's whole MLOps story on one database, with no
//! setup and no download. Synthetic MovieLens-shaped history (or a real
//! release), the 70/30 load, the first model, then three weekly batches of
//! which the third carries injected drift; drift is checked after each and
//! triggers retraining, promotion and the buffer merge when it fires.

use std::path::{Path, PathBuf};

use crate::data::stream::{self, StreamOptions};
use crate::data::synth::{self, DriftKind, DriftSpec, SynthOptions, WeeklyOptions};
use crate::data::writer::write_ratings_file;
use crate::data::{formats, ReadOptions, SkipReport};
use crate::models::{Algo, Hyperparams};
use crate::pipeline::load::{self, LoadOptions, Source};
use crate::progress::Progress;
use crate::registry::{self, Objective, TrainOptions};
use crate::store::Store;
use crate::types::{Rating, MAX_RATING, MIN_RATING};
use crate::{Error, Result};

use super::cycle::{run_cycle, CycleOptions, CycleReport};
use super::drift_check::Thresholds;

/// The drift injected into the demo's third week: a mean shift and a genre
/// shift, each well past the spec's thresholds.
pub fn default_drift() -> Vec<DriftKind> {
    vec![
        DriftKind::Mean(0.6),
        DriftKind::Genre {
            genre: "Comedy".into(),
            delta: 0.5,
        },
    ]
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// A real MovieLens release instead of synthetic data.
    pub data: Option<PathBuf>,
    /// Where the generated files go.
    pub work_dir: PathBuf,
    pub history_ratings: u64,
    pub users: u32,
    pub movies: u32,
    pub ratings_per_week: u64,
    pub weeks: u32,
    /// The week that carries `drift` (1-based).
    pub drift_week: u32,
    pub drift: Vec<DriftKind>,
    pub seed: u64,
    pub thresholds: Thresholds,
    /// What the champion gate compares.
    pub objective: Objective,
}

/// The demo's thresholds: the defaults, except the chi-square test at
/// p < 0.001. Nine tests run on every batch; at p < 0.05 the chi-square
/// test alone raises a false alarm in about one clean week in twenty (with
/// seed 42 the clean week 2 came out at p = 0.0499), and a 10,000-rating
/// batch makes even negligible differences significant.
pub fn demo_thresholds() -> Thresholds {
    Thresholds {
        rating_chi2_alpha: 0.001,
        ..Thresholds::default()
    }
}

impl DemoOptions {
    pub fn new(work_dir: PathBuf) -> DemoOptions {
        DemoOptions {
            data: None,
            work_dir,
            history_ratings: 100_000,
            users: 610,
            movies: 9_000,
            ratings_per_week: 10_000,
            weeks: 3,
            drift_week: 3,
            drift: default_drift(),
            seed: 42,
            thresholds: demo_thresholds(),
            objective: Objective::default(),
        }
    }
}

pub struct DemoReport {
    pub first_model: String,
    /// The models trained before the weekly cycles, with their evaluation.
    pub models: Vec<(Algo, String, crate::eval::EvalReport)>,
    pub weeks: Vec<(String, CycleReport)>,
}

/// Runs the story, narrating each step through `say`.
pub fn run(
    store: &mut dyn Store,
    opts: &DemoOptions,
    progress: &dyn Progress,
    say: &mut dyn FnMut(&str),
) -> Result<DemoReport> {
    let counts = store.table_counts()?;
    if counts
        .iter()
        .filter(|t| crate::store::schema::SPEC_TABLES.contains(&t.table.as_str()))
        .any(|t| t.rows > 0)
    {
        return Err(Error::Conflict(format!(
            "{} already holds data; the demo needs an empty database",
            store.location()
        )));
    }
    std::fs::create_dir_all(&opts.work_dir).map_err(|e| Error::io(&opts.work_dir, e))?;
    let data_dir = opts.work_dir.join("data");
    let batches: Vec<PathBuf> = match &opts.data {
        None => {
            say(&format!(
                "1. Generating synthetic MovieLens-shaped data: {} history ratings by {} users of {} movies, \
                 then {} weekly batches of {} (week {} with drift {})",
                opts.history_ratings,
                opts.users,
                opts.movies,
                opts.weeks,
                opts.ratings_per_week,
                opts.drift_week,
                opts.drift.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",")
            ));
            let synth_opts = SynthOptions {
                users: opts.users,
                movies: opts.movies,
                ratings: opts.history_ratings,
                seed: opts.seed,
                ..SynthOptions::default()
            };
            let weekly = WeeklyOptions {
                weeks: opts.weeks,
                ratings_per_week: opts.ratings_per_week,
                drift: vec![DriftSpec {
                    week: opts.drift_week,
                    kinds: opts.drift.clone(),
                }],
            };
            let report = synth::generate_weekly(&data_dir, &synth_opts, &weekly, progress)?;
            report.weeks.iter().map(|w| w.path.clone()).collect()
        }
        Some(dir) => {
            say(&format!(
                "1. Replaying {}: the earliest 80% of ratings are the history, the rest {} weekly batches; \
                 week {} gets a +0.6 star shift injected",
                dir.display(),
                opts.weeks,
                opts.drift_week
            ));
            let report = stream::stream(
                dir,
                &data_dir,
                &StreamOptions {
                    weeks: opts.weeks,
                    ..StreamOptions::default()
                },
                progress,
            )?;
            let paths: Vec<PathBuf> = report.batches.iter().map(|c| c.path.clone()).collect();
            if let Some(p) = paths.get(opts.drift_week as usize - 1) {
                shift_ratings(p, 0.6)?;
            }
            paths
        }
    };

    say("2. Loading the history with a 70/30 random train/test split");
    let loaded = load::load(
        store,
        &Source::Dir(data_dir.clone()),
        &LoadOptions::default(),
        progress,
    )?;
    say(&format!(
        "   {} train and {} test ratings, {} movies with 10-dim PCA genre features",
        loaded.summary.train, loaded.summary.test, loaded.summary.movies
    ));

    say(
        "3. Training a rating model (svd, judged by RMSE) and a ranking model (ease, judged by \
         NDCG@10 over the whole catalogue); the champion is the better one on the objective",
    );
    let mut trained = Vec::new();
    for algo in [Algo::Svd, Algo::Ease] {
        let mut topts = TrainOptions::new(Hyperparams::default_for(algo));
        topts.seed = opts.seed;
        topts.objective = opts.objective;
        let out = registry::train(store, &topts, progress)?;
        let fmt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
        let mark = match (&out.decision, out.is_champion) {
            (None, true) => "  <- champion (the first model)".to_string(),
            (Some(_), true) => format!("  <- champion (better on {})", opts.objective),
            _ => String::new(),
        };
        say(&format!(
            "   {:<5} {}: RMSE {}, NDCG@10 {}, recall@10 {}, P@10 {}{mark}",
            algo.as_str(),
            out.run.model_version,
            fmt(out.report.rmse),
            fmt(out.report.ndcg_at_10),
            fmt(out.report.recall_at_10),
            fmt(out.report.rank_precision_at_10),
        ));
        if let Some(d) = &out.decision {
            say(&format!(
                "         gate on {}: {}",
                opts.objective, d.reason
            ));
        }
        trained.push((algo, out.run.model_version.clone(), out.report.clone()));
    }
    let mut weeks = Vec::new();
    for (i, path) in batches.iter().enumerate() {
        let batch_id = format!("batch_w{}", i + 1);
        say(&format!(
            "{}. Week {}: pipeline cycle on {} (ingest, drift check, retrain if drift)",
            4 + i,
            i + 1,
            batch_id
        ));
        let cycle = run_cycle(
            store,
            &CycleOptions {
                batch: Some((path.clone(), batch_id.clone())),
                thresholds: opts.thresholds.clone(),
                retrain: super::retrain::RetrainOptions {
                    objective: opts.objective,
                    ..Default::default()
                },
                ..CycleOptions::default()
            },
            progress,
        )?;
        for s in &cycle.steps {
            say(&format!("   {:<12} {:<8} {}", s.name, s.status, s.detail));
        }
        if !cycle.succeeded {
            return Err(Error::Conflict(format!(
                "the pipeline cycle of {batch_id} failed: {}",
                cycle.summary()
            )));
        }
        weeks.push((batch_id, cycle));
    }
    Ok(DemoReport {
        first_model: trained[0].1.clone(),
        models: trained,
        weeks,
    })
}

/// Injects a mean shift into a real batch file (rounded to the half-star
/// grid, clipped to 0.5..5.0), rewriting it in MovieLens CSV.
fn shift_ratings(path: &Path, delta: f32) -> Result<()> {
    let mut skipped = SkipReport::default();
    let ratings = formats::read_ratings(path, ReadOptions::default(), None, &mut skipped)?;
    let shifted: Vec<Rating> = ratings
        .into_iter()
        .map(|r| Rating {
            rating: (((r.rating + delta) * 2.0).round() / 2.0).clamp(MIN_RATING, MAX_RATING),
            ..r
        })
        .collect();
    write_ratings_file(path, &shifted)
}
