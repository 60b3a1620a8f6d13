//! `cinematch recommend`, `similar` and `search`: the champion's answers
//! and the catalogue, as the API gives them.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use cinematch::recommend::lookup::{canonical_genre, find_movie};
use cinematch::recommend::{Known, Recommender, Request, MAX_K};
use cinematch::store::Store;
use cinematch::types::Rated;

use super::{print, Ctx, JsonArg};

#[derive(Args)]
pub struct RecommendArgs {
    /// The user whose list to make (a positive user id).
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "all_users",
        conflicts_with = "all_users"
    )]
    user: Option<i32>,
    /// How many movies, 1..100.
    #[arg(long, default_value_t = 10, value_name = "N")]
    k: usize,
    /// Only movies of this genre (any case, e.g. comedy); an unknown genre is an error naming
    /// the catalogue's genres.
    #[arg(long)]
    genre: Option<String>,
    /// Say why: the user's rated movies that contributed most to each movie.
    #[arg(long)]
    why: bool,
    /// What if the user had also rated this movie (an id or a title, e.g. "Toy Story"; =STARS
    /// gives the stars, 4 by default; repeatable): the list is folded in from their ratings plus
    /// these. Nothing is stored.
    #[arg(long = "rated", value_name = "MOVIE[=STARS]", requires = "user")]
    rated: Vec<String>,
    /// Every user's list, written to --out (a batch export with a progress bar).
    #[arg(long, requires = "out")]
    all_users: bool,
    /// With --all-users: the file to write, .csv (columns userId,rank,movieId,score,strategy,
    /// one row per recommended movie) or .jsonl (one such object per line).
    #[arg(long, value_name = "FILE", requires = "all_users")]
    out: Option<PathBuf>,
    #[command(flatten)]
    json: JsonArg,
}

#[derive(Args)]
pub struct SimilarArgs {
    /// The movie: an id, or a title (any case, with or without the year, e.g. "Toy Story");
    /// an ambiguous title lists the candidates with their ids (exit 2).
    #[arg(long, value_name = "MOVIE")]
    movie: String,
    /// How many movies, 1..100.
    #[arg(long, default_value_t = 10, value_name = "N")]
    k: usize,
    #[command(flatten)]
    json: JsonArg,
}

#[derive(Args)]
pub struct SearchArgs {
    /// Title words (e.g. "toy story"): every word must start a word of the title.
    #[arg(value_name = "WORDS", required_unless_present = "genre")]
    query: Option<String>,
    /// Only movies of this genre (any case); alone, the genre's most rated movies.
    #[arg(long)]
    genre: Option<String>,
    /// At most this many movies, 1..100.
    #[arg(long, default_value_t = 20, value_name = "N")]
    limit: usize,
    #[command(flatten)]
    json: JsonArg,
}

/// The catalogue's spelling of `--genre`, checked against the store's movies.
fn checked_genre(store: &mut dyn Store, genre: Option<&str>) -> Result<Option<String>> {
    match genre.map(str::trim).filter(|g| !g.is_empty()) {
        None => Ok(None),
        Some(g) => Ok(Some(canonical_genre(store.movies()?.iter(), g)?)),
    }
}

/// `--rated MOVIE[=STARS]`: the movie by id or title, and the stars.
fn rated_movie(store: &mut dyn Store, arg: &str) -> Result<Rated> {
    let (movie, stars) = match arg.rsplit_once('=') {
        Some((m, s)) => {
            let stars: f32 = s
                .trim()
                .parse()
                .with_context(|| format!("--rated {arg:?}: {s:?} is not a number of stars"))?;
            cinematch::types::check_rating(f64::from(stars))
                .map_err(|e| anyhow::anyhow!("--rated {arg:?}: {e}"))?;
            (m, stars)
        }
        None => (arg, 4.0),
    };
    let m = find_movie(store, movie)?;
    Ok(Rated::new(
        m.movie_id,
        stars,
        chrono::Utc::now().timestamp(),
    ))
}

pub fn run(args: RecommendArgs, ctx: &Ctx) -> Result<()> {
    if args.k == 0 || args.k > MAX_K {
        bail!("--k {} is out of range: give 1..{MAX_K}", args.k);
    }
    let mut store = ctx.open_store()?;
    let genre = checked_genre(store.as_mut(), args.genre.as_deref())?;
    if args.all_users {
        let out = args
            .out
            .as_deref()
            .context("--all-users needs --out FILE")?;
        return export(store.as_mut(), out, args.k, genre.is_some(), ctx);
    }
    let user = args.user.context("give --user ID or --all-users")?;
    let mut extra = Vec::with_capacity(args.rated.len());
    for r in &args.rated {
        extra.push(rated_movie(store.as_mut(), r)?);
    }
    let rec = Recommender::load(store.as_mut())?;
    // Everything the user rated (both splits and the buffer); buffered
    // ratings are newer than the champion, so they make the list a fold-in.
    let (mut history, fresh) = Known::user(store.as_mut(), user)?;
    let what_if = !extra.is_empty();
    history.retain(|h| !extra.iter().any(|e| e.movie_id == h.movie_id));
    history.extend(extra);
    history.sort_by_key(|h| h.movie_id);
    let req = Request {
        genre: genre.as_deref(),
        fresh: fresh || what_if,
        explain: args.why || args.json.json,
        ..Request::new(user, args.k, &history)
    };
    let list = rec.recommend(&req)?;
    if args.json.json {
        print::json(&print::RecommendationsJson::new(&list, genre.as_deref()))?;
    } else {
        print::recommendations(&list, genre.as_deref(), args.why);
    }
    Ok(())
}

/// `recommend --all-users --out FILE`: every user's list, one row per movie.
fn export(
    store: &mut dyn Store,
    out: &std::path::Path,
    k: usize,
    genre: bool,
    ctx: &Ctx,
) -> Result<()> {
    if genre {
        bail!("--genre applies to one user's list, not to --all-users");
    }
    let jsonl = match out.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("csv") => false,
        Some(e) if e.eq_ignore_ascii_case("jsonl") => true,
        _ => bail!("--out {}: give a .csv or a .jsonl file name", out.display()),
    };
    let rec = Recommender::load(store)?;
    let known = Known::load(store)?;
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    if !jsonl {
        writeln!(w, "userId,rank,movieId,score,strategy")?;
    }
    let mut rows = 0usize;
    let mut io_err: Option<std::io::Error> = None;
    let users = rec.recommend_all(&known, k, &ctx.progress, |user, strategy, top| {
        for (i, r) in top.iter().enumerate() {
            let res = if jsonl {
                writeln!(
                    w,
                    "{}",
                    serde_json::json!({
                        "userId": user,
                        "rank": i + 1,
                        "movieId": r.movie_id,
                        "score": r.score,
                        "strategy": strategy.as_str(),
                    })
                )
            } else {
                writeln!(
                    w,
                    "{user},{},{},{},{}",
                    i + 1,
                    r.movie_id,
                    r.score,
                    strategy.as_str()
                )
            };
            if let Err(e) = res {
                io_err.get_or_insert(e);
            }
            rows += 1;
        }
        Ok(())
    })?;
    if let Some(e) = io_err {
        return Err(e).with_context(|| format!("writing {}", out.display()));
    }
    w.flush()
        .with_context(|| format!("writing {}", out.display()))?;
    print::exported(users, rows, out, &rec.model_version);
    Ok(())
}

pub fn similar(args: SimilarArgs, ctx: &Ctx) -> Result<()> {
    if args.k == 0 || args.k > MAX_K {
        bail!("--k {} is out of range: give 1..{MAX_K}", args.k);
    }
    let mut store = ctx.open_store()?;
    let movie = find_movie(store.as_mut(), &args.movie)?;
    let rec = Recommender::load(store.as_mut())?;
    let sim = rec.similar(movie.movie_id, args.k)?;
    if args.json.json {
        print::json(&print::SimilarJson::new(&sim, &rec.model_version))?;
    } else {
        print::similar(&sim);
    }
    Ok(())
}

pub fn search(args: SearchArgs, ctx: &Ctx) -> Result<()> {
    if args.limit == 0 || args.limit > 100 {
        bail!("--limit {} is out of range: give 1..100", args.limit);
    }
    let mut store = ctx.open_store()?;
    let genre = checked_genre(store.as_mut(), args.genre.as_deref())?;
    let query = args.query.unwrap_or_default().trim().to_string();
    let movies = store.search_movies(&query, genre.as_deref(), args.limit)?;
    let stats = store.movie_stats()?;
    let found = print::SearchJson::new(&query, genre.as_deref(), &movies, &stats);
    if args.json.json {
        print::json(&found)?;
    } else {
        print::search(&found);
    }
    Ok(())
}
