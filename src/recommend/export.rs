//! Every user's list at once: the batch job behind `cinematch recommend
//! --all-users`, from the same [`Known`] histories serving reads.

use super::{Known, Ranked, Recommender, Request, Strategy};
use crate::progress::Progress;
use crate::Result;

impl Recommender {
    /// The top `k` of every user with a rating, ascending by user id, each
    /// handed to `emit` as it is made (made exactly as a request for that
    /// user would be: fresh users folded in); returns how many users.
    pub fn recommend_all(
        &self,
        known: &Known,
        k: usize,
        progress: &dyn Progress,
        mut emit: impl FnMut(i32, Strategy, &[Ranked]) -> Result<()>,
    ) -> Result<usize> {
        let users = known.user_ids();
        progress.stage("recommending", Some(users.len() as u64));
        for &user in &users {
            let req = Request {
                fresh: known.is_fresh(user),
                ..Request::new(user, k, known.history(user))
            };
            let (strategy, top) = self.recommend_ids(&req)?;
            emit(user, strategy, &top)?;
            progress.advance(1);
        }
        progress.finish();
        Ok(users.len())
    }
}
