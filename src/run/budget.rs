//! The total number of decoded pixels in flight, whatever the thread count.
//!
//! Each worker takes a [`Permit`] for the pixels of the image it is about to decode and the
//! permit goes with the decoded image until it is dropped (after detection and cropping). A
//! worker waits while the images in flight would exceed the budget, except for the image the
//! consumer needs next (the stream delivers in order: holding it back would stall everything)
//! and when nothing is in flight (one image bigger than the budget still goes through). So on
//! images just under the pixel limit, four workers hold about as much memory as one. A run's
//! budget is its pixel limit ([`super::RunOptions::pixel_budget`]): room for a `window` of
//! ordinary camera images, one at a time near the limit.

use std::sync::{Condvar, Mutex};

#[derive(Debug, Default)]
struct State {
    in_use: u64,
    holders: usize,
    /// The item the consumer needs next (it always goes through).
    next_needed: usize,
    /// The stream stopped: nobody waits any more.
    closed: bool,
}

/// See the module documentation.
#[derive(Debug)]
pub struct PixelBudget {
    limit: u64,
    state: Mutex<State>,
    cv: Condvar,
}

/// Pixels held by one decoded image; given back when dropped.
#[derive(Debug)]
pub struct Permit<'a> {
    budget: &'a PixelBudget,
    pixels: u64,
}

impl PixelBudget {
    /// A budget of `limit` pixels.
    pub fn new(limit: u64) -> PixelBudget {
        PixelBudget {
            limit,
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until item `index` may hold `pixels`, and takes them.
    pub fn acquire(&self, index: usize, pixels: u64) -> Permit<'_> {
        let mut s = self.lock();
        while !(s.closed
            || s.holders == 0
            || index <= s.next_needed
            || s.in_use.saturating_add(pixels) <= self.limit)
        {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.in_use = s.in_use.saturating_add(pixels);
        s.holders += 1;
        Permit {
            budget: self,
            pixels,
        }
    }

    /// The consumer now needs item `index` (called by [`super::ordered_stream`]).
    pub fn set_next_needed(&self, index: usize) {
        self.lock().next_needed = index;
        self.cv.notify_all();
    }

    /// The stream stopped: waiting workers go on (and find the stream closed).
    pub fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }

    /// Pixels held now.
    pub fn in_use(&self) -> u64 {
        self.lock().in_use
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = self.budget.lock();
        s.in_use -= self.pixels;
        s.holders -= 1;
        drop(s);
        self.budget.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_room_but_never_blocks_the_needed_item_or_a_lone_giant() {
        let b = PixelBudget::new(100);
        let giant = b.acquire(5, 1000); // nothing else in flight
        drop(giant);
        let a = b.acquire(1, 60);
        let c = b.acquire(0, 60); // the consumer's next item: over budget, allowed
        assert_eq!(b.in_use(), 120);
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                let _p = b.acquire(3, 60);
                b.in_use()
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert_eq!(b.in_use(), 120, "item 3 waits");
            drop(c);
            drop(a);
            assert_eq!(t.join().unwrap(), 60);
        });
        assert_eq!(b.in_use(), 0);
    }
}
