//! `cinematch recommend` and `similar`: the champion's answers, as the API
//! gives them.

use anyhow::Result;
use clap::Args;

use cinematch::recommend::Recommender;

use super::{print, Ctx};

#[derive(Args)]
pub struct RecommendArgs {
    #[arg(long)]
    user: i32,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Only movies of this genre (e.g. Comedy).
    #[arg(long)]
    genre: Option<String>,
}

#[derive(Args)]
pub struct SimilarArgs {
    #[arg(long)]
    movie: i32,
    #[arg(long, default_value_t = 10)]
    k: usize,
}

pub fn run(args: RecommendArgs, ctx: &Ctx) -> Result<()> {
    let mut store = ctx.open_store()?;
    let rec = Recommender::load(store.as_mut())?;
    let rated = store
        .user_ratings(args.user)?
        .into_iter()
        .map(|r| r.movie_id)
        .collect();
    let list = rec.recommend(args.user, args.k, args.genre.as_deref(), &rated)?;
    print::recommendations(&list, args.genre.as_deref());
    Ok(())
}

pub fn similar(args: SimilarArgs, ctx: &Ctx) -> Result<()> {
    let mut store = ctx.open_store()?;
    let rec = Recommender::load(store.as_mut())?;
    print::similar(&rec.similar(args.movie, args.k)?);
    Ok(())
}
