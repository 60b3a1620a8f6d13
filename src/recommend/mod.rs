//! Answering "what should user U watch, and why?" and "what is like movie
//! M?" from the champion model, with a cold-start list for users it cannot
//! rank.
//!
//! [`Recommender`] holds everything a request needs in memory (the model,
//! the rating model whose predicted stars are shown beside a ranking
//! model's list, the catalogue, the popularity ranking), so the CLI builds
//! one per command and the server keeps one and swaps it when the champion
//! changes.
//!
//! **How a list is made** ([`Strategy`]): a user the champion was trained
//! on is ranked from what training learned (`model`); a user whose ratings
//! are newer than the champion (buffered, just posted, or never seen) is
//! ranked from those ratings at request time when the model can (`fold-in`:
//! EASE scores any history, iALS solves the user's factors against the
//! fixed movie factors); anyone else gets the popular list (`popular`).
//! Every movie in the history given is left out of the list.
//!
//! **Why** ([`Reason`]): each item can carry the rated movies that
//! contributed most to its score, computed from the model itself: EASE's
//! item-matrix terms `w_i · B_ij`, and for iALS the per-movie terms of the
//! folded-in score (as `implicit`'s `explain`).
//!
//! **The serving scan.** Ranking a user of a factor model scores every
//! movie, which streams the whole movie-factor matrix through the CPU per
//! request; that read is most of what a request costs. On CPUs with AVX2
//! and FMA the [`Recommender`] keeps the movie factors as 8-bit integers
//! with a scale per movie (a quarter of the bytes), scores every movie from
//! them in exact integer arithmetic with a proven per-movie error bound,
//! and re-scores exactly, with the model's own f32 arithmetic, only the
//! movies whose upper bound reaches the k-th best lower bound (for k = 10
//! on ml-latest-small and the 62,000-movie benchmark, 11 to 12 on average,
//! at most 18). The answer is therefore exactly [`FactorModel::top_k`]'s
//! (same scores, same order, same tie-breaks), which the tests check on
//! random models built to break it (`scan`). Buffers are per thread and
//! reused, so a request allocates only its answer.

mod cache;
mod catalogue;
mod export;
mod known;
pub mod lookup;
mod scan;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::sync::Arc;

use serde::Serialize;

pub use crate::models::popular::{
    by_count, popularity, ColdStart, POPULAR_DAMPING, POPULAR_MIN_COUNT,
};
pub use known::Known;

use crate::models::{
    EaseModel, FactorModel, FoldedUser, Model, NicheTable, MAX_RATING, MIN_RATING,
};
use crate::registry;
use crate::store::{MovieStats, Store};
use crate::topk::{Cand, TopK};
use crate::types::{Movie, Rated};
use crate::{Error, Result};
use cache::ListCache;
pub use cache::DEFAULT_LIST_CACHE_ITEMS;
use catalogue::ModelCatalogue;

/// The largest `k` any request may ask for.
pub const MAX_K: usize = 100;
/// Rated movies named per recommended movie.
pub const MAX_REASONS: usize = 3;

/// How a list was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Strategy {
    /// Personalized from what the champion learned about the user.
    #[serde(rename = "model")]
    Model,
    /// Personalized from the user's ratings at request time: ratings newer
    /// than the champion, or a user it never saw.
    #[serde(rename = "fold-in")]
    FoldIn,
    /// Not personalized: the cold-start list.
    #[serde(rename = "popular")]
    Popular,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Model => "model",
            Strategy::FoldIn => "fold-in",
            Strategy::Popular => "popular",
        }
    }
}

/// A rated movie that contributed to a recommendation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub movie_id: i32,
    pub title: String,
    /// Its part of what raised the score: its term divided by the sum of
    /// the positive terms (so the shares of all contributing movies sum to
    /// 1, and the reasons shown to at most 1).
    pub share: f32,
}

/// One recommended or similar movie.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub movie_id: i32,
    pub title: String,
    pub genres: String,
    /// Predicted rating (rating models), the model's ranking score (ranking
    /// models), damped mean (popular) or similarity (similar movies).
    pub score: f32,
    /// Predicted stars from the rating model, when one exists (for a
    /// rating champion, the clipped score itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_rating: Option<f32>,
    /// Why this movie, when explanations were asked for and the model can
    /// give them: the user's rated movies that contributed most, best first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub because: Vec<Reason>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendations {
    pub user_id: i32,
    pub strategy: Strategy,
    pub model_version: String,
    pub items: Vec<Item>,
}

/// Where similar movies came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SimilarBasis {
    /// EASE's item matrix: the movies this one's row weighs most.
    ItemWeights,
    /// Cosine similarity of the champion's movie factors.
    Factors,
    /// Cosine similarity of the PCA genre features (the model has nothing
    /// for the movie).
    PcaFeatures,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Similar {
    pub movie: Item,
    pub basis: SimilarBasis,
    pub items: Vec<Item>,
}

/// What one recommendation request asks.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub user_id: i32,
    pub k: usize,
    pub genre: Option<&'a str>,
    /// Every rating of the user the caller knows, in any split, the buffer
    /// or just posted, in any order (duplicates are fine): none of these
    /// movies is recommended, and models that score from ratings read them.
    pub history: &'a [Rated],
    /// Whether some of `history` is newer than the champion (buffered or
    /// posted since it was trained): the list is then folded in from the
    /// history where the model can.
    pub fresh: bool,
    /// Attach [`Reason`]s to the items.
    pub explain: bool,
}

impl<'a> Request<'a> {
    /// A plain request: no genre, no explanations, nothing fresh.
    pub fn new(user_id: i32, k: usize, history: &'a [Rated]) -> Request<'a> {
        Request {
            user_id,
            k,
            genre: None,
            history,
            fresh: false,
            explain: false,
        }
    }
}

/// One recommended movie before titles are attached: the server's hot path
/// serializes these directly.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub movie_id: i32,
    pub score: f32,
    pub predicted_rating: Option<f32>,
    /// `(movieId, share)`, best first.
    pub because: Vec<(i32, f32)>,
}

/// The champion and what serving it needs, loaded once.
pub struct Recommender {
    pub model_version: String,
    pub model: Arc<Model>,
    /// The model predicted stars come from when the champion is a ranking
    /// model, with its version.
    pub rating_model: Option<(String, Arc<Model>)>,
    /// How the `popular` list of users nobody knows is made.
    pub cold_start: ColdStart,
    catalogue: ModelCatalogue,
    /// The 8-bit copy of a factor model's movie factors the serving scan
    /// reads, when the CPU has the kernels.
    quantized: Option<scan::Quantized>,
    /// What the niche re-ranking of short histories reads (empty when the
    /// model does not re-rank).
    niche: NicheTable,
    /// Lists of returning users (see the `cache` module).
    lists: ListCache,
}

impl Recommender {
    /// Loads the champion and everything serving it needs (see
    /// [`Recommender::assemble`]).
    pub fn load(store: &mut dyn Store) -> Result<Recommender> {
        let (version, model) = registry::load_champion(store)?;
        let movies = store.movies()?;
        let stats = store.movie_stats()?;
        Recommender::assemble(store, version, model, movies, &stats)
    }

    /// A recommender for `model` as the server serves it: with the rating
    /// model whose stars are shown beside a ranking model's list (see
    /// [`registry::load_rating_model`]) and the cold-start list the run
    /// recorded, and the history half-life it chose (see [`registry::serving`]), from what the store
    /// knows now.
    pub fn assemble(
        store: &mut dyn Store,
        version: String,
        model: Model,
        movies: Vec<Movie>,
        stats: &[MovieStats],
    ) -> Result<Recommender> {
        let rating = if model.predicts_ratings() {
            None
        } else {
            registry::load_rating_model(store)?
        };
        let serving = registry::serving(store, &version)?;
        let mut model = model;
        if let Some(h) = serving.history_half_life {
            if model
                .history_half_life()
                .is_some_and(|own| own.as_days().is_none())
            {
                model.set_history_half_life(h);
            }
        }
        let cold_start = serving.cold_start;
        let list = cold_start_list(store, cold_start, stats, None)?;
        Ok(Recommender::new(version, model, movies, stats)
            .with_rating_model(rating)
            .with_cold_start(cold_start, list))
    }

    /// A recommender whose cold-start list is [`ColdStart::TopRated`] from
    /// `stats` (see [`Recommender::with_cold_start`] for another).
    pub fn new(
        model_version: String,
        model: Model,
        movies: Vec<Movie>,
        stats: &[MovieStats],
    ) -> Recommender {
        let quantized = match &model {
            Model::Factor(m) => scan::Quantized::new(m),
            Model::Ease(_) => None,
        };
        let niche = if model.niche().is_off() {
            NicheTable::default()
        } else {
            let counts = stats.iter().map(|s| (s.movie_id, s.count)).collect();
            NicheTable::new(model.movie_ids(), &movies, &counts)
        };
        Recommender {
            catalogue: ModelCatalogue::new(model.movie_ids(), movies, popularity(stats)),
            quantized,
            niche,
            model_version,
            model: Arc::new(model),
            rating_model: None,
            cold_start: ColdStart::TopRated,
            lists: ListCache::new(DEFAULT_LIST_CACHE_ITEMS),
        }
    }

    /// Serves `list` (movie ids with a score, best first) to users nobody
    /// knows, made as `kind` says.
    pub fn with_cold_start(mut self, kind: ColdStart, list: Vec<(i32, f64)>) -> Recommender {
        self.cold_start = kind;
        self.catalogue.popular = list;
        self
    }

    /// How many movies of `model` lists are kept for returning users (0
    /// computes every list on every request); see
    /// [`DEFAULT_LIST_CACHE_ITEMS`].
    pub fn with_list_cache(mut self, items: usize) -> Recommender {
        self.lists = ListCache::new(items);
        self
    }

    /// Users whose list is held.
    pub fn cached_lists(&self) -> usize {
        self.lists.len()
    }

    /// Computes and keeps the user's top `k` with explanations, as their
    /// first request would, so that requests for up to `k` movies from the
    /// history given are answered from memory (see the `cache` module).
    /// Only users the model ranks from what it learned have such a list:
    /// returns whether one is held (false for users it would fold in or
    /// give the popular list, and once the cache's budget is spent).
    pub fn precompute(&self, user_id: i32, history: &[Rated], k: usize) -> Result<bool> {
        let req = Request {
            explain: true,
            ..Request::new(user_id, k, history)
        };
        if self.lists.answers(user_id, k, true, history) {
            return Ok(true);
        }
        let ranks_from_model = match &*self.model {
            Model::Factor(m) => m.user_index(user_id).is_some(),
            Model::Ease(_) => !history.is_empty(),
        };
        if !ranks_from_model || !self.lists.has_room(k) {
            return Ok(false);
        }
        self.recommend_ids(&req)?;
        Ok(self.lists.answers(user_id, k, true, history))
    }

    /// Shows predicted stars of `rating` beside a ranking champion's list.
    pub fn with_rating_model(mut self, rating: Option<(String, Model)>) -> Recommender {
        self.rating_model = rating
            .filter(|(_, m)| m.predicts_ratings())
            .map(|(v, m)| (v, Arc::new(m)));
        self
    }

    /// Whether requests use the quantized scan (see the module docs) rather
    /// than [`FactorModel::top_k`]'s exact scan; both give the same answers.
    pub fn uses_quantized_scan(&self) -> bool {
        self.quantized.is_some()
    }

    pub fn movie(&self, movie_id: i32) -> Option<&Movie> {
        self.catalogue.movies.get(&movie_id)
    }

    /// The catalogue's spelling of `genre` typed in any case;
    /// [`Error::UnknownGenre`] naming the genres when no movie has it (a
    /// typo is an error, not an empty list).
    pub fn canonical_genre(&self, genre: &str) -> Result<String> {
        lookup::canonical_genre(self.catalogue.movies.values(), genre)
    }

    pub fn catalogue_size(&self) -> usize {
        self.catalogue.movies.len()
    }

    fn title(&self, movie_id: i32) -> String {
        match self.catalogue.movies.get(&movie_id) {
            Some(m) => m.title.clone(),
            None => format!("movie {movie_id}"),
        }
    }

    fn item(&self, r: &Ranked) -> Item {
        let (title, genres) = match self.catalogue.movies.get(&r.movie_id) {
            Some(m) => (m.title.clone(), m.genres.clone()),
            None => (format!("movie {}", r.movie_id), String::new()),
        };
        Item {
            movie_id: r.movie_id,
            title,
            genres,
            score: r.score,
            predicted_rating: r.predicted_rating,
            because: r
                .because
                .iter()
                .map(|&(id, share)| Reason {
                    movie_id: id,
                    title: self.title(id),
                    share,
                })
                .collect(),
        }
    }

    /// The top `req.k` movies for the user with titles (see
    /// [`Recommender::recommend_ids`]).
    pub fn recommend(&self, req: &Request) -> Result<Recommendations> {
        let (strategy, top) = self.recommend_ids(req)?;
        Ok(Recommendations {
            user_id: req.user_id,
            strategy,
            model_version: self.model_version.clone(),
            items: top.iter().map(|r| self.item(r)).collect(),
        })
    }

    /// The top `req.k` movies the user has not rated, best first, with how
    /// the list was made (see the module docs), without titles.
    pub fn recommend_ids(&self, req: &Request) -> Result<(Strategy, Vec<Ranked>)> {
        check_k(req.k)?;
        if req.user_id <= 0 {
            return Err(Error::InvalidArgument(format!(
                "user id must be a positive integer, got {}",
                req.user_id
            )));
        }
        let genre = req.genre.map(str::trim).filter(|g| !g.is_empty());
        // Only lists of the history the model knew, unfiltered, are kept:
        // fold-in lists follow every new rating.
        let cacheable = genre.is_none() && !req.fresh;
        if cacheable {
            if let Some(top) = self.lists.get(req.user_id, req.k, req.explain, req.history) {
                return Ok((Strategy::Model, top));
            }
        }
        let personal = match &*self.model {
            Model::Factor(m) => self.rank_factor(m, req, genre),
            Model::Ease(m) => self.rank_ease(m, req, genre),
        };
        if let Some((strategy, mut top)) = personal {
            self.attach_ratings(req.user_id, &mut top);
            if cacheable && strategy == Strategy::Model {
                self.lists
                    .put(req.user_id, req.k, req.explain, req.history, &top);
            }
            return Ok((strategy, top));
        }
        Ok((Strategy::Popular, self.popular(req, genre)))
    }

    /// The cold-start list without the history's movies.
    fn popular(&self, req: &Request, genre: Option<&str>) -> Vec<Ranked> {
        let many = req.history.len() > 32;
        let set: std::collections::HashSet<i32> = if many {
            req.history.iter().map(|h| h.movie_id).collect()
        } else {
            Default::default()
        };
        let is_rated = |id: i32| {
            if many {
                set.contains(&id)
            } else {
                req.history.iter().any(|h| h.movie_id == id)
            }
        };
        self.catalogue
            .popular
            .iter()
            .filter(|&&(id, _)| {
                !is_rated(id) && genre.is_none_or(|g| self.catalogue.in_genre(id, g))
            })
            .take(req.k)
            .map(|&(id, score)| Ranked {
                movie_id: id,
                score: score as f32,
                predicted_rating: None,
                because: Vec::new(),
            })
            .collect()
    }

    /// Predicted stars beside each item: the rating champion's own clipped
    /// score, or the rating model's prediction.
    fn attach_ratings(&self, user: i32, top: &mut [Ranked]) {
        if self.model.predicts_ratings() {
            for r in top.iter_mut() {
                r.predicted_rating = Some(r.score);
            }
        } else if let Some((_, m)) = &self.rating_model {
            for r in top.iter_mut() {
                r.predicted_rating = m.predict(user, r.movie_id);
            }
        }
    }

    /// Sets the history's movies and, with a genre, every movie outside
    /// it to −∞ in `scores` (indexed like the model's movies).
    fn exclude(&self, scores: &mut [f32], req: &Request, genre: Option<&str>) {
        let model = &*self.model;
        for h in req.history {
            if let Some(m) = self.catalogue.index(h.movie_id, |id| model.movie_index(id)) {
                scores[m] = f32::NEG_INFINITY;
            }
        }
        if let Some(g) = genre {
            self.catalogue
                .genres
                .exclude_others(g, &self.catalogue.movies, scores);
        }
    }

    fn rank_factor(
        &self,
        m: &FactorModel,
        req: &Request,
        genre: Option<&str>,
    ) -> Option<(Strategy, Vec<Ranked>)> {
        let known = m.user_index(req.user_id);
        let fold = m.implicit().is_some() && (req.fresh || known.is_none());
        let folded: Option<FoldedUser> = if fold || (req.explain && m.implicit().is_some()) {
            m.fold_in(req.history)
        } else {
            None
        };
        let (strategy, pu, base): (Strategy, &[f32], f32) = match (&folded, known) {
            (Some(f), _) if fold => (Strategy::FoldIn, &f.vector, m.global_mean()),
            (_, Some(u)) => (
                Strategy::Model,
                m.user_vector(req.user_id).unwrap_or(&[]),
                m.global_mean() + m.user_bias()[u],
            ),
            _ => return None,
        };
        let top = if m.implicit().is_some() && !self.niche.is_empty() {
            self.reranked_for_vector(m, pu, base, req, genre)
        } else {
            self.top_for_vector(m, pu, base, req, genre)
        };
        let mut ranked: Vec<Ranked> = top
            .into_iter()
            .map(|(idx, score)| Ranked {
                movie_id: m.movie_ids()[idx],
                score: if m.algo().predicts_ratings() {
                    clip_rating(score)
                } else {
                    score
                },
                predicted_rating: None,
                because: Vec::new(),
            })
            .collect();
        if req.explain {
            if let (Some(f), Some(solver)) = (&folded, m.implicit()) {
                for r in ranked.iter_mut() {
                    if let Some(j) = m.movie_index(r.movie_id) {
                        let parts = solver.explain(m.q(), f, j as u32);
                        let ids = f.items.iter().map(|&(i, _)| m.movie_ids()[i as usize]);
                        r.because = reasons(ids, &parts);
                    }
                }
            }
        }
        Some((strategy, ranked))
    }

    /// The model's top `k` for user factors `pu` (scores `base + b_i + pu ·
    /// q_i`), as (dense index, exact score): exactly the order of
    /// [`FactorModel::top_k`] with the history and, with a genre, every
    /// movie outside it excluded.
    fn top_for_vector(
        &self,
        m: &FactorModel,
        pu: &[f32],
        base: f32,
        req: &Request,
        genre: Option<&str>,
    ) -> Vec<(usize, f32)> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let Scratch {
                scores,
                top,
                candidates,
                pairs,
            } = &mut *scratch;
            let Some(quantized) = self.quantized.as_ref().filter(|_| pu.len() == m.k()) else {
                // The portable path: every exact score.
                m.score_with(pu, base, scores);
                self.exclude(scores, req, genre);
                top.reset(req.k);
                top.offer_all(scores);
                return top
                    .drain_sorted()
                    .into_iter()
                    .map(|c| (c.idx as usize, c.score))
                    .collect();
            };
            let slack = quantized.lower_bounds(pu, base, scores, pairs);
            self.exclude(scores, req, genre);
            // L, the k-th largest lower bound: k movies score at least L.
            top.reset(req.k);
            top.offer_all(scores);
            let cut = match top.worst() {
                Some(worst) if top.is_full() => worst.score,
                // Fewer than k movies left: every one of them is an answer.
                _ => f32::MIN,
            };
            candidates.clear();
            quantized.collect_candidates(scores, slack, cut, candidates);
            let mut exact: Vec<Cand> = candidates
                .iter()
                .map(|&c| Cand {
                    score: m.score_one(pu, base, c as usize),
                    idx: c,
                })
                .collect();
            exact.sort_unstable_by(|a, b| b.cmp(a));
            exact.truncate(req.k);
            exact
                .into_iter()
                .map(|c| (c.idx as usize, c.score))
                .collect()
        })
    }

    /// The model's top `k` for user factors `pu` re-ranked for the niche
    /// (see [`crate::models::niche`]): every score computed exactly, then
    /// re-ranked.
    fn reranked_for_vector(
        &self,
        m: &FactorModel,
        pu: &[f32],
        base: f32,
        req: &Request,
        genre: Option<&str>,
    ) -> Vec<(usize, f32)> {
        SCRATCH.with(|scratch| {
            let scores = &mut scratch.borrow_mut().scores;
            m.score_with(pu, base, scores);
            self.exclude(scores, req, genre);
            self.model
                .rerank(&self.niche, req.history, scores, req.k)
                .unwrap_or_default()
        })
    }

    fn rank_ease(
        &self,
        m: &EaseModel,
        req: &Request,
        genre: Option<&str>,
    ) -> Option<(Strategy, Vec<Ranked>)> {
        let hist = m.history(req.history);
        if hist.is_empty() {
            return None;
        }
        let strategy = if req.fresh {
            Strategy::FoldIn
        } else {
            Strategy::Model
        };
        let top: Vec<Cand> = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let Scratch { scores, top, .. } = &mut *scratch;
            m.score(&hist, scores);
            self.exclude(scores, req, genre);
            if let Some(list) = self.model.rerank(&self.niche, req.history, scores, req.k) {
                return list
                    .into_iter()
                    .map(|(i, score)| Cand {
                        score,
                        idx: i as u32,
                    })
                    .collect();
            }
            top.reset(req.k);
            top.offer_all(scores);
            top.drain_sorted()
        });
        let ids = m.movie_ids();
        Some((
            strategy,
            top.into_iter()
                .map(|c| Ranked {
                    movie_id: ids[c.idx as usize],
                    score: c.score,
                    predicted_rating: None,
                    because: if req.explain {
                        let parts = m.contributions(&hist, c.idx as usize);
                        reasons(hist.iter().map(|&(i, _)| ids[i as usize]), &parts)
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        ))
    }

    /// The `k` movies most like `movie_id`: by EASE's item weights or the
    /// model's factors, or by PCA genre features for a movie the model has
    /// nothing for.
    pub fn similar(&self, movie_id: i32, k: usize) -> Result<Similar> {
        check_k(k)?;
        let movie =
            self.catalogue.movies.get(&movie_id).ok_or_else(|| {
                Error::NotFound(format!("movie {movie_id} is not in the catalogue"))
            })?;
        let (basis, from_model) = match &*self.model {
            Model::Ease(m) => (SimilarBasis::ItemWeights, m.related(movie_id, k)),
            Model::Factor(m) => (SimilarBasis::Factors, m.similar_movies(movie_id, k)),
        };
        let (basis, found) = if !from_model.is_empty() {
            (basis, from_model)
        } else {
            (SimilarBasis::PcaFeatures, self.similar_by_pca(movie, k))
        };
        let plain = |id: i32, score: f32| Ranked {
            movie_id: id,
            score,
            predicted_rating: None,
            because: Vec::new(),
        };
        Ok(Similar {
            movie: self.item(&plain(movie_id, 1.0)),
            basis,
            items: found
                .into_iter()
                .map(|(id, s)| self.item(&plain(id, s)))
                .collect(),
        })
    }

    fn similar_by_pca(&self, movie: &Movie, k: usize) -> Vec<(i32, f32)> {
        let Some(a) = movie.pca_features.as_deref() else {
            return Vec::new();
        };
        let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        if na == 0.0 {
            return Vec::new();
        }
        let mut sims: Vec<(i32, f32)> = self
            .catalogue
            .movies
            .values()
            .filter(|m| m.movie_id != movie.movie_id)
            .filter_map(|m| {
                let b = m.pca_features.as_deref()?;
                let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
                (nb > 0.0).then(|| {
                    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                    (m.movie_id, (dot / (na * nb)) as f32)
                })
            })
            .collect();
        sims.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        sims.truncate(k);
        sims
    }
}

/// The cold-start list `kind` describes, from what `store` knows now
/// (`stats`: the train split's per-movie statistics, for
/// [`ColdStart::TopRated`]).
pub fn cold_start_list(
    store: &mut dyn Store,
    kind: ColdStart,
    stats: &[MovieStats],
    without_batch: Option<&str>,
) -> Result<Vec<(i32, f64)>> {
    let mut list = match kind.counts() {
        Some((None, None)) => {
            return Ok(by_count(&store.movie_counts(None, None, without_batch)?))
        }
        Some((latest, min_stars)) => {
            by_count(&store.movie_counts(latest, min_stars, without_batch)?)
        }
        None => popularity(stats),
    };
    // A window or a threshold leaves movies out: after them come the rest
    // by all-time ratings, so someone who rated hundreds of the listed
    // movies still gets a full list.
    let listed: std::collections::HashSet<i32> = list.iter().map(|p| p.0).collect();
    list.extend(
        by_count(&store.movie_counts(None, None, without_batch)?)
            .into_iter()
            .filter(|p| !listed.contains(&p.0))
            .map(|(id, _)| (id, 0.0)),
    );
    Ok(list)
}

/// The best [`MAX_REASONS`] positive terms of a score as `(movieId,
/// share)`, share = term / sum of the positive terms; ties to the lower id.
fn reasons(ids: impl Iterator<Item = i32>, parts: &[f32]) -> Vec<(i32, f32)> {
    let mut pos: Vec<(i32, f32)> = ids
        .zip(parts.iter().copied())
        .filter(|(_, p)| *p > 0.0 && p.is_finite())
        .collect();
    let total: f32 = pos.iter().map(|p| p.1).sum();
    if total <= 0.0 {
        return Vec::new();
    }
    pos.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    pos.truncate(MAX_REASONS);
    pos.into_iter().map(|(id, p)| (id, p / total)).collect()
}

/// The clipping [`FactorModel::predict`] applies to what it reports.
fn clip_rating(x: f32) -> f32 {
    x.clamp(MIN_RATING, MAX_RATING)
}

/// Per-thread buffers of the serving scan, reused by every request the
/// thread answers (the server's worker threads, or the CLI's one).
#[derive(Default)]
struct Scratch {
    /// One score (or lower bound) per model movie.
    scores: Vec<f32>,
    /// The running top k.
    top: TopK,
    /// Dense indices of the movies to re-score exactly.
    candidates: Vec<u32>,
    /// The user's factors as packed 16-bit pairs (int8 scan).
    pairs: Vec<i32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn check_k(k: usize) -> Result<()> {
    if k == 0 || k > MAX_K {
        return Err(Error::InvalidArgument(format!(
            "k must be between 1 and {MAX_K}, got {k}"
        )));
    }
    Ok(())
}
