//! EXIF facts that matter to the pipeline: DateTimeOriginal (sequences) and Orientation.

/// A naive local date-time from EXIF, kept both as text (as the camera wrote it) and as seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    /// `YYYY:MM:DD HH:MM:SS`, exactly as in the file.
    pub text: String,
    /// Seconds since 1970-01-01 00:00:00 of the same naive clock (no time zone).
    pub seconds: i64,
}

/// What the pipeline reads from EXIF.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExifInfo {
    /// Tag 36867 DateTimeOriginal, when present and valid.
    pub date: Option<Timestamp>,
    /// Tag 274 Orientation (1..=8); 1 when absent or invalid.
    pub orientation: u16,
}

/// Reads EXIF from any container kamadak-exif understands (JPEG, TIFF, PNG, WebP, HEIF).
/// Missing or broken EXIF yields the defaults: it never fails.
pub fn read_exif(bytes: &[u8]) -> ExifInfo {
    let mut info = ExifInfo {
        date: None,
        orientation: 1,
    };
    let Ok(data) = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(bytes)) else {
        return info;
    };
    if let Some(f) = data.get_field(exif::Tag::Orientation, exif::In::PRIMARY) {
        if let Some(v) = f.value.get_uint(0) {
            if (1..=8).contains(&v) {
                info.orientation = v as u16;
            }
        }
    }
    if let Some(f) = data.get_field(exif::Tag::DateTimeOriginal, exif::In::PRIMARY) {
        if let exif::Value::Ascii(parts) = &f.value {
            if let Some(first) = parts.first() {
                if let Ok(s) = std::str::from_utf8(first) {
                    info.date = parse_exif_datetime(s);
                }
            }
        }
    }
    info
}

/// Parses `YYYY:MM:DD HH:MM:SS` (as Python's `strptime(s, "%Y:%m:%d %H:%M:%S")` accepts it, after
/// trimming NULs and spaces); anything else, or an impossible date, is `None`.
///
/// ```
/// use deepfaune_rs::image_io::exif::parse_exif_datetime;
/// assert_eq!(parse_exif_datetime("1970:01:02 00:00:01").unwrap().seconds, 86401);
/// assert!(parse_exif_datetime("0000:00:00 00:00:00").is_none());
/// ```
pub fn parse_exif_datetime(raw: &str) -> Option<Timestamp> {
    let s = raw.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b':'
        || b[7] != b':'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if y < 1
        || !(1..=12).contains(&mo)
        || d < 1
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || se > 59
    {
        return None;
    }
    let seconds = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se;
    Some(Timestamp {
        text: s.to_string(),
        seconds,
    })
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// The proleptic Gregorian `(year, month, day)` of a day number (days since 1970-01-01):
/// Howard Hinnant's `civil_from_days`, the inverse of [`days_from_civil`].
///
/// ```
/// use deepfaune_rs::image_io::exif::civil_from_days;
/// assert_eq!(civil_from_days(0), (1970, 1, 1));
/// assert_eq!(civil_from_days(19_782), (2024, 2, 29));
/// assert_eq!(civil_from_days(-1), (1969, 12, 31));
/// ```
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_dates() {
        let t = parse_exif_datetime("2021:05:28 13:45:07").unwrap();
        // 2021-05-28 is day 18775 since the epoch (checked with Python's date.toordinal()).
        assert_eq!(t.seconds, 18_775 * 86_400 + 13 * 3600 + 45 * 60 + 7);
        assert_eq!(t.text, "2021:05:28 13:45:07");
        assert!(parse_exif_datetime("2020:02:29 00:00:00").is_some());
        assert!(parse_exif_datetime("2021:05:28 13:45:07\0").is_some());
    }

    #[test]
    fn rejects_broken_dates() {
        for s in [
            "",
            "2021-05-28 13:45:07",
            "2021:13:01 00:00:00",
            "2019:02:29 00:00:00",
            "2021:05:28 24:00:00",
            "2021:05:28 13:45",
            "    :  :     :  :  ",
            "2021:05:3a 00:00:00",
            "0000:00:00 00:00:00",
        ] {
            assert!(parse_exif_datetime(s).is_none(), "{s:?}");
        }
    }

    #[test]
    fn missing_exif_gives_defaults() {
        assert_eq!(
            read_exif(b"not an image"),
            ExifInfo {
                date: None,
                orientation: 1
            }
        );
    }
}
