//! Which frames of a video DeepFaune 1.4.1 classifies, and the facts of a video that decide
//! them (frame count, creation date). The frames themselves are read by PyAV in the Python
//! package (`deepfaune_rs/video.py`); what is arithmetic or text is here.

/// Frames DeepFaune samples per video (its video `BATCH_SIZE`).
pub const FRAMES_PER_VIDEO: usize = 12;

/// The frame numbers DeepFaune 1.4.1 classifies in a video (`PredictorVideo.nextBatch`).
///
/// The first `int(n * 2 / 3 + 0.5)` (8 of 12) frames are `int(int(fps) / 3)` apart (about 3 per
/// second), the step shrunk while `7 * step` exceeds the frame count; the remaining 4 are spread
/// evenly over the rest: step `int((total - last) / 4)`, none when that is 0. Numbers can repeat
/// (step 0 under 3 fps) or reach `total_frames` (DeepFaune then reads nothing there and counts
/// the position as empty). No frames: empty list.
///
/// ```
/// use deepfaune_rs::image_io::frames::frame_indices;
/// // step 10; rest (300 - 70) / 4 = 57.5 -> 57
/// assert_eq!(frame_indices(300, 30.0, 12), [0, 10, 20, 30, 40, 50, 60, 70, 127, 184, 241, 298]);
/// // step 10 -> 0 (7 * 1 > 5); (5 - 0) / 4 -> 1
/// assert_eq!(frame_indices(5, 30.0, 12), [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
/// ```
pub fn frame_indices(total_frames: i64, fps: f64, n_frames: usize) -> Vec<i64> {
    if total_frames <= 0 {
        return Vec::new();
    }
    let n_begin = (n_frames as f64 * 2.0 / 3.0 + 0.5) as usize;
    if n_begin == 0 {
        return Vec::new();
    }
    let n_rest = n_frames - n_begin;
    // Python's `int(int(fps) / 3)`: both truncate toward zero (saturating on absurd rates).
    let mut step = (fps.trunc() / 3.0) as i64;
    // DeepFaune shrinks the step one at a time while `(n_begin - 1) * step > total_frames`; the
    // largest step that passes is taken at once (a header claiming 2**31 fps would otherwise
    // cost hundreds of millions of iterations).
    let gaps = n_begin as i64 - 1;
    if gaps > 0 && (gaps as i128) * (step as i128) > total_frames as i128 {
        step = total_frames.div_euclid(gaps);
    }
    let mut out: Vec<i64> = (0..n_begin as i64).map(|k| k * step).collect();
    let last = out[n_begin - 1];
    let rest_step = if n_rest > 0 {
        ((total_frames - last) as f64 / n_rest as f64) as i64
    } else {
        0
    };
    if rest_step > 0 {
        out.extend((1..=n_rest as i64).map(|k| last + k * rest_step));
    }
    out
}

/// OpenCV's `CAP_PROP_FRAME_COUNT`: the container's count `nb_frames` when it has one, else
/// `floor(seconds * fps + 0.5)` (0 without a rate).
///
/// ```
/// use deepfaune_rs::image_io::frames::frame_count;
/// assert_eq!(frame_count(250, 0.0, 25.0), 250);
/// assert_eq!(frame_count(0, 10.02, 25.0), 251); // floor(250.5 + 0.5)
/// assert_eq!(frame_count(0, 10.0, 0.0), 0);
/// ```
pub fn frame_count(nb_frames: u64, seconds: f64, fps: f64) -> u64 {
    if nb_frames > 0 {
        return nb_frames;
    }
    if fps > 0.0 {
        // `as` saturates: NaN -> 0, negative -> 0, huge -> u64::MAX.
        (seconds * fps + 0.5).floor() as u64
    } else {
        0
    }
}

/// The first usable `creation_time` tag among `values` (DeepFaune reads the first stream's tag,
/// then the container's) as EXIF-style `YYYY:MM:DD HH:MM:SS`, the clock as written (UTC, no
/// time-zone shift).
///
/// A tag is read as Python's `datetime.fromisoformat` reads it (`2023-05-01T12:34:56.000000Z`,
/// `2023-05-01 12:34`, `2023-05-01`, `20230501T123456+02:00`...), else its first 19 characters as
/// `%Y-%m-%dT%H:%M:%S` (fields of one or two digits); a tag that is neither is passed over.
///
/// ```
/// use deepfaune_rs::image_io::frames::creation_date;
/// let tags = [None, Some("2023-05-01T12:34:56.000000Z")];
/// assert_eq!(creation_date(tags).as_deref(), Some("2023:05:01 12:34:56"));
/// assert_eq!(creation_date([Some("garbage")]), None);
/// ```
pub fn creation_date<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> Option<String> {
    values.into_iter().flatten().find_map(|raw| {
        let text = raw.trim().replace('Z', "+00:00");
        let (y, mo, d, h, mi, s) = iso_datetime(&text).or_else(|| loose_datetime(&text))?;
        Some(format!("{y:04}:{mo:02}:{d:02} {h:02}:{mi:02}:{s:02}"))
    })
}

type DateTime = (u32, u32, u32, u32, u32, u32);

/// Whether `y-m-d` is a date of the proleptic Gregorian calendar (years 1..=9999, as Python's).
fn valid_date(y: u32, m: u32, d: u32) -> bool {
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=9999).contains(&y) && (1..=days).contains(&d)
}

fn valid_time(h: u32, m: u32, s: u32) -> bool {
    h < 24 && m < 60 && s < 60
}

/// `n` ASCII digits at the start of `s` as a number, and the rest.
fn digits(s: &str, n: usize) -> Option<(u32, &str)> {
    let head = s.get(..n)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, &s[n..]))
}

/// Python 3.11's `datetime.fromisoformat` for calendar dates: `YYYY-MM-DD` or `YYYYMMDD`, then
/// optionally any one character and a time `HH[:MM[:SS[.f{1,6}]]]` (or `HHMM[SS]`) with an
/// optional offset `+HH[:MM]`.
fn iso_datetime(text: &str) -> Option<DateTime> {
    let (y, rest) = digits(text, 4)?;
    let (mo, d, rest) = match rest.strip_prefix('-') {
        Some(r) => {
            let (mo, r) = digits(r, 2)?;
            let (d, r) = digits(r.strip_prefix('-')?, 2)?;
            (mo, d, r)
        }
        None => {
            let (mo, r) = digits(rest, 2)?;
            let (d, r) = digits(r, 2)?;
            (mo, d, r)
        }
    };
    if !valid_date(y, mo, d) {
        return None;
    }
    let mut chars = rest.chars();
    let time = match chars.next() {
        None => return Some((y, mo, d, 0, 0, 0)),
        Some(_) => chars.as_str(),
    };
    // The time ends where an offset starts.
    let (clock, offset) = match time.find(['+', '-']) {
        Some(i) => (&time[..i], Some(&time[i + 1..])),
        None => (time, None),
    };
    let (h, mi, s) = iso_clock(clock)?;
    if let Some(off) = offset {
        let off = off.replace(':', "");
        let off = off.split('.').next().unwrap_or("");
        if !matches!(off.len(), 2 | 4 | 6) || !off.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    valid_time(h, mi, s).then_some((y, mo, d, h, mi, s))
}

/// `HH[:MM[:SS[.fff]]]` or `HH[MM[SS[.fff]]]`.
fn iso_clock(clock: &str) -> Option<(u32, u32, u32)> {
    let (main, fraction) = match clock.split_once(['.', ',']) {
        Some((m, f)) => (m, Some(f)),
        None => (clock, None),
    };
    if let Some(f) = fraction {
        if f.is_empty() || f.len() > 6 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    if !main.is_ascii() {
        return None;
    }
    let parts: Vec<&str> = if main.contains(':') {
        main.split(':').collect()
    } else if main.len() % 2 == 0 {
        (0..main.len() / 2)
            .map(|i| &main[2 * i..2 * i + 2])
            .collect()
    } else {
        return None;
    };
    let ok = matches!(parts.len(), 1..=3)
        && parts.iter().all(|p| p.len() == 2)
        && (fraction.is_none() || parts.len() == 3);
    if !ok {
        return None;
    }
    let n = |i: usize| -> Option<u32> {
        parts
            .get(i)
            .map_or(Some(0), |p| digits(p, 2).map(|(v, _)| v))
    };
    Some((n(0)?, n(1)?, n(2)?))
}

/// `strptime(text[:19], "%Y-%m-%dT%H:%M:%S")`: a 4-digit year, other fields of one or two
/// digits.
fn loose_datetime(text: &str) -> Option<DateTime> {
    let head: String = text.chars().take(19).collect();
    let (date, clock) = head.split_once('T')?;
    let mut date = date.split('-');
    let mut clock = clock.split(':');
    let field = |s: Option<&str>, max_len: usize| -> Option<u32> {
        let s = s?;
        if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let y = field(date.next(), 4)?;
    let (mo, d) = (field(date.next(), 2)?, field(date.next(), 2)?);
    let (h, mi, s) = (
        field(clock.next(), 2)?,
        field(clock.next(), 2)?,
        field(clock.next(), 2)?,
    );
    if date.next().is_some() || clock.next().is_some() {
        return None;
    }
    (valid_date(y, mo, d) && valid_time(h, mi, s)).then_some((y, mo, d, h, mi, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DeepFaune's loop as written (`while (n_begin - 1) * step > total: step -= 1`), by hand.
    fn deepfaune_loop(total: i64, fps: f64, n: usize) -> Vec<i64> {
        let n_begin = (n as f64 * 2.0 / 3.0 + 0.5) as i64;
        let n_rest = n as i64 - n_begin;
        let mut step = (fps.trunc() / 3.0) as i64;
        while (n_begin - 1) * step > total {
            step -= 1;
        }
        let begin: Vec<i64> = (0..n_begin).map(|k| k * step).collect();
        let last = *begin.last().unwrap();
        let rest_step = ((total - last) as f64 / n_rest as f64) as i64;
        let mut out = begin;
        if rest_step > 0 {
            out.extend((1..=n_rest).map(|k| last + k * rest_step));
        }
        out
    }

    #[test]
    fn frame_indices_follow_deepfaunes_loop() {
        for total in [1, 2, 5, 7, 8, 13, 30, 100, 301, 1000] {
            for fps in [0.5, 2.0, 3.0, 9.99, 15.0, 29.97, 30.0, 60.0, 240.0] {
                assert_eq!(
                    frame_indices(total, fps, 12),
                    deepfaune_loop(total, fps, 12),
                    "{total} frames at {fps} fps"
                );
            }
        }
        assert!(frame_indices(0, 30.0, 12).is_empty());
        assert!(frame_indices(-3, 30.0, 12).is_empty());
        // A header claiming 2**31 fps: step = 300 // 7 = 42 at once; rest (300 - 294) / 4 -> 1.
        let got = frame_indices(300, 2f64.powi(31), 12);
        assert_eq!(got[..8], [0, 42, 84, 126, 168, 210, 252, 294]);
        assert_eq!(got[8..], [295, 296, 297, 298]);
    }

    #[test]
    fn frame_count_is_opencvs() {
        assert_eq!(frame_count(7, 100.0, 30.0), 7);
        // 3.3 s at 29.97 fps: 98.901 + 0.5 -> 99.
        assert_eq!(frame_count(0, 3.3, 29.97), 99);
        assert_eq!(frame_count(0, 0.0, 30.0), 0);
        assert_eq!(frame_count(0, f64::NAN, 30.0), 0);
    }

    #[test]
    fn creation_dates_as_pythons_fromisoformat_reads_them() {
        let one = |s: &str| creation_date([Some(s)]);
        // Each expected value: datetime.fromisoformat(s.replace("Z", "+00:00"))
        // .strftime("%Y:%m:%d %H:%M:%S") in Python 3.11, or None where it raises and the
        // strptime fallback raises too.
        let cases = [
            ("2023-05-01T12:34:56.000000Z", Some("2023:05:01 12:34:56")),
            ("2023-05-01 12:34:56", Some("2023:05:01 12:34:56")),
            ("2023-05-01T12:34:56+02:00", Some("2023:05:01 12:34:56")),
            ("2023-05-01T12:34", Some("2023:05:01 12:34:00")),
            ("2023-05-01", Some("2023:05:01 00:00:00")),
            ("20230501T123456", Some("2023:05:01 12:34:56")),
            ("2024-02-29T00:00:00Z", Some("2024:02:29 00:00:00")),
            ("2023-02-29T00:00:00Z", None),
            ("2023-5-1T1:2:3", Some("2023:05:01 01:02:03")),
            ("2023-05-01T25:00:00", None),
            ("garbage", None),
            ("2023-05-01T1234", Some("2023:05:01 12:34:00")),
            ("2023-05-01T123", None),
            ("2023-05-01T\u{e9}1", None),
            ("2023-05-01T1\u{e9}", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(one(text).as_deref(), want, "{text:?}");
        }
        // The first usable tag wins; missing and unreadable ones are passed over.
        let tags = [
            None,
            Some("nope"),
            Some("2020-01-02T03:04:05Z"),
            Some("2021-01-01"),
        ];
        assert_eq!(creation_date(tags).as_deref(), Some("2020:01:02 03:04:05"));
    }
}
