//! The monitoring loop of the spec's MLOps story: the initial [`load`] of a
//! release, then batches arrive ([`ingest`]), are compared with the training
//! baseline ([`drift_check`]), and drift triggers retraining, promotion and
//! the buffer merge ([`retrain`]); [`cycle`] runs the three as one recorded
//! pipeline run and [`scheduler`] runs cycles on a schedule. [`lease`] keeps
//! cycles and retrains apart across processes and machines. [`backtest`]
//! replays a release week by week through all of it and scores the lists
//! served on the ratings that followed.

pub mod backtest;
pub mod cycle;
pub mod demo;
pub mod drift_check;
pub mod ingest;
pub mod lease;
pub mod list_quality;
pub mod load;
pub mod retrain;
pub mod scheduler;
