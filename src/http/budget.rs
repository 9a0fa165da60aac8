//! The budget of request bytes held at once across all requests
//! (`http.max_inflight_bytes`): each request's body buffer is charged as it grows and
//! released when the request is answered, so many large bodies at once are refused
//! with 503 instead of growing the process without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Requests holding at most this much may use the whole budget; larger ones leave
/// its last eighth to them.
pub const SMALL: usize = 1 << 20;

/// Bytes held by running requests, shared by all of them.
#[derive(Debug, Default)]
pub struct Budget {
    used: AtomicUsize,
}

/// What one request holds; given back when dropped.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<Budget>,
    held: usize,
}

/// The budget has no room for what a request asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

impl Budget {
    pub fn new() -> Arc<Budget> {
        Arc::new(Budget::default())
    }

    /// Bytes held now, by all requests together.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// A charge of nothing yet, for one request.
    pub fn charge(self: &Arc<Self>) -> Charge {
        Charge {
            budget: self.clone(),
            held: 0,
        }
    }
}

impl Charge {
    /// Grows what this request holds to `total` bytes, if the budget of `limit`
    /// bytes has room for it, or if this request is the only one holding any (so a
    /// request within its own size limit always gets through eventually). A request
    /// past [`SMALL`] may fill only seven eighths of the budget: the last eighth
    /// stays for small requests, so many large bodies cannot shut ordinary senders
    /// out.
    ///
    /// # Errors
    /// [`Exhausted`]: nothing was taken; the request should be refused.
    pub fn grow_to(&mut self, total: usize, limit: usize) -> Result<(), Exhausted> {
        let Some(extra) = total.checked_sub(self.held).filter(|&n| n > 0) else {
            return Ok(());
        };
        let limit = if total > SMALL {
            limit - limit / 8
        } else {
            limit
        };
        let held = self.held;
        self.budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let after = used.checked_add(extra)?;
                (after <= limit || used == held).then_some(after)
            })
            .map_err(|_| Exhausted)?;
        self.held = total;
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_share_the_budget_and_give_it_back() {
        let budget = Budget::new();
        let mut a = budget.charge();
        let mut b = budget.charge();
        a.grow_to(600, 1000).unwrap();
        assert_eq!(b.grow_to(500, 1000), Err(Exhausted), "600 + 500 > 1000");
        b.grow_to(400, 1000).unwrap();
        assert_eq!(budget.used(), 1000);
        a.grow_to(500, 1000).unwrap(); // shrinking is not a thing; nothing changes
        assert_eq!(budget.used(), 1000);
        drop(a);
        assert_eq!(budget.used(), 400);
        b.grow_to(1000, 1000).unwrap();
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn large_requests_leave_the_last_eighth_to_small_ones() {
        const MIB: usize = 1 << 20;
        let budget = Budget::new();
        let limit = 64 * MIB;
        let mut large = Vec::new();
        for _ in 0..7 {
            let mut c = budget.charge();
            c.grow_to(8 * MIB, limit).unwrap();
            large.push(c);
        }
        let mut one_more = budget.charge();
        assert_eq!(
            one_more.grow_to(2 * MIB, limit),
            Err(Exhausted),
            "56 of 64 MiB taken"
        );
        let mut small = budget.charge();
        small.grow_to(MIB, limit).unwrap();
        assert_eq!(budget.used(), 57 * MIB);
    }

    #[test]
    fn a_request_alone_gets_through_past_the_budget() {
        let budget = Budget::new();
        let mut alone = budget.charge();
        alone.grow_to(800, 500).unwrap();
        alone.grow_to(1600, 500).unwrap();
        let mut other = budget.charge();
        assert_eq!(other.grow_to(1, 500), Err(Exhausted));
        drop(alone);
        other.grow_to(400, 500).unwrap();
    }
}
