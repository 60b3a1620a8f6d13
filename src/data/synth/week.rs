//! What the weekly batches are asked to be: how many, how big, what drift,
//! and how long a week is. Below both the planner (`plan`) and the writer
//! (`weekly`), so neither imports the other for it.

use super::drift::DriftSpec;

/// Length of one batch window.
pub const WEEK_SECONDS: i64 = 7 * 86_400;

/// How many weekly batches to write after the history, and what to inject.
#[derive(Debug, Clone, PartialEq)]
pub struct WeeklyOptions {
    pub weeks: u32,
    /// Exact number of ratings in every batch file.
    pub ratings_per_week: u64,
    /// Weeks not listed are clean.
    pub drift: Vec<DriftSpec>,
}

impl Default for WeeklyOptions {
    /// A month of clean weeks, each about a fifth of ml-latest-small's
    /// 2018 activity scaled up enough for stable drift statistics.
    fn default() -> Self {
        WeeklyOptions {
            weeks: 4,
            ratings_per_week: 10_000,
            drift: Vec::new(),
        }
    }
}
