//! Stage 4: the streaming driver.
//!
//! [`ordered_stream`] runs a `prepare` step (decode, letterbox) on worker threads and hands the
//! results to a `consume` step on the calling thread (inference, bookkeeping) **in input order**,
//! with at most `window` items in flight: memory does not grow with the number of files.
//! [`detection`] builds the detection run on it; [`frames`] runs frames held in memory (videos).

pub mod checkpoint;
pub mod detection;
pub mod frames;
pub mod pipeline;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

pub use checkpoint::Checkpoint;
pub use detection::{detect_files, DetectionResults, Failure, RunOptions};
pub use pipeline::{run_pipeline, run_pipeline_resumable, ClassifyStage, PipelineResults, Resume};

use crate::error::Error;

/// Runs `prepare(i)` for `i in 0..n` on `threads` workers and `consume(i, item)` on the calling
/// thread in order of `i`. At most `window` prepared items wait at any time. An error from
/// `consume` stops the workers and is returned.
pub fn ordered_stream<P, F, C>(
    n: usize,
    threads: usize,
    window: usize,
    prepare: F,
    mut consume: C,
) -> Result<(), Error>
where
    P: Send,
    F: Fn(usize) -> P + Sync,
    C: FnMut(usize, P) -> Result<(), Error>,
{
    if n == 0 {
        return Ok(());
    }
    let threads = threads.max(1);
    let window = window.max(threads);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    // `consumed` = how many items the consumer has taken; workers wait while too far ahead.
    let consumed = Mutex::new(0usize);
    let cv = Condvar::new();
    let (tx, rx) = crossbeam_channel::bounded::<(usize, P)>(window);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("deepfaune-decode-{i}"))
        .build()
        .map_err(|e| Error::InvalidArgument(format!("thread pool: {e}")))?;
    let mut result = Ok(());
    pool.in_place_scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop, consumed, cv, prepare) = (&next, &stop, &consumed, &cv, &prepare);
            s.spawn(move |_| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n || stop.load(Ordering::SeqCst) {
                    break;
                }
                {
                    let mut c = consumed.lock().unwrap_or_else(|p| p.into_inner());
                    while i >= *c + window && !stop.load(Ordering::SeqCst) {
                        c = cv.wait(c).unwrap_or_else(|p| p.into_inner());
                    }
                }
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let item = prepare(i);
                if tx.send((i, item)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending: BTreeMap<usize, P> = BTreeMap::new();
        let mut expected = 0usize;
        'outer: while expected < n {
            match rx.recv() {
                Ok((i, item)) => {
                    pending.insert(i, item);
                }
                Err(_) => break,
            }
            while let Some(item) = pending.remove(&expected) {
                if let Err(e) = consume(expected, item) {
                    result = Err(e);
                    break 'outer;
                }
                expected += 1;
                *consumed.lock().unwrap_or_else(|p| p.into_inner()) = expected;
                cv.notify_all();
            }
        }
        stop.store(true, Ordering::SeqCst);
        cv.notify_all();
        // Drain so blocked senders can finish.
        while rx.try_recv().is_ok() {}
        drop(rx);
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn delivers_in_order_and_bounded() {
        let in_flight = AtomicUsize::new(0);
        let max_seen = AtomicUsize::new(0);
        let mut got = Vec::new();
        ordered_stream(
            200,
            3,
            4,
            |i| {
                let f = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max_seen.fetch_max(f, Ordering::SeqCst);
                // Uneven work so items finish out of order.
                std::thread::sleep(std::time::Duration::from_micros(
                    ((i * 37) % 11) as u64 * 50,
                ));
                i * 2
            },
            |i, v| {
                in_flight.fetch_sub(1, Ordering::SeqCst);
                assert_eq!(v, i * 2);
                got.push(i);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, (0..200).collect::<Vec<_>>());
        // window items prepared-but-unconsumed, plus one being consumed.
        assert!(
            max_seen.load(Ordering::SeqCst) <= 5,
            "{}",
            max_seen.load(Ordering::SeqCst)
        );
    }

    #[test]
    fn consumer_error_stops_the_run() {
        let prepared = AtomicUsize::new(0);
        let r = ordered_stream(
            10_000,
            2,
            4,
            |i| {
                prepared.fetch_add(1, Ordering::SeqCst);
                i
            },
            |i, _| {
                if i == 5 {
                    Err(Error::Cancelled)
                } else {
                    Ok(())
                }
            },
        );
        assert!(matches!(r, Err(Error::Cancelled)));
        assert!(prepared.load(Ordering::SeqCst) < 100);
    }
}
