//! Time zones and ISO 8601 text for Camtrap DP: EXIF dates carry no zone, Camtrap DP requires one.

/// A fixed UTC offset in minutes (`+02:00` = 120).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcOffset(pub i32);

impl UtcOffset {
    /// The `timezone` a caller gave (`--timezone`, `to_camtrap_dp(timezone=)`): [`parse`]d, or
    /// an invalid-argument error that says what to write.
    ///
    /// [`parse`]: UtcOffset::parse
    pub fn from_argument(text: &str) -> Result<UtcOffset, crate::error::Error> {
        Self::parse(text).ok_or_else(|| {
            crate::error::Error::InvalidArgument(format!(
                "timezone '{text}': use an offset such as +02:00, -05:30 or Z"
            ))
        })
    }

    /// Parses `Z`, `UTC`, `+02:00`, `+0200`, `-05:30` or `+2`; `None` for anything else.
    ///
    /// ```
    /// use deepfaune_rs::export::camtrap_dp::UtcOffset;
    /// assert_eq!(UtcOffset::parse("+02:00"), Some(UtcOffset(120)));
    /// assert_eq!(UtcOffset::parse("-0530"), Some(UtcOffset(-330)));
    /// assert_eq!(UtcOffset::parse("Z"), Some(UtcOffset(0)));
    /// assert_eq!(UtcOffset::parse("CET"), None);
    /// ```
    pub fn parse(text: &str) -> Option<UtcOffset> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
            return Some(UtcOffset(0));
        }
        let (sign, rest) = match t.as_bytes().first()? {
            b'+' => (1, &t[1..]),
            b'-' => (-1, &t[1..]),
            _ => return None,
        };
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (h, m) = match digits.len() {
            1 | 2 => (digits.parse::<i32>().ok()?, 0),
            3 => (digits[..1].parse().ok()?, digits[1..].parse().ok()?),
            _ => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
        };
        if h > 14 || m > 59 || (rest.contains(':') && digits.len() != 4) {
            return None;
        }
        Some(UtcOffset(sign * (h * 60 + m)))
    }

    /// The offset at the end of an ISO 8601 date-time (`...T12:00:00+02:00`, `...Z`).
    pub fn of_datetime(text: &str) -> Option<UtcOffset> {
        let t = text.trim();
        if t.ends_with(['Z', 'z']) {
            return Some(UtcOffset(0));
        }
        let time = &t[t.find('T')? + 1..];
        let at = time.rfind(['+', '-'])?;
        UtcOffset::parse(&time[at..])
    }

    /// `Z` or `±hh:mm`.
    pub fn suffix(self) -> String {
        if self.0 == 0 {
            return "Z".into();
        }
        let sign = if self.0 < 0 { '-' } else { '+' };
        let m = self.0.unsigned_abs();
        format!("{sign}{:02}:{:02}", m / 60, m % 60)
    }
}

/// ISO 8601 text of a naive local time (seconds since 1970-01-01 00:00:00 of the camera's
/// clock) in the zone `offset`: `2021-05-28T13:45:07+02:00`.
///
/// ```
/// use deepfaune_rs::export::camtrap_dp::{iso_datetime, UtcOffset};
/// assert_eq!(iso_datetime(0, UtcOffset(0)), "1970-01-01T00:00:00Z");
/// assert_eq!(iso_datetime(1_622_209_507, UtcOffset(120)), "2021-05-28T13:45:07+02:00");
/// ```
pub fn iso_datetime(local_seconds: i64, offset: UtcOffset) -> String {
    let (date, s) = (
        local_seconds.div_euclid(86_400),
        local_seconds.rem_euclid(86_400),
    );
    format!(
        "{}T{:02}:{:02}:{:02}{}",
        iso_date(date),
        s / 3600,
        s % 3600 / 60,
        s % 60,
        offset.suffix()
    )
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01), proleptic Gregorian.
pub fn iso_date(days: i64) -> String {
    let (y, m, d) = crate::image_io::exif::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Seconds since the Unix epoch now (UTC).
pub fn now_utc_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timezone_argument_that_is_no_offset_says_what_to_write() {
        assert_eq!(UtcOffset::from_argument("+02:00").unwrap(), UtcOffset(120));
        assert_eq!(
            UtcOffset::from_argument("CET").unwrap_err().to_string(),
            "invalid argument: timezone 'CET': use an offset such as +02:00, -05:30 or Z"
        );
    }

    #[test]
    fn dates_across_leap_years_and_before_1970() {
        // 2024-02-29 is day 19782 (19723 days to 2024-01-01, + 31 + 28).
        assert_eq!(iso_date(19_782), "2024-02-29");
        assert_eq!(iso_date(-1), "1969-12-31");
        assert_eq!(
            iso_datetime(-1, UtcOffset(-330)),
            "1969-12-31T23:59:59-05:30"
        );
    }

    #[test]
    fn offsets() {
        assert_eq!(UtcOffset::parse("+2"), Some(UtcOffset(120)));
        assert_eq!(UtcOffset::parse("+02:0"), None);
        assert_eq!(UtcOffset::parse("+25:00"), None);
        assert_eq!(UtcOffset::parse(""), None);
        assert_eq!(
            UtcOffset::of_datetime("2020-05-30T04:57:37+02:00"),
            Some(UtcOffset(120))
        );
        assert_eq!(
            UtcOffset::of_datetime("2020-05-30T02:57:37Z"),
            Some(UtcOffset(0))
        );
        assert_eq!(UtcOffset::of_datetime("2020-05-30T04:57:37"), None);
        assert_eq!(UtcOffset(-90).suffix(), "-01:30");
    }
}
