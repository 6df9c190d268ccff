//! Taking the models' locks without deadlocks.
//!
//! A model (`Detector`, a pipeline's classifier, an `Embedder`) is used by one call at a time: it
//! sits behind a `Mutex`. That lock is only ever taken with the GIL released (inside
//! `py.detach`): a thread holding it may need the GIL back (progress callbacks, Ctrl-C checks),
//! so a thread waiting for it while holding the GIL would deadlock. Facts the getters answer
//! (ids, thresholds, class names) are copied out at construction and need no lock.
//!
//! A second call on a busy model waits its turn, checking for Ctrl-C (`KeyboardInterrupt`) every
//! few milliseconds.

use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use pyo3::prelude::*;

/// `m` locked now, or `None` when another thread holds it (a poisoned lock is taken: the models
/// hold no invariant a panic could break half-way).
pub(crate) fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Calls `try_take` until it gives the locks it needs; between tries, checks for Ctrl-C
/// (a `KeyboardInterrupt` comes back as the error). Call it with the GIL released.
pub(crate) fn wait_for<G>(mut try_take: impl FnMut() -> Option<G>) -> PyResult<G> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(g) = try_take() {
            return Ok(g);
        }
        Python::attach(|py| py.check_signals())?;
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Both locks, taken together (never one held while waiting for the other, so two calls that
/// need them in another order cannot deadlock).
pub(crate) fn lock_both<'a, A, B>(
    a: &'a Mutex<A>,
    b: &'a Mutex<B>,
) -> PyResult<(MutexGuard<'a, A>, MutexGuard<'a, B>)> {
    wait_for(|| {
        let ga = try_lock(a)?;
        let gb = try_lock(b)?;
        Some((ga, gb))
    })
}
