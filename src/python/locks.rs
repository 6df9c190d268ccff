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

use std::time::Duration;

use pyo3::prelude::*;

pub(crate) use crate::pipeline::try_lock;

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
