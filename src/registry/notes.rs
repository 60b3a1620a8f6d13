//! The JSON CineMatch keeps in `model_metrics.notes`, as one typed record
//! with one reader.
//!
//! The spec's `notes` column is free text ("Initial model", "Retrained w/
//! buffer"); CineMatch writes a JSON document there so that a run says how
//! to reproduce it (algorithm, hyperparameters, seed) and what it measured.
//! Every reader (the CLI, the API, the dashboard, the retrain) goes through
//! [`RunNotes::parse`], which accepts what older releases wrote and returns
//! `None` for notes a person typed.

use serde::{Deserialize, Serialize};

use super::cold_start::ColdStartChoice;
use crate::eval::EvalReport;
use crate::models::{Algo, Hyperparams};

/// A recorded run's notes. Fields a release did not write are `None`;
/// fields this release does not know are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunNotes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<Algo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Hyperparams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<EvalReport>,
    /// The objective in force when the run was recorded (`ndcg@10`, `rmse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_seconds: Option<f64>,
    /// Ratings trained on (train split plus buffer when included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_ratings: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_ratings: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_ratings: Option<u64>,
    /// `train`, `retrain`, `tune` or `refit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Why a retrain ran (`drift alerts: ...`, `unconditional`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The promotion decision of a retrain, one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub champion_before: Option<String>,
    /// A refit's evaluated run: the refit is that run's algorithm,
    /// hyperparameters and seed trained again on every stored rating, and
    /// carries its metrics (see [`super::refit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refit_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches: Option<Vec<String>>,
    /// A retrain's read of the buffer: the rows stamped (`ingested_at`, UTC)
    /// up to this time, `buffer_ratings` of them, which are exactly the rows
    /// it merged (see [`crate::store::BufferBound`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_through: Option<String>,
    /// A retrain's newest drift alert id when it started: alerts up to it
    /// were computed on data the retrain trained on, so they no longer ask
    /// for a retrain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts_through: Option<i64>,
    /// The champion that stayed because it changed while this run trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub champion_changed_to: Option<String>,
    /// The cold-start list this run serves to users nobody knows, chosen
    /// on the latest slices of what the store knew (see
    /// [`super::cold_start`]), with the evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<ColdStartChoice>,
    /// The history half-life this run serves with, chosen on the latest
    /// slices of what the store knew (see [`super::recency`]), with the
    /// evidence; its metrics were measured without it (a random split
    /// cannot see recency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recency: Option<super::recency::RecencyChoice>,
    /// The dataset the run trained and was scored on
    /// ([`crate::store::Store::dataset_version`]); absent in runs of older
    /// releases, which count as dataset 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlflow_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlflow_experiment_id: Option<String>,
    /// Anything else (written by a newer release, or by hand).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl RunNotes {
    /// Reads a run's notes; `None` for empty notes or notes that are not a
    /// CineMatch JSON document (text a person wrote).
    pub fn parse(notes: Option<&str>) -> Option<RunNotes> {
        let text = notes?.trim();
        if !text.starts_with('{') {
            return None;
        }
        serde_json::from_str(text).ok()
    }

    /// The notes as the JSON text `model_metrics.notes` stores.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// The algorithm, from `algorithm` or the tagged `params`.
    pub fn algo(&self) -> Option<Algo> {
        self.algorithm
            .or_else(|| self.params.as_ref().map(Hyperparams::algo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_earlier_releases_wrote() {
        // Notes as release 0.1 recorded them (every metric a number).
        let old = r#"{"algorithm":"svd","params":{"algo":"svd","factors":100,"epochs":60,"lr":0.01,"reg":0.1,"init_std":0.1,"threads":1},"seed":42,
            "metrics":{"rmse":0.8572,"mae":0.6596,"precision_at_10":0.7748,"rank_precision_at_10":0.0121,"recall_at_10":0.0054,"ndcg_at_10":0.0124,"coverage":0.0429,"test_ratings":30251,"users_evaluated":610},
            "train_seconds":0.39,"eval_seconds":0.05,"train_ratings":70585,"buffer_ratings":0,"test_ratings":30251,"kind":"retrain","decision":"promoted","mlflow_run_id":"abc"}"#;
        let n = RunNotes::parse(Some(old)).unwrap();
        assert_eq!(n.algo(), Some(Algo::Svd));
        assert_eq!(n.seed, Some(42));
        let m = n.metrics.unwrap();
        assert_eq!(
            (m.rmse, m.ndcg_at_10, m.users_evaluated),
            (Some(0.8572), Some(0.0124), 610)
        );
        assert_eq!(n.decision.as_deref(), Some("promoted"));
        assert_eq!(n.mlflow_run_id.as_deref(), Some("abc"));
    }

    #[test]
    fn free_text_is_not_notes_and_unknown_fields_survive() {
        assert_eq!(RunNotes::parse(Some("Initial model")), None);
        assert_eq!(RunNotes::parse(None), None);
        assert_eq!(RunNotes::parse(Some("{broken")), None);
        let n = RunNotes::parse(Some(r#"{"seed":7,"future_field":[1,2]}"#)).unwrap();
        assert_eq!(n.seed, Some(7));
        let back: serde_json::Value = serde_json::from_str(&n.to_json()).unwrap();
        assert_eq!(back["future_field"], serde_json::json!([1, 2]));
    }
}
