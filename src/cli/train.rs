//! `cinematch train`, `evaluate` and `models`: making models and the registry.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use cinematch::eval::EvalOptions;
use cinematch::models::Algo;
use cinematch::registry::{self, TrainOptions};

use super::{print, Ctx};

#[derive(Args)]
pub struct TrainArgs {
    /// Algorithm: baseline (biases), svd (SGD matrix factorization), als (alternating least squares).
    #[arg(long, value_parser = ["baseline", "svd", "als"], default_value = "svd")]
    algo: String,
    /// Latent factors (svd, als).
    #[arg(long)]
    factors: Option<usize>,
    /// Passes over the data: epochs (svd, baseline) or iterations (als).
    #[arg(long)]
    epochs: Option<usize>,
    /// SGD learning rate (svd).
    #[arg(long)]
    lr: Option<f64>,
    /// Regularization: reg (svd) or lambda (als).
    #[arg(long)]
    reg: Option<f64>,
    /// Standard deviation of the initial factors (svd, als).
    #[arg(long)]
    init_std: Option<f64>,
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
}

impl TrainArgs {
    pub fn algo(&self) -> Result<Algo> {
        Algo::parse(&self.algo).context("unknown algorithm")
    }

    /// The flags as the registry's options: the named flags and every
    /// `--param` become overrides of the algorithm's defaults, checked there.
    pub fn options(&self) -> Result<TrainOptions> {
        let algo = self.algo()?;
        let als = algo == Algo::Als;
        let named = [
            ("factors", self.factors.map(|v| v.to_string())),
            (
                if als { "iterations" } else { "epochs" },
                self.epochs.map(|v| v.to_string()),
            ),
            ("lr", self.lr.map(|v| v.to_string())),
            (
                if als { "lambda" } else { "reg" },
                self.reg.map(|v| v.to_string()),
            ),
            ("init_std", self.init_std.map(|v| v.to_string())),
            ("threads", self.threads.map(|v| v.to_string())),
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
        Ok(opts)
    }
}

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Every run with its metrics and the RMSE change from the previous run.
    List,
    /// One run in full: metrics, hyperparameters, artifact.
    Show { version: String },
    /// Make a stored model the champion.
    Promote {
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
    /// Model version (default: the champion).
    #[arg(long)]
    model: Option<String>,
}

pub fn run(args: TrainArgs, ctx: &Ctx) -> Result<()> {
    let algo = args.algo()?;
    let opts = args.options()?;
    let mut store = ctx.open_store()?;
    let out = registry::train(store.as_mut(), &opts, &ctx.progress)?;
    print::trained(&out, algo);
    Ok(())
}

pub fn evaluate(args: EvaluateArgs, ctx: &Ctx) -> Result<()> {
    let mut store = ctx.open_store()?;
    let version = match args.model {
        Some(v) => v,
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
        ModelsCommand::List => print::models_list(&registry::runs_with_change(store.as_mut())?),
        ModelsCommand::Show { version } => {
            let run = store
                .model_runs()?
                .into_iter()
                .find(|r| r.model_version == version)
                .with_context(|| {
                    format!("no model {version:?}; `cinematch models list` shows the versions")
                })?;
            let champion = store.champion()?.as_deref() == Some(version.as_str());
            let artifact = store.artifact(&version)?;
            print::model_show(&run, champion, artifact.as_ref());
        }
        ModelsCommand::Promote { version, reason } => {
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
