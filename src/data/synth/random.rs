//! Randomness: independent ChaCha8 streams per purpose and per user, and
//! the weighted draws the model is built from (activity counts, genres,
//! popularity through an alias table).

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::shape::{ACTIVITY_SIGMA, GENRE_COUNT_WEIGHTS, GENRE_WEIGHTS, MIN_RATINGS_PER_USER};

/// Independent random streams, so e.g. adding users never changes movies.
pub(super) mod domain {
    pub const GENRES: u64 = 1;
    pub const MOVIES: u64 = 2;
    pub const USERS: u64 = 3;
    pub const ACTIVITY: u64 = 4;
    pub const RATINGS: u64 = 5;
    /// Weekly batches: who rates how much, and pairs with newcomers.
    pub const WEEKS: u64 = 6;
    /// Weekly batches: a history user's movies and ratings in one week.
    pub const BATCHES: u64 = 7;
    /// Weekly batches: new movies' and new users' parameters.
    pub const NEW_ENTITIES: u64 = 8;
    /// Weekly batches: ratings of pairs involving a newcomer.
    pub const WEEK_RATINGS: u64 = 9;
    /// Weekly batches: scores handed to stand-ins.
    pub const TRANSFERS: u64 = 10;
}

/// Splits `total` ratings over `users` so that the counts sum exactly to
/// `total`, nobody exceeds `movies`, everyone gets a floor (MovieLens's 20
/// when the average allows, at least 5 when it allows that) and the rest
/// follows a lognormal activity distribution.
pub(super) fn allocate_counts(
    total: u64,
    users: usize,
    movies: u32,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    if users == 0 {
        return Vec::new();
    }
    let avg = total / users as u64;
    let floor = MIN_RATINGS_PER_USER
        .min(avg.min(5).max(avg / 4))
        .min(u64::from(movies));
    let cap = (u64::from(movies) - floor) as f64;
    let weights: Vec<f64> = (0..users)
        .map(|_| (ACTIVITY_SIGMA * normal(rng)).exp())
        .collect();
    let remaining = total - floor * users as u64;

    // Water-filling: the heaviest users may hit the cap; give them exactly
    // the cap and share the rest proportionally among the others.
    let mut order: Vec<usize> = (0..users).collect();
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    let mut left = remaining as f64;
    let mut weight_left: f64 = weights.iter().sum();
    let mut capped = 0;
    for &u in &order {
        if weight_left > 0.0 && left * weights[u] / weight_left > cap {
            left -= cap;
            weight_left -= weights[u];
            capped += 1;
        } else {
            break;
        }
    }
    let mut shares = vec![0.0f64; users];
    for (n, &u) in order.iter().enumerate() {
        shares[u] = if n < capped {
            cap
        } else if weight_left > 0.0 {
            (left * weights[u] / weight_left).min(cap)
        } else {
            0.0
        };
    }

    // Largest remainders, ties by user index; then repair any float slack.
    let cap = cap as u64;
    let mut extra: Vec<u64> = shares.iter().map(|s| s.floor() as u64).collect();
    let mut assigned: u64 = extra.iter().sum();
    let mut by_frac: Vec<usize> = (0..users).collect();
    by_frac.sort_by(|&a, &b| {
        (shares[b] - shares[b].floor())
            .total_cmp(&(shares[a] - shares[a].floor()))
            .then(a.cmp(&b))
    });
    for &u in &by_frac {
        if assigned >= remaining {
            break;
        }
        if extra[u] < cap {
            extra[u] += 1;
            assigned += 1;
        }
    }
    while assigned < remaining {
        for e in extra.iter_mut().filter(|e| **e < cap) {
            if assigned == remaining {
                break;
            }
            *e += 1;
            assigned += 1;
        }
    }
    while assigned > remaining {
        for e in extra.iter_mut().rev().filter(|e| **e > 0) {
            if assigned == remaining {
                break;
            }
            *e -= 1;
            assigned -= 1;
        }
    }
    extra.iter().map(|e| (floor + e) as u32).collect()
}

/// 1 to 3 distinct genres, weighted by MovieLens's genre frequencies.
pub(super) fn draw_genres(rng: &mut ChaCha8Rng) -> u32 {
    let x = unit(rng);
    let n = if x < GENRE_COUNT_WEIGHTS[0] {
        1
    } else if x < GENRE_COUNT_WEIGHTS[0] + GENRE_COUNT_WEIGHTS[1] {
        2
    } else {
        3
    };
    let mut mask = 0u32;
    for _ in 0..n {
        let total: f64 = GENRE_WEIGHTS
            .iter()
            .enumerate()
            .filter(|(j, _)| mask & (1 << j) == 0)
            .map(|(_, w)| w)
            .sum();
        let mut t = unit(rng) * total;
        let mut pick = None;
        for (j, w) in GENRE_WEIGHTS.iter().enumerate() {
            if mask & (1 << j) != 0 {
                continue;
            }
            pick = Some(j);
            if t < *w {
                break;
            }
            t -= w;
        }
        if let Some(j) = pick {
            mask |= 1 << j;
        }
    }
    mask
}

/// A generator keyed by (seed, domain) on stream `id`: independent streams
/// for every purpose and every user without seeding collisions.
pub(super) fn rng_for(seed: u64, domain: u64, id: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&domain.to_le_bytes());
    key[16..24].copy_from_slice(b"cinemtch");
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(id);
    rng
}

/// Uniform in [0, 1) with 53 bits.
pub(super) fn unit(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Unbiased uniform integer in `0..n` (Lemire).
pub(super) fn below(rng: &mut impl RngCore, n: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

pub(super) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    rng.sample(StandardNormal)
}

/// Walker/Vose alias table: O(1) weighted draws, which is what makes
/// drawing millions of popularity-weighted movies cheap.
#[derive(Debug, Clone)]
pub(super) struct AliasTable {
    prob: Vec<f64>,
    pub(super) alias: Vec<u32>,
}

impl AliasTable {
    pub(super) fn new(weights: &[f64]) -> Self {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut prob: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| prob[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s] = l as u32;
            prob[l] -= 1.0 - prob[s];
            if prob[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Leftovers are 1 up to rounding.
        for i in small.into_iter().chain(large) {
            prob[i] = 1.0;
        }
        AliasTable { prob, alias }
    }

    pub(super) fn sample(&self, rng: &mut impl RngCore) -> usize {
        let i = below(rng, self.prob.len() as u64) as usize;
        if unit(rng) < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_table_matches_weights() {
        let w = [1.0, 2.0, 3.0, 4.0, 0.0];
        let t = AliasTable::new(&w);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut hits = [0u32; 5];
        for _ in 0..100_000 {
            hits[t.sample(&mut rng)] += 1;
        }
        assert_eq!(hits[4], 0);
        for i in 0..4 {
            let p = f64::from(hits[i]) / 100_000.0;
            assert!((p - w[i] / 10.0).abs() < 0.01, "{hits:?}");
        }
    }
}
