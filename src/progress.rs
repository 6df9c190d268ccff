//! The text progress bar of terminals (the Python package's bar when neither tqdm nor a
//! notebook widget is there): one line rewritten in place, at most five times a second, ended
//! by a newline when the work is done.

use std::time::{Duration, Instant};

/// The bar's width in characters.
const WIDTH: usize = 30;
/// The shortest time between two redraws (the last one is always drawn).
const REDRAW: Duration = Duration::from_millis(200);

/// A text bar titled `desc` counting `unit`s (`"B"`: bytes, shown in kB / MB / GB).
#[derive(Debug)]
pub struct TextBar {
    desc: String,
    unit: String,
    start: Instant,
    last: Option<Instant>,
}

impl TextBar {
    /// A bar whose clock starts now.
    pub fn new(desc: &str, unit: &str) -> TextBar {
        TextBar {
            desc: desc.to_string(),
            unit: unit.to_string(),
            start: Instant::now(),
            last: None,
        }
    }

    /// The text to write for `done` of `total` (from `\r`), or `None` when the last redraw was
    /// under 0.2 s ago and the work is not done.
    pub fn update(&mut self, done: u64, total: u64) -> Option<String> {
        let now = Instant::now();
        if done < total && self.last.is_some_and(|t| now - t < REDRAW) {
            return None;
        }
        self.last = Some(now);
        let elapsed = (now - self.start).as_secs_f64();
        Some(line(&self.desc, &self.unit, done, total, elapsed))
    }
}

/// The bar's text for `done` of `total` after `elapsed` seconds:
/// `\r<desc> [####......] <counts> ETA <s>s`, and a newline once `done >= total`.
///
/// ```
/// use deepfaune_rs::progress::line;
/// assert_eq!(
///     line("run", "img", 5, 10, 2.0),
///     "\rrun [###############...............] 5/10 2.50 img/s ETA 2s"
/// );
/// ```
pub fn line(desc: &str, unit: &str, done: u64, total: u64, elapsed: f64) -> String {
    let rate = done as f64 / elapsed.max(1e-9);
    let filled = if total > 0 {
        (WIDTH as f64 * done as f64 / total as f64) as usize
    } else {
        WIDTH
    };
    let eta = if rate > 0.0 {
        (total as f64 - done as f64) / rate
    } else {
        0.0
    };
    let counts = if unit == "B" {
        format!(
            "{}/{} {}/s",
            human_bytes(done as f64),
            human_bytes(total as f64),
            human_bytes(rate)
        )
    } else {
        format!("{done}/{total} {rate:.2} {unit}/s")
    };
    let bar = format!(
        "{}{}",
        "#".repeat(filled),
        ".".repeat(WIDTH.saturating_sub(filled))
    );
    let end = if done >= total { "\n" } else { "" };
    format!("\r{desc} [{bar}] {counts} ETA {eta:.0}s{end}")
}

/// A byte count as `512 B`, `1.5 kB`, `300.0 kB`, `2.0 MB`, `1.2 GB` (powers of 1000).
///
/// ```
/// use deepfaune_rs::progress::human_bytes;
/// assert_eq!(human_bytes(512.0), "512 B");
/// assert_eq!(human_bytes(300_000.0), "300.0 kB");
/// assert_eq!(human_bytes(1_234_567_890.0), "1.2 GB");
/// ```
pub fn human_bytes(n: f64) -> String {
    let mut n = n;
    for unit in ["B", "kB", "MB"] {
        if n < 1000.0 {
            return if unit == "B" {
                format!("{n:.0} B")
            } else {
                format!("{n:.1} {unit}")
            };
        }
        n /= 1000.0;
    }
    format!("{n:.1} GB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_the_python_bar_wrote_them() {
        // Python's _TextBar on the same figures (f"{rate:.2f}", f"{eta:.0f}", int(30 * d / t)).
        assert_eq!(
            line("detect", "img", 1, 3, 0.5),
            "\rdetect [##########....................] 1/3 2.00 img/s ETA 1s"
        );
        assert_eq!(
            line("df.pt", "B", 300_000, 300_000, 1.5),
            format!(
                "\rdf.pt [{}] 300.0 kB/300.0 kB 200.0 kB/s ETA 0s\n",
                "#".repeat(30)
            )
        );
        // No total yet: a full bar; nothing done: no rate, ETA 0.
        assert_eq!(
            line("walk", "img", 0, 0, 1.0),
            format!("\rwalk [{}] 0/0 0.00 img/s ETA 0s\n", "#".repeat(30))
        );
        assert_eq!(human_bytes(999.0), "999 B");
        assert_eq!(human_bytes(1500.0), "1.5 kB");
        assert_eq!(human_bytes(2_500_000.0), "2.5 MB");
    }

    #[test]
    fn redraws_are_throttled_but_the_last_is_drawn() {
        let mut bar = TextBar::new("run", "img");
        assert!(bar.update(1, 10).is_some());
        assert!(bar.update(2, 10).is_none());
        let last = bar.update(10, 10).unwrap();
        assert!(
            last.starts_with("\rrun [###") && last.ends_with('\n'),
            "{last:?}"
        );
    }
}
