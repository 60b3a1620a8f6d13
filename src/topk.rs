//! Top-k selection: the one bounded heap that models, evaluation and the
//! serving scan all use, so every list in CineMatch breaks ties the same
//! way (higher score first, then the lower index, which is the lower movie
//! id wherever indices follow ascending ids).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A candidate; greater is better: higher score, then lower index.
#[derive(Clone, Copy, Debug)]
pub struct Cand {
    pub score: f32,
    pub idx: u32,
}

impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.idx.cmp(&self.idx))
    }
}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}

/// The running best `k`: a min-heap, so the worst kept is on top and almost
/// every candidate is rejected by one comparison with it. This makes
/// selection O(n log k), which beats sorting a catalogue per request.
#[derive(Debug, Default)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Cand>>,
}

impl TopK {
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
        }
    }

    /// Empties the heap and sets a new `k`, keeping the allocation.
    pub fn reset(&mut self, k: usize) {
        self.k = k;
        self.heap.clear();
    }

    /// Whether `k` candidates are kept, so [`TopK::worst`] is a real bar.
    pub fn is_full(&self) -> bool {
        self.heap.len() >= self.k
    }

    /// The worst candidate kept.
    pub fn worst(&self) -> Option<Cand> {
        self.heap.peek().map(|r| r.0)
    }

    /// Keeps `c` if it is among the best `k` seen so far.
    #[inline]
    pub fn offer(&mut self, c: Cand) {
        if self.heap.len() < self.k {
            self.heap.push(Reverse(c));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if c > worst.0 {
                *worst = Reverse(c);
            }
        }
    }

    /// The kept candidates, best first; the heap is left empty.
    pub fn drain_sorted(&mut self) -> Vec<Cand> {
        let heap = std::mem::take(&mut self.heap);
        // Ascending in `Reverse<Cand>` is descending in `Cand`: best first.
        heap.into_sorted_vec().into_iter().map(|r| r.0).collect()
    }
}

impl TopK {
    /// Offers every selectable score of `scores` (index = position); −∞
    /// and NaN are never kept. On AVX2 CPUs eight scores are compared with
    /// the current k-th best at once, and nearly every block has none
    /// better, so the heap is touched a few dozen times per catalogue.
    pub fn offer_all(&mut self, scores: &[f32]) {
        if self.k == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support was just checked.
            unsafe { self.offer_all_avx2(scores) };
            return;
        }
        for (i, &s) in scores.iter().enumerate() {
            if s > f32::NEG_INFINITY {
                self.offer(Cand {
                    score: s,
                    idx: i as u32,
                });
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn offer_all_avx2(&mut self, scores: &[f32]) {
        use std::arch::x86_64::*;
        let blocks = scores.len() / 8;
        for blk in 0..blocks {
            let thr = if self.is_full() {
                self.worst().map_or(f32::NEG_INFINITY, |w| w.score)
            } else {
                f32::NEG_INFINITY
            };
            // SAFETY: block blk covers [8·blk, 8·blk + 8) ⊂ scores. NaN
            // compares false (ordered comparison), so it is never kept.
            let mask = unsafe {
                let v = _mm256_loadu_ps(scores.as_ptr().add(blk * 8));
                _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(v, _mm256_set1_ps(thr)))
            };
            let mut m = mask as u32;
            while m != 0 {
                let i = blk * 8 + m.trailing_zeros() as usize;
                m &= m - 1;
                self.offer(Cand {
                    score: scores[i],
                    idx: i as u32,
                });
            }
        }
        for (i, &s) in scores.iter().enumerate().skip(blocks * 8) {
            if s > f32::NEG_INFINITY {
                self.offer(Cand {
                    score: s,
                    idx: i as u32,
                });
            }
        }
    }
}

/// Indices of the `k` greatest scores, best first; −∞ and NaN mark entries
/// that must not be chosen (excluded or unscorable movies).
pub fn select_top(scores: &[f32], k: usize) -> Vec<usize> {
    if k == 0 {
        return Vec::new();
    }
    let mut top = TopK::new(k);
    top.offer_all(scores);
    top.drain_sorted()
        .into_iter()
        .map(|c| c.idx as usize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_the_best_with_ties_to_the_lower_index() {
        let scores = [1.0, 3.0, f32::NAN, 3.0, f32::NEG_INFINITY, 2.0, 0.5];
        assert_eq!(select_top(&scores, 3), vec![1, 3, 5]);
        assert_eq!(select_top(&scores, 0), Vec::<usize>::new());
        // Fewer selectable entries than k: all of them, best first.
        assert_eq!(select_top(&scores, 10), vec![1, 3, 5, 0, 6]);
    }

    #[test]
    fn matches_a_full_sort_on_random_scores() {
        let mut x = 12345u64;
        let scores: Vec<f32> = (0..500)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 40) % 50) as f32 // many ties
            })
            .collect();
        let mut want: Vec<usize> = (0..scores.len()).collect();
        want.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        want.truncate(17);
        assert_eq!(select_top(&scores, 17), want);
        // The scalar path (the tail after the 8-wide blocks) agrees.
        let mut scalar = TopK::new(17);
        for (i, &s) in scores.iter().enumerate() {
            scalar.offer(Cand {
                score: s,
                idx: i as u32,
            });
        }
        let got: Vec<usize> = scalar
            .drain_sorted()
            .iter()
            .map(|c| c.idx as usize)
            .collect();
        assert_eq!(got, want);
    }
}
