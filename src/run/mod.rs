//! Stage 4 (run): the streaming driver.
//!
//! [`ordered_stream`] runs a `prepare` step (decode, letterbox) on worker threads and hands the
//! results to a `consume` step on the calling thread (inference, bookkeeping) **in input order**,
//! with at most `window` items in flight: memory does not grow with the number of files.
//! [`detection`] builds the detection run on it; [`frames`] runs frames held in memory (videos);
//! [`imported`] classifies boxes read from a MegaDetector file. [`crate::pipeline::Pipeline`]
//! drives them.

pub mod budget;
pub mod checkpoint;
pub mod detection;
pub mod distributed;
pub mod frames;
pub mod imported;
pub mod pipeline;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

pub use checkpoint::Checkpoint;
pub use detection::{detect_files, DetectionResults, Failure, RunOptions};
pub use imported::run_imported;
pub use pipeline::{run_pipeline, run_pipeline_resumable, ClassifyStage, PipelineResults, Resume};

use crate::error::Error;

/// Runs `prepare(i, &item)` for the items of `source` (taken lazily, numbered from 0) on
/// `threads` workers and `consume(i, item, prepared)` on the calling thread in order of `i`. At
/// most `window` prepared items wait at any time, and `source` is only pulled as workers need
/// items, so a lazy source (a folder walk) starts producing results at once. An error from
/// `consume` stops the workers and is returned. With a `budget`, the consumer tells it which
/// item it needs next, and closes it when the stream ends (see [`budget`]).
pub fn ordered_stream<T, I, P, F, C>(
    source: I,
    threads: usize,
    window: usize,
    budget: Option<&budget::PixelBudget>,
    prepare: F,
    mut consume: C,
) -> Result<(), Error>
where
    T: Send,
    I: Iterator<Item = T> + Send,
    P: Send,
    F: Fn(usize, &T) -> P + Sync,
    C: FnMut(usize, T, P) -> Result<(), Error>,
{
    let threads = threads.max(1);
    let window = window.max(threads);
    // The source and the number of the next item it gives, taken together under one lock.
    let source = Mutex::new((source, 0usize));
    let stop = AtomicBool::new(false);
    // `consumed` = how many items the consumer has taken; workers wait while too far ahead.
    let consumed = Mutex::new(0usize);
    let cv = Condvar::new();
    let (tx, rx) = crossbeam_channel::bounded::<(usize, T, P)>(window);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("deepfaune-decode-{i}"))
        .build()
        .map_err(|e| Error::InvalidArgument(format!("thread pool: {e}")))?;
    let mut result = Ok(());
    pool.in_place_scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (source, stop, consumed, cv, prepare) = (&source, &stop, &consumed, &cv, &prepare);
            s.spawn(move |_| loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let (i, item) = {
                    let mut src = source.lock().unwrap_or_else(|p| p.into_inner());
                    let Some(item) = src.0.next() else { break };
                    src.1 += 1;
                    (src.1 - 1, item)
                };
                {
                    let mut c = consumed.lock().unwrap_or_else(|p| p.into_inner());
                    while i >= *c + window && !stop.load(Ordering::SeqCst) {
                        c = cv.wait(c).unwrap_or_else(|p| p.into_inner());
                    }
                }
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let prepared = prepare(i, &item);
                if tx.send((i, item, prepared)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending: BTreeMap<usize, (T, P)> = BTreeMap::new();
        let mut expected = 0usize;
        // Ends when every worker has finished (the source is exhausted) and hung up.
        'outer: while let Ok((i, item, prepared)) = rx.recv() {
            pending.insert(i, (item, prepared));
            while let Some((item, prepared)) = pending.remove(&expected) {
                if let Err(e) = consume(expected, item, prepared) {
                    result = Err(e);
                    break 'outer;
                }
                expected += 1;
                *consumed.lock().unwrap_or_else(|p| p.into_inner()) = expected;
                cv.notify_all();
                if let Some(b) = budget {
                    b.set_next_needed(expected);
                }
            }
        }
        stop.store(true, Ordering::SeqCst);
        cv.notify_all();
        if let Some(b) = budget {
            b.close();
        }
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
            0..200usize,
            3,
            4,
            None,
            |i, &x| {
                assert_eq!(i, x);
                let f = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max_seen.fetch_max(f, Ordering::SeqCst);
                // Uneven work so items finish out of order.
                std::thread::sleep(std::time::Duration::from_micros(
                    ((i * 37) % 11) as u64 * 50,
                ));
                i * 2
            },
            |i, _, v| {
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

    /// The source is pulled only as workers need items: when the first item is consumed, no
    /// more than `window` + `threads` items have been taken from it.
    #[test]
    fn pulls_the_source_lazily() {
        let pulled = AtomicUsize::new(0);
        let source = (0..1_000_000usize).inspect(|_| {
            pulled.fetch_add(1, Ordering::SeqCst);
        });
        let mut at_first = None;
        let mut n = 0;
        ordered_stream(
            source,
            2,
            4,
            None,
            |_, &x| x,
            |_, _, _| {
                at_first.get_or_insert(pulled.load(Ordering::SeqCst));
                n += 1;
                if n == 10 {
                    Err(Error::Cancelled)
                } else {
                    Ok(())
                }
            },
        )
        .unwrap_err();
        assert!(at_first.unwrap() <= 4 + 2 + 1, "{at_first:?}");
        assert!(pulled.load(Ordering::SeqCst) < 100);
    }

    #[test]
    fn consumer_error_stops_the_run() {
        let prepared = AtomicUsize::new(0);
        let r = ordered_stream(
            0..10_000usize,
            2,
            4,
            None,
            |i, _| {
                prepared.fetch_add(1, Ordering::SeqCst);
                i
            },
            |i, _, _| {
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
