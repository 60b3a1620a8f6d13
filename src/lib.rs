//! CineMatch: a self-contained MLOps system for movie recommendations.
//!
//! The crate is library-first: the `cinematch` binary (`src/cli`, argument
//! parsing and printing only) and the HTTP server are thin layers over the
//! modules below, which the tests call directly. Lower layers never depend
//! on higher ones: storage, data, models, evaluation and drift know nothing
//! of the registry, the pipeline or the server.
//!
//! Storage and data
//! * [`store`]: one [`store::Store`] trait for the CineMatch schema, with a
//!   PostgreSQL backend (production) and an embedded SQLite backend (the
//!   default), chosen from the database URL.
//! * [`data`]: MovieLens readers for every published format, validation,
//!   train/test splitting, PCA genre features and the synthetic generator.
//! * [`types`]: the records and statuses every layer shares, and the
//!   rating rules (range, half-star grid) in one place.
//!
//! Models and their judgement
//! * [`models`]: every algorithm behind one fit/predict/score interface
//!   (rating models: baseline, svd, als; ranking models: ease, ials), and
//!   the versioned artifact format.
//! * [`eval`]: one evaluation path for every model: RMSE/MAE, the spec's
//!   precision@10 and the full-catalogue ranking metrics.
//! * [`registry`]: training runs, the objective-aware champion gate, tuning
//!   on a validation split, and run notes.
//! * [`drift`]: the statistical tests between the training data and a new
//!   batch.
//! * [`tracking`]: optional MLflow tracking of runs and champions.
//!
//! Operation
//! * [`pipeline`]: one file per operation: load, ingest, drift check,
//!   retrain, the weekly cycle, its lease, the scheduler and the demo.
//! * [`recommend`]: the lists served: model, fold-in or popular, with
//!   explanations and similar movies.
//! * [`server`]: the HTTP API and the dashboard, thin handlers over the
//!   above.
//!
//! Plumbing
//! * [`error`]: the library's typed errors.
//! * [`progress`]: progress reporting that works on a terminal and in logs.
//! * [`format`](mod@format): counts, sizes and metrics as the CLI and the
//!   dashboard print them.
//! * [`shutdown`]: SIGINT/SIGTERM as one stop request for the server and the
//!   scheduler.
//! * `topk` (one top-k heap for models and serving) and `failpoint` (named
//!   crash points for the fault tests, compiled in with the `failpoints`
//!   feature) are internal.

pub mod data;
pub mod drift;
pub mod error;
pub mod eval;
mod failpoint;
pub mod format;
pub mod models;
pub mod pipeline;
pub mod progress;
pub mod recommend;
pub mod registry;
pub mod server;
pub mod shutdown;
pub mod store;
/// The shared data for the unit tests: the integration tests' own helper,
/// so both find it the same way (`$CINEMATCH_SHARED_DIR` or `../shared`).
#[cfg(test)]
#[path = "../tests/common/shared.rs"]
mod test_shared;
mod topk;
pub mod tracking;
pub mod types;

pub use error::{Error, Result};
pub use types::{
    IngestionStatus, Movie, PipelineStatus, Rated, Rating, Split, SplitRating, StepStatus,
};
