//! `cinematch recommend` and `similar`: the champion's answers, as the API
//! gives them.

use anyhow::Result;
use clap::Args;

use cinematch::recommend::{Known, Recommender, Request};

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
    /// Say why: the user's rated movies that contributed most to each movie.
    #[arg(long)]
    why: bool,
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
    // Everything the user rated (both splits and the buffer); buffered
    // ratings are newer than the champion, so they make the list a fold-in.
    let (history, fresh) = Known::user(store.as_mut(), args.user)?;
    let req = Request {
        genre: args.genre.as_deref(),
        fresh,
        explain: args.why,
        ..Request::new(args.user, args.k, &history)
    };
    let list = rec.recommend(&req)?;
    print::recommendations(&list, args.genre.as_deref(), args.why);
    Ok(())
}

pub fn similar(args: SimilarArgs, ctx: &Ctx) -> Result<()> {
    let mut store = ctx.open_store()?;
    let rec = Recommender::load(store.as_mut())?;
    print::similar(&rec.similar(args.movie, args.k)?);
    Ok(())
}
