//! `load`, `stream` and `synth`: what was read, skipped and written.

use std::path::Path;

use cinematch::data::stream::StreamReport;
use cinematch::data::synth::{SynthReport, WeeklyReport};
use cinematch::data::SkipReport;
use cinematch::format::thousands;
use cinematch::pipeline::load::LoadReport;
pub fn load_report(r: &LoadReport, location: &str) {
    let s = &r.summary;
    println!(
        "loaded {} movies and {} ratings ({} train, {} test) into {location}{}",
        thousands(s.movies as i64),
        thousands((s.train + s.test) as i64),
        thousands(s.train as i64),
        thousands(s.test as i64),
        if s.replaced {
            ", replacing the previous dataset"
        } else {
            ""
        }
    );
    println!(
        "read and validated in {:.2}s, written in {:.2}s",
        r.read_secs, r.write_secs
    );
    let ratios: Vec<String> = r
        .pca
        .explained_variance_ratio
        .iter()
        .map(|v| format!("{:.1}%", v * 100.0))
        .collect();
    println!(
        "PCA genre features: 10 components over {} genres explain {:.1}% of the variance ({})",
        r.pca.genres.len(),
        r.pca.total_explained * 100.0,
        ratios.join(", ")
    );
    skipped(&r.skipped);
}

/// Rows `--skip-invalid` dropped: a count per kind and the first examples.
pub fn skipped(skipped: &SkipReport) {
    if skipped.is_empty() {
        return;
    }
    println!(
        "skipped {} invalid rows:",
        thousands(skipped.total() as i64)
    );
    for (kind, n) in &skipped.counts {
        println!("  {:>8}  {kind}", thousands(*n as i64));
    }
    println!("first problems:");
    for e in &skipped.examples {
        println!("  {e}");
    }
}

pub fn stream_report(r: &StreamReport, out: &Path) {
    println!(
        "wrote the history ({} ratings) and {} weekly batches to {}",
        thousands(r.history.ratings as i64),
        r.batches.len(),
        out.display()
    );
    for b in &r.batches {
        println!(
            "  {}  {} ratings, mean {:.3}, {} by users and {} for movies unseen in the history",
            b.path.display(),
            thousands(b.ratings as i64),
            b.mean_rating,
            b.unseen_users,
            b.unseen_movies
        );
    }
    println!(
        "load with `cinematch load {}`, then `cinematch ingest FILE --batch-id batch_wN`",
        out.display()
    );
}

pub fn synth_report(r: &SynthReport, out: &Path) {
    println!(
        "wrote {} ratings by {} users of {} movies to {} (mean rating {:.3})",
        thousands(r.ratings as i64),
        r.users,
        r.movies,
        out.display(),
        r.mean_rating
    );
}

pub fn synth_weekly_report(r: &WeeklyReport, out: &Path) {
    println!(
        "wrote {} history ratings and {} weekly batches to {}",
        thousands(r.history.ratings as i64),
        r.weeks.len(),
        out.display()
    );
    for w in &r.weeks {
        println!(
            "  {}  {} ratings, mean {:.3}, std {:.3}{}",
            w.path.display(),
            thousands(w.ratings as i64),
            w.mean_rating,
            w.std_rating,
            if w.drift.is_empty() {
                String::new()
            } else {
                format!(
                    "  drift: {}",
                    w.drift
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            }
        );
    }
}
