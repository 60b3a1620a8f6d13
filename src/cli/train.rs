//! `cinematch train`, `evaluate` and `models`: making models and the registry.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use cinematch::eval::EvalOptions;
use cinematch::models::Algo;
use cinematch::pipeline::retrain::parse_duration_secs;
use cinematch::registry::tune::{self as tuning, Budget, TuneOptions};
use cinematch::registry::view::{self, ModelBody, ModelsBody};
use cinematch::registry::{self, TrainOptions};

use super::{print, Ctx, JsonArg};

#[derive(Args)]
pub struct TrainArgs {
    /// Algorithm. Ranking models (what lists are served from): ease (item-item, closed form),
    /// ials (implicit-feedback ALS). Rating models (predict stars): baseline (biases), svd (SGD
    /// matrix factorization), als (alternating least squares).
    #[arg(long, value_parser = ["ease", "ials", "baseline", "svd", "als"], default_value = "ease")]
    algo: String,
    /// Latent factors (svd, als, ials).
    #[arg(long)]
    factors: Option<usize>,
    /// Passes over the data: epochs (svd, baseline) or iterations (als, ials).
    #[arg(long)]
    epochs: Option<usize>,
    /// SGD learning rate (svd).
    #[arg(long)]
    lr: Option<f64>,
    /// Regularization: reg (svd, ials) or lambda (als, ease).
    #[arg(long)]
    reg: Option<f64>,
    /// Standard deviation of the initial factors (svd, als, ials).
    #[arg(long)]
    init_std: Option<f64>,
    /// How ratings become the implicit signal of ranking models (ease, ials): all (every
    /// rating counts 1), weighted (a rating counts its stars) or >=T (only ratings of at least T stars).
    #[arg(long)]
    signal: Option<String>,
    /// Training threads (svd; als always uses every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Any other parameter as KEY=VALUE (repeatable), e.g. --param reg_u=15.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Seed of initialization and shuffling: the same seed gives the same model.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also train on the ratings waiting in ratings_buffer.
    #[arg(long)]
    include_buffer: bool,
    /// Skip the full-catalogue ranking metrics (faster on large catalogues).
    #[arg(long)]
    no_ranking: bool,
    /// Record the run without offering it to the champion gate (the first
    /// model still becomes the champion).
    #[arg(long)]
    no_promote: bool,
    #[command(flatten)]
    refit: super::monitor::RefitArgs,
}

impl TrainArgs {
    pub fn algo(&self) -> Result<Algo> {
        Algo::parse(&self.algo).context("unknown algorithm")
    }

    /// The flags as the registry's options: the named flags and every
    /// `--param` become overrides of the algorithm's defaults, checked there.
    pub fn options(&self, ctx: &Ctx) -> Result<TrainOptions> {
        let algo = self.algo()?;
        let iterations = matches!(algo, Algo::Als | Algo::Ials);
        let lambda = matches!(algo, Algo::Als | Algo::Ease);
        let named = [
            ("factors", self.factors.map(|v| v.to_string())),
            (
                if iterations { "iterations" } else { "epochs" },
                self.epochs.map(|v| v.to_string()),
            ),
            ("lr", self.lr.map(|v| v.to_string())),
            (
                if lambda { "lambda" } else { "reg" },
                self.reg.map(|v| v.to_string()),
            ),
            ("init_std", self.init_std.map(|v| v.to_string())),
            ("threads", self.threads.map(|v| v.to_string())),
            ("signal", self.signal.clone()),
        ];
        let mut overrides: Vec<(String, String)> = named
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?)))
            .collect();
        for p in &self.params {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("--param {p:?} is not KEY=VALUE"))?;
            overrides.push((k.trim().to_string(), v.trim().to_string()));
        }
        let params = registry::params_with_overrides(algo, &overrides)?;
        let mut opts = TrainOptions::new(params);
        opts.seed = self.seed;
        opts.include_buffer = self.include_buffer;
        opts.eval.ranking = !self.no_ranking;
        opts.objective = ctx.objective;
        opts.promote = !self.no_promote;
        opts.refit = self.refit.refit;
        Ok(opts)
    }
}

#[derive(Args)]
pub struct TuneArgs {
    /// The algorithm whose hyperparameters to search.
    #[arg(long, value_parser = ["ease", "ials", "baseline", "svd", "als"], default_value = "ease")]
    algo: String,
    /// Stop after this many trials (the defaults are the first).
    #[arg(long, conflicts_with = "budget")]
    trials: Option<usize>,
    /// Stop starting trials after this long, e.g. 2m, 30s, 1h.
    #[arg(long)]
    budget: Option<String>,
    /// Share of the train split held out to score the trials.
    #[arg(long, default_value_t = 0.3)]
    validation_fraction: f64,
    /// Average every trial over this many validation splits (seeds SEED, SEED+1, ...).
    #[arg(long, default_value_t = 1)]
    folds: usize,
    /// How the validation share is held out of the train split: `random`,
    /// or `time` (its latest ratings, as a deployment meets the future:
    /// how recency settings such as half_life are chosen; one fold).
    #[arg(long, value_parser = ["random", "time"], default_value = "random")]
    validation: String,
    /// Compare trials on this metric (default: rmse for rating models,
    /// ndcg@10 for ranking models).
    #[arg(long = "metric", value_name = "METRIC")]
    metric: Option<String>,
    /// Seed of the validation split, the search and every training.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Record the winner without offering it to the champion gate.
    #[arg(long)]
    no_promote: bool,
}

impl TuneArgs {
    pub fn options(&self, ctx: &Ctx) -> Result<TuneOptions> {
        let algo = Algo::parse(&self.algo).context("unknown algorithm")?;
        let mut opts = TuneOptions::new(algo);
        if let Some(m) = &self.metric {
            opts.objective = m.parse().context("--metric")?;
        }
        opts.budget = match (&self.budget, self.trials) {
            (Some(b), _) => Budget::Time(std::time::Duration::from_secs(
                parse_duration_secs(b)
                    .context("--budget")?
                    .max(1)
                    .unsigned_abs(),
            )),
            (None, Some(n)) => Budget::Trials(n),
            (None, None) => opts.budget,
        };
        opts.validation_fraction = self.validation_fraction;
        opts.folds = self.folds.max(1);
        opts.validation = if self.validation == "time" {
            cinematch::data::split::SplitStrategy::Time
        } else {
            cinematch::data::split::SplitStrategy::Random
        };
        opts.seed = self.seed;
        opts.promote = !self.no_promote;
        // The champion gate compares on the deployment's objective, not
        // necessarily the one trials were scored on.
        opts.deployment_objective = ctx.objective;
        Ok(opts)
    }
}

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Every run with its metrics, hyperparameters and the objective's change from the previous
    /// run of the same algorithm.
    List {
        #[command(flatten)]
        json: JsonArg,
    },
    /// One run in full: the objective first, then every metric, hyperparameters, artifact, notes.
    Show {
        /// The model version: in full, a unique prefix (e.g. 3f2a) or vN (the Nth run).
        version: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Runs side by side: every metric (best marked) and every hyperparameter.
    Compare {
        /// Two or more model versions (in full, a unique prefix or vN).
        #[arg(num_args = 2.., required = true, value_name = "VERSION")]
        versions: Vec<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Make a stored model the champion.
    Promote {
        /// The model version (in full, a unique prefix or vN).
        version: String,
        /// Why (kept in the champion history).
        #[arg(long, default_value = "promoted by hand")]
        reason: String,
    },
    /// Return to the previous champion.
    Rollback,
}

#[derive(Args)]
pub struct EvaluateArgs {
    /// Model version: in full, a unique prefix or vN (default: the champion).
    #[arg(long, value_name = "VERSION")]
    model: Option<String>,
}

pub fn run(args: TrainArgs, ctx: &Ctx) -> Result<()> {
    let algo = args.algo()?;
    let opts = args.options(ctx)?;
    let mut store = ctx.open_store()?;
    let out = registry::train(store.as_mut(), &opts, &ctx.progress)?;
    print::trained(&out, algo, ctx.objective);
    Ok(())
}

pub fn tune(args: TuneArgs, ctx: &Ctx) -> Result<()> {
    let opts = args.options(ctx)?;
    let mut store = ctx.open_store()?;
    let out = tuning::tune(store.as_mut(), &opts, &ctx.progress)?;
    print::tuned(&out, &opts);
    print::trained(&out.outcome, opts.algo, ctx.objective);
    Ok(())
}

pub fn evaluate(args: EvaluateArgs, ctx: &Ctx) -> Result<()> {
    let mut store = ctx.open_store()?;
    let version = match args.model {
        Some(v) => view::resolve_version(store.as_mut(), &v)?,
        None => store
            .champion()?
            .context("there is no champion model yet: train one with `cinematch train`")?,
    };
    let m = registry::evaluate_stored(store.as_mut(), &version, &EvalOptions::default())?;
    print::evaluated(&version, &m);
    Ok(())
}

pub fn models(cmd: ModelsCommand, ctx: &Ctx) -> Result<()> {
    let mut store = ctx.open_store()?;
    match cmd {
        ModelsCommand::List { json } => {
            let runs = registry::run_summaries(store.as_mut(), ctx.objective)?;
            if json.json {
                let champion = runs
                    .iter()
                    .find(|r| r.is_champion)
                    .map(|r| r.run.model_version.clone());
                print::json(&ModelsBody::new(champion, ctx.objective, &runs))?;
            } else {
                print::models_list(&runs, ctx.objective);
            }
        }
        ModelsCommand::Show { version, json } => {
            let version = view::resolve_version(store.as_mut(), &version)?;
            let runs = registry::run_summaries(store.as_mut(), ctx.objective)?;
            let bodies = ModelBody::all(&runs, ctx.objective);
            let i = runs
                .iter()
                .position(|r| r.run.model_version == version)
                .context("the run vanished while it was read")?;
            let artifact = store.artifact(&version)?;
            if json.json {
                print::json(&print::ModelShowJson::new(&bodies[i], artifact.as_ref()))?;
            } else {
                print::model_show(&runs[i], ctx.objective, artifact.as_ref());
            }
        }
        ModelsCommand::Compare { versions, json } => {
            let c = view::compare(store.as_mut(), ctx.objective, &versions)?;
            if json.json {
                print::json(&c)?;
            } else {
                print::model_compare(&c);
            }
        }
        ModelsCommand::Promote { version, reason } => {
            let version = view::resolve_version(store.as_mut(), &version)?;
            store.promote(&version, &reason)?;
            print::promoted(&version);
        }
        ModelsCommand::Rollback => {
            let (from, to) = store.rollback()?;
            print::rolled_back(&from, &to);
        }
    }
    Ok(())
}
