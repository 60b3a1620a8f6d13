//! CineMatch: a self-contained MLOps system for movie recommendations.
//!
//! The crate is library-first: the `cinematch` binary (see `src/cli`) and the
//! HTTP server are thin layers over the modules below, which tests call
//! directly.
//!
//! * [`store`]: one [`store::Store`] trait for the CineMatch schema, with a
//!   PostgreSQL backend (production) and an embedded SQLite backend (default).
//! * [`data`]: MovieLens readers for every published format, validation,
//!   train/test splitting, PCA genre features and the synthetic generator.
//! * [`progress`]: progress reporting that works on a terminal and in logs.
//! * [`format`](mod@format): counts, sizes and metrics as the CLI and the dashboard print them.
//! * [`shutdown`]: SIGINT/SIGTERM as one stop request for the server and the scheduler.

pub mod data;
pub mod drift;
pub mod error;
pub mod eval;
pub mod failpoint;
pub mod format;
pub mod models;
pub mod pipeline;
pub mod progress;
pub mod recommend;
pub mod registry;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod topk;
pub mod tracking;
pub mod types;

pub use error::{Error, Result};
pub use types::{IngestionStatus, Movie, PipelineStatus, Rating, Split, SplitRating, StepStatus};
