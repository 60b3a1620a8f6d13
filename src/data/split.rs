//! Train/test assignment for stored ratings.
//!
//! The split is computed once, when ratings are loaded, and stored with each
//! row (`ratings.data_split`), so every model trained later is evaluated on
//! the same held-out ratings. That only works if the assignment is exactly
//! reproducible: the random strategy uses its own Fisher–Yates shuffle on
//! [`ChaCha8Rng`] (whose output stream is specified, unlike `StdRng` or the
//! shuffles in `rand`, which may change between releases), so a seed means the
//! same split on every platform and every version of this crate's
//! dependencies.

use std::fmt;
use std::str::FromStr;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::types::{Rating, Split};
use crate::{Error, Result};

/// How ratings are divided between training and evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SplitStrategy {
    /// A uniformly random subset of exactly the requested size trains;
    /// measures how well a model fills in a user's missing ratings.
    #[default]
    Random,
    /// The earliest ratings train and the latest are held out; measures how
    /// well a model predicts the future, which is what serving does.
    Time,
}

impl SplitStrategy {
    /// The spelling used on the command line and in stored metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitStrategy::Random => "random",
            SplitStrategy::Time => "time",
        }
    }
}

impl fmt::Display for SplitStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SplitStrategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "random" => Ok(SplitStrategy::Random),
            "time" | "temporal" => Ok(SplitStrategy::Time),
            other => Err(Error::InvalidArgument(format!(
                "unknown split strategy {other:?}: expected \"random\" or \"time\""
            ))),
        }
    }
}

/// How to split; the defaults (random, 70 % train, seed 42) are what
/// `cinematch load` uses unless told otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitOptions {
    pub strategy: SplitStrategy,
    /// Share of ratings that go to training, above 0 and at most 1 (1: no
    /// test split, for deployments that want every rating in the model and
    /// accept that runs then carry no test metrics).
    pub train_fraction: f64,
    /// Only used by [`SplitStrategy::Random`].
    pub seed: u64,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions {
            strategy: SplitStrategy::Random,
            train_fraction: 0.7,
            seed: 42,
        }
    }
}

/// Number of training ratings out of `n`: `round(n * fraction)`, halves away
/// from zero, so the proportion is exact rather than approximately right.
fn train_count(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).round() as usize).min(n)
}

/// Assigns each rating to train or test, in input order.
///
/// Exactly `round(n * train_fraction)` ratings are assigned to training, so
/// reported test-set sizes are predictable (100,836 ratings at 0.7 give
/// 70,585 train). The result is a pure function of the ratings' order, their
/// timestamps (time strategy) and the seed (random strategy).
pub fn assign_splits(ratings: &[Rating], opts: &SplitOptions) -> Result<Vec<Split>> {
    let f = opts.train_fraction;
    if !(f > 0.0 && f <= 1.0) {
        return Err(Error::InvalidArgument(format!(
            "train fraction must be above 0 and at most 1 (e.g. 0.7 for 70% train, 30% test; \
             1 keeps every rating for training), got {f}"
        )));
    }
    let n = ratings.len();
    let n_train = train_count(n, f);
    let mut splits = vec![Split::Test; n];
    match opts.strategy {
        SplitStrategy::Random => {
            let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
            let mut idx: Vec<u32> = (0..n as u32).collect();
            // Forward Fisher–Yates, stopped once the training prefix is
            // drawn: the prefix is a uniform random subset of size n_train.
            for i in 0..n_train {
                let j = i + uniform_below(&mut rng, (n - i) as u64) as usize;
                idx.swap(i, j);
            }
            for &i in &idx[..n_train] {
                splits[i as usize] = Split::Train;
            }
        }
        SplitStrategy::Time => {
            let mut idx: Vec<u32> = (0..n as u32).collect();
            // Ties on timestamp are broken by input position, so equal
            // timestamps straddling the boundary split the same way every time.
            idx.sort_unstable_by_key(|&i| (ratings[i as usize].timestamp, i));
            for &i in &idx[..n_train] {
                splits[i as usize] = Split::Train;
            }
        }
    }
    Ok(splits)
}

/// An unbiased integer in `0..n` (Lemire's multiply-and-reject), written out
/// here so the mapping from random bits to indices never changes under us.
fn uniform_below(rng: &mut impl RngCore, n: u64) -> u64 {
    debug_assert!(n > 0);
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratings(n: usize) -> Vec<Rating> {
        (0..n)
            .map(|i| Rating {
                user_id: (i % 97) as i32 + 1,
                movie_id: (i % 1013) as i32 + 1,
                rating: 0.5 * ((i % 10) as f32 + 1.0),
                // Deliberately not in input order, with many ties.
                timestamp: 1_000_000 + ((i * 7919) % 5003) as i64,
            })
            .collect()
    }

    fn count_train(s: &[Split]) -> usize {
        s.iter().filter(|&&s| s == Split::Train).count()
    }

    fn opts(strategy: SplitStrategy, train_fraction: f64, seed: u64) -> SplitOptions {
        SplitOptions {
            strategy,
            train_fraction,
            seed,
        }
    }

    #[test]
    fn random_split_has_exact_proportion() {
        let r = ratings(100_836);
        let s = assign_splits(&r, &SplitOptions::default()).unwrap();
        assert_eq!(s.len(), r.len());
        assert_eq!(count_train(&s), 70_585);
        assert_eq!(train_count(100_836, 0.7), 70_585);
        // Half rounds away from zero: 5 * 0.5 = 2.5 -> 3.
        assert_eq!(train_count(5, 0.5), 3);
        assert_eq!(train_count(10, 0.25), 3);
        let s = assign_splits(&r[..5], &opts(SplitStrategy::Random, 0.5, 1)).unwrap();
        assert_eq!(count_train(&s), 3);
    }

    #[test]
    fn random_split_is_deterministic_per_seed() {
        let r = ratings(10_000);
        let a = assign_splits(&r, &opts(SplitStrategy::Random, 0.8, 7)).unwrap();
        let b = assign_splits(&r, &opts(SplitStrategy::Random, 0.8, 7)).unwrap();
        assert_eq!(a, b);
        let c = assign_splits(&r, &opts(SplitStrategy::Random, 0.8, 8)).unwrap();
        assert_eq!(count_train(&c), 8_000);
        let differing = a.iter().zip(&c).filter(|(x, y)| x != y).count();
        // Two independent 80/20 splits disagree on ~32% of rows.
        assert!(differing > 2_000, "only {differing} rows differ");
    }

    #[test]
    fn random_split_is_pinned_across_versions() {
        // The stored split must not change when dependencies are upgraded:
        // these positions come from ChaCha8 (seed 42) and our own shuffle.
        let r = ratings(20);
        let s = assign_splits(&r, &SplitOptions::default()).unwrap();
        let again = assign_splits(&r, &SplitOptions::default()).unwrap();
        assert_eq!(s, again);
        let tests: Vec<usize> = (0..20).filter(|&i| s[i] == Split::Test).collect();
        assert_eq!(tests.len(), 6);
        assert_eq!(tests, PINNED_TEST_POSITIONS);
    }

    const PINNED_TEST_POSITIONS: [usize; 6] = [3, 6, 12, 14, 16, 18];

    #[test]
    fn random_split_is_roughly_uniform() {
        // Every position should land in train about 70% of the time.
        let r = ratings(10);
        let mut hits = [0u32; 10];
        for seed in 0..2_000 {
            let s = assign_splits(&r, &opts(SplitStrategy::Random, 0.7, seed)).unwrap();
            for (h, s) in hits.iter_mut().zip(&s) {
                *h += u32::from(*s == Split::Train);
            }
        }
        for h in hits {
            assert!(
                (1_300..=1_500).contains(&h),
                "position trained {h}/2000 times"
            );
        }
    }

    #[test]
    fn time_split_holds_out_the_latest() {
        let r = ratings(10_001);
        let s = assign_splits(&r, &opts(SplitStrategy::Time, 0.7, 0)).unwrap();
        assert_eq!(count_train(&s), 7_001);
        let max_train = r
            .iter()
            .zip(&s)
            .filter(|(_, s)| **s == Split::Train)
            .map(|(r, _)| r.timestamp)
            .max()
            .unwrap();
        let min_test = r
            .iter()
            .zip(&s)
            .filter(|(_, s)| **s == Split::Test)
            .map(|(r, _)| r.timestamp)
            .min()
            .unwrap();
        assert!(
            min_test >= max_train,
            "test {min_test} before train {max_train}"
        );
        // The seed plays no part in a time split.
        let other = assign_splits(&r, &opts(SplitStrategy::Time, 0.7, 99)).unwrap();
        assert_eq!(s, other);
    }

    #[test]
    fn time_split_breaks_ties_by_input_position() {
        let r: Vec<Rating> = (0..10)
            .map(|i| Rating {
                user_id: 1,
                movie_id: i + 1,
                rating: 4.0,
                timestamp: if i < 3 { 10 } else { 20 },
            })
            .collect();
        // 6 train: the three at t=10, then the first three at t=20.
        let s = assign_splits(&r, &opts(SplitStrategy::Time, 0.6, 0)).unwrap();
        let expected: Vec<Split> = (0..10)
            .map(|i| if i < 6 { Split::Train } else { Split::Test })
            .collect();
        assert_eq!(s, expected);
        // All timestamps equal: purely by position.
        let same: Vec<Rating> = r.iter().map(|x| Rating { timestamp: 5, ..*x }).collect();
        let s = assign_splits(&same, &opts(SplitStrategy::Time, 0.3, 0)).unwrap();
        assert_eq!(count_train(&s[..3]), 3);
        assert_eq!(count_train(&s[3..]), 0);
    }

    #[test]
    fn rejects_fractions_outside_zero_to_one() {
        let r = ratings(10);
        for f in [0.0, -0.1, 1.5, 1.0000001, f64::NAN, f64::INFINITY] {
            for strategy in [SplitStrategy::Random, SplitStrategy::Time] {
                let err = assign_splits(&r, &opts(strategy, f, 1)).unwrap_err();
                assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
                assert!(err.to_string().contains("above 0 and at most 1"), "{err}");
            }
        }
        // Also validated on empty input, so a bad flag is caught early.
        assert!(assign_splits(&[], &opts(SplitStrategy::Random, 0.0, 1)).is_err());
    }

    #[test]
    fn a_fraction_of_one_trains_on_everything() {
        let r = ratings(1000);
        for strategy in [SplitStrategy::Random, SplitStrategy::Time] {
            let s = assign_splits(&r, &opts(strategy, 1.0, 7)).unwrap();
            assert!(s.iter().all(|&x| x == Split::Train));
        }
    }

    #[test]
    fn empty_and_tiny_inputs() {
        for strategy in [SplitStrategy::Random, SplitStrategy::Time] {
            assert!(assign_splits(&[], &opts(strategy, 0.7, 1))
                .unwrap()
                .is_empty());
            let one = assign_splits(&ratings(1), &opts(strategy, 0.7, 1)).unwrap();
            assert_eq!(one, vec![Split::Train]);
            let one = assign_splits(&ratings(1), &opts(strategy, 0.3, 1)).unwrap();
            assert_eq!(one, vec![Split::Test]);
        }
    }

    #[test]
    fn strategy_parses_and_prints() {
        for s in [SplitStrategy::Random, SplitStrategy::Time] {
            assert_eq!(s.to_string().parse::<SplitStrategy>().unwrap(), s);
        }
        assert_eq!(
            "TIME".parse::<SplitStrategy>().unwrap(),
            SplitStrategy::Time
        );
        assert!("stratified".parse::<SplitStrategy>().is_err());
        assert_eq!(SplitOptions::default().strategy, SplitStrategy::Random);
    }

    #[test]
    fn uniform_below_covers_the_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut seen = [0u32; 7];
        for _ in 0..7_000 {
            seen[uniform_below(&mut rng, 7) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (850..=1150).contains(&c)), "{seen:?}");
        assert_eq!(uniform_below(&mut rng, 1), 0);
    }
}
