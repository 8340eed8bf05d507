//! Admission of images into decoding against a memory budget.
//!
//! Each image's cost is computed from its header before any pixel is decoded
//! ([`crate::imaging::decode_cost`]: width x height x channels x bytes per sample at the size it
//! will be decoded to, plus the RGB8 working copies). An image thread takes a ticket and waits
//! until every earlier ticket was admitted and the image fits in what the images being decoded
//! leave of the budget; it releases its share when its image is done. Admission is first come,
//! first served, so a large image is not overtaken forever by small ones; an image that is larger
//! than the whole budget is decoded alone, once nothing else is in flight (the peak is then that
//! one image). The budget does not depend on the number of cores.

use std::sync::{Condvar, Mutex};

/// The shared budget of the image threads.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes admitted and not yet released.
    in_use: u64,
    /// Images decoding now.
    running: usize,
    /// The next ticket to hand out and the ticket that is next to be admitted.
    next_ticket: u64,
    serving: u64,
    /// The most bytes admitted at once so far (for tests and logs).
    peak: u64,
}

/// A share of the budget, released when dropped.
#[must_use = "the share is released when the permit is dropped"]
pub struct Permit<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        MemoryBudget {
            limit,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Waits until `bytes` fit (or nothing else is decoding), in arrival order, and takes them.
    pub fn admit(&self, bytes: u64) -> Permit<'_> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = s.next_ticket;
        s.next_ticket += 1;
        while !(s.serving == ticket
            && (s.running == 0 || s.in_use.saturating_add(bytes) <= self.limit))
        {
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.serving += 1;
        s.in_use += bytes;
        s.running += 1;
        s.peak = s.peak.max(s.in_use);
        drop(s);
        // The next ticket may fit as well.
        self.changed.notify_all();
        Permit {
            budget: self,
            bytes,
        }
    }

    /// The most bytes admitted at once so far.
    pub fn peak(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).peak
    }

    /// Images waiting for admission now.
    pub fn waiting(&self) -> u64 {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.next_ticket - s.serving
    }

    /// Bytes admitted now.
    pub fn in_use(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).in_use
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = self.budget.state.lock().unwrap_or_else(|e| e.into_inner());
        s.in_use -= self.bytes;
        s.running -= 1;
        drop(s);
        self.budget.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn what_is_admitted_at_once_never_exceeds_the_budget() {
        let b = Arc::new(MemoryBudget::new(100));
        let now = Arc::new(AtomicU64::new(0));
        let max = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (b, now, max) = (b.clone(), now.clone(), max.clone());
                std::thread::spawn(move || {
                    for i in 0..200u64 {
                        let cost = 10 + (t * 7 + i * 13) % 60;
                        let _p = b.admit(cost);
                        let v = now.fetch_add(cost, Ordering::SeqCst) + cost;
                        max.fetch_max(v, Ordering::SeqCst);
                        std::thread::yield_now();
                        now.fetch_sub(cost, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(max.load(Ordering::SeqCst) <= 100, "{max:?}");
        assert!(b.peak() <= 100 && b.peak() >= 10);
        assert_eq!(b.in_use(), 0);
    }

    #[test]
    fn an_image_larger_than_the_budget_runs_alone() {
        let b = MemoryBudget::new(100);
        let p = b.admit(500);
        assert_eq!(b.in_use(), 500);
        drop(p);
        let small = b.admit(60);
        // A big one waits for the small one to finish, then runs alone.
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let _p = b.admit(500);
                b.in_use()
            });
            while b.waiting() == 0 {
                std::thread::yield_now();
            }
            assert_eq!(b.in_use(), 60, "the big image must wait");
            drop(small);
            assert_eq!(h.join().unwrap(), 500);
        });
        assert_eq!(b.in_use(), 0);
    }
}
