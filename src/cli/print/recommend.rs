//! `recommend` and `similar`: the lists, how they were made and why.

use cinematch::format::decimals;
use cinematch::recommend::{Item, Recommendations, Similar, SimilarBasis, Strategy};

use crate::cli::table;

pub fn recommendations(list: &Recommendations, genre: Option<&str>, why: bool) {
    let g = genre.map(|g| format!(" {g}")).unwrap_or_default();
    match list.strategy {
        Strategy::Model => println!(
            "top {} for user {} by {}:",
            list.items.len(),
            list.user_id,
            list.model_version
        ),
        Strategy::FoldIn => println!(
            "top {} for user {} by {}, folded in from their ratings (newer than the model):",
            list.items.len(),
            list.user_id,
            list.model_version
        ),
        Strategy::Popular => println!(
            "{} cannot rank user {}: cold-start list, most popular{g} by damped mean rating:",
            list.model_version, list.user_id,
        ),
    }
    let score = match list.strategy {
        Strategy::Popular => "damped_mean",
        _ if list
            .items
            .iter()
            .all(|i| i.predicted_rating == Some(i.score)) =>
        {
            "predicted"
        }
        _ => "score",
    };
    items(&list.items, score);
    if why {
        for (i, it) in list.items.iter().enumerate() {
            if it.because.is_empty() {
                continue;
            }
            let reasons: Vec<String> = it
                .because
                .iter()
                .map(|r| format!("{} ({:.0}%)", r.title, r.share * 100.0))
                .collect();
            println!(
                "  {}. {} because you rated {}",
                i + 1,
                it.title,
                reasons.join(", ")
            );
        }
        if list.items.iter().all(|i| i.because.is_empty()) {
            println!(
                "  (no explanations: the {} list has none)",
                list.strategy.as_str()
            );
        }
    }
}

pub fn similar(sim: &Similar) {
    println!(
        "movies like {} ({}), by {}:",
        sim.movie.title,
        sim.movie.movie_id,
        match sim.basis {
            SimilarBasis::ItemWeights => "the champion's item weights (EASE)",
            SimilarBasis::Factors => "the champion's movie factors",
            SimilarBasis::PcaFeatures => "PCA genre features (the model has nothing for it)",
        }
    );
    items(&sim.items, "similarity");
}

fn items(items: &[Item], score: &str) {
    let stars = items
        .iter()
        .any(|i| i.predicted_rating.is_some() && score != "predicted");
    let rows: Vec<Vec<String>> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let mut row = vec![
                (i + 1).to_string(),
                it.movie_id.to_string(),
                it.title.clone(),
                it.genres.clone(),
                decimals(Some(f64::from(it.score)), 3),
            ];
            if stars {
                row.push(decimals(it.predicted_rating.map(f64::from), 2));
            }
            row
        })
        .collect();
    let mut head = vec!["#", "movieId", "title", "genres", score];
    if stars {
        head.push("predicted_rating");
    }
    table::print(&head, &rows);
}
