//! The thread pool for data-parallel work (rayon), safe across `fork`.
//!
//! A forked child (Python's `multiprocessing` with the fork start method) inherits the parent's
//! memory but none of its threads: rayon's global pool would look alive in the child and every
//! job sent to it would wait forever. All data-parallel work therefore runs through
//! [`install`], on a pool that belongs to one process id: in a child the pool is built anew (the
//! parent's, whose threads do not exist there, is left alone, never freed). No lock guards the
//! pool (a lock held by another thread at the moment of the fork would stay locked in the child).

use std::sync::atomic::{AtomicPtr, Ordering};

struct ProcessPool {
    pid: u32,
    pool: rayon::ThreadPool,
}

static POOL: AtomicPtr<ProcessPool> = AtomicPtr::new(std::ptr::null_mut());

fn build(pid: u32) -> Box<ProcessPool> {
    let named = |b: rayon::ThreadPoolBuilder| b.thread_name(|i| format!("deepfaune-par-{i}"));
    let pool = named(rayon::ThreadPoolBuilder::new())
        .build()
        // Too few threads available for the default size: one worker still makes progress.
        .or_else(|_| named(rayon::ThreadPoolBuilder::new().num_threads(1)).build())
        .expect("cannot start a single thread");
    Box::new(ProcessPool { pid, pool })
}

/// This process's pool (built on first use, and again after a fork).
pub fn pool() -> &'static rayon::ThreadPool {
    let pid = std::process::id();
    loop {
        let current = POOL.load(Ordering::Acquire);
        // SAFETY: a published pool is never freed (see below), so the pointer stays valid.
        if let Some(p) = unsafe { current.as_ref() } {
            if p.pid == pid {
                return &p.pool;
            }
        }
        let fresh = Box::into_raw(build(pid));
        match POOL.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // The replaced pool (if any) was the parent's: leaked on purpose, since dropping it
            // would signal threads that do not exist in this process.
            // SAFETY: `fresh` was just published and is never freed.
            Ok(_) => return unsafe { &(*fresh).pool },
            Err(_) => {
                // Another thread published first: drop ours (its threads are alive here).
                // SAFETY: `fresh` was never published.
                drop(unsafe { Box::from_raw(fresh) });
            }
        }
    }
}

/// Runs `f` in this process's pool: `par_iter` and friends inside use it.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    #[test]
    fn runs_parallel_work_and_keeps_one_pool_per_process() {
        let s: u64 = super::install(|| (0..1000u64).into_par_iter().sum());
        assert_eq!(s, 999 * 1000 / 2);
        assert!(std::ptr::eq(super::pool(), super::pool()));
    }
}
