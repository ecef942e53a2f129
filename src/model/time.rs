//! Timestamps and dates: utilization times are RFC 3339 with an offset and become UTC
//! instants; the usage date is the UTC date of the start (rating.md §2).

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};

/// Days from 1970-01-01 to 0001-01-01 in chrono's day count, for Arrow `Date32`.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Parse an RFC 3339 timestamp that carries an offset (`Z` or `-07:00`). A leap second
/// (`23:59:60Z`) is refused: chrono would keep it on the earlier day while its microseconds
/// fall on the next, so the usage date and `ChargePeriodStart` would disagree.
pub fn parse_rfc3339_utc(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .filter(|t| t.nanosecond() < 1_000_000_000)
        .map(|t| t.with_timezone(&Utc))
}

/// Whether `text` is a valid RFC 3339 time except that it names a leap second (`:60`).
pub fn is_leap_second(text: &str) -> bool {
    DateTime::parse_from_rfc3339(text.trim()).is_ok_and(|t| t.nanosecond() >= 1_000_000_000)
}

/// Parse a timestamp that may lack an offset (rate cards, invoice API): no offset means UTC.
/// Also accepts a bare date and Microsoft's CSV form `M/D/YYYY H:MM`.
pub fn parse_lenient_utc(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Some(v) = parse_rfc3339_utc(t) {
        return Some(v);
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%m/%d/%Y %H:%M",
        "%m/%d/%Y %H:%M:%S",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, fmt) {
            // A leap second is refused here too (see parse_rfc3339_utc).
            return (n.nanosecond() < 1_000_000_000).then(|| Utc.from_utc_datetime(&n));
        }
    }
    for fmt in ["%Y-%m-%d", "%m/%d/%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(t, fmt) {
            return Some(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?));
        }
    }
    None
}

/// Microseconds since the Unix epoch.
pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The first instant (00:00 UTC) of a date, in microseconds since the Unix epoch.
pub fn start_of_day_micros(d: NaiveDate) -> i64 {
    to_micros(Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)))
}

/// From microseconds since the Unix epoch.
pub fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Arrow `Date32` value of a date.
pub fn date_to_days(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

/// Date of an Arrow `Date32` value.
pub fn days_to_date(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_DAYS_FROM_CE).unwrap_or_default()
}

/// `YYYY-MM` of a date.
pub fn month_of(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

/// First day of a `YYYY-MM` month.
pub fn parse_month(text: &str) -> Option<NaiveDate> {
    let t = text.trim();
    let (y, m) = if t.len() == 6 && t.bytes().all(|b| b.is_ascii_digit()) {
        (t[..4].parse().ok()?, t[4..].parse().ok()?)
    } else if t.len() == 7 && t.as_bytes()[4] == b'-' {
        (t[..4].parse().ok()?, t[5..].parse().ok()?)
    } else {
        let d = parse_lenient_utc(t)?.date_naive();
        (d.year(), d.month())
    };
    NaiveDate::from_ymd_opt(y, m, 1)
}

/// First day of the month after the month of `d`.
pub fn next_month_start(d: NaiveDate) -> NaiveDate {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d)
}

/// `d` plus `months`, clamped to the last day of the target month (2026-01-31 + 1 = 2026-02-28).
pub fn add_months_clamped(d: NaiveDate, months: u32) -> NaiveDate {
    d.checked_add_months(chrono::Months::new(months))
        .unwrap_or(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_day_is_the_utc_date_of_the_start() {
        let s = parse_rfc3339_utc("2017-06-07T17:00:00-07:00").unwrap();
        assert_eq!(s.date_naive().to_string(), "2017-06-08");
        assert_eq!(s.to_rfc3339(), "2017-06-08T00:00:00+00:00");
        assert!(parse_rfc3339_utc("2017-06-07T17:00:00").is_none());
        assert!(parse_rfc3339_utc("2026-13-45T00:00:00Z").is_none());
    }

    #[test]
    fn lenient_forms() {
        assert_eq!(
            parse_lenient_utc("2015-06-01T00:00:00")
                .unwrap()
                .to_rfc3339(),
            "2015-06-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_lenient_utc("2/28/2019 23:59").unwrap().to_rfc3339(),
            "2019-02-28T23:59:00+00:00"
        );
        assert_eq!(
            parse_lenient_utc("2026-01-15")
                .unwrap()
                .date_naive()
                .to_string(),
            "2026-01-15"
        );
    }

    #[test]
    fn months() {
        assert_eq!(parse_month("201909").unwrap().to_string(), "2019-09-01");
        assert_eq!(parse_month("2019-09").unwrap().to_string(), "2019-09-01");
        assert_eq!(parse_month("9/15/2019").unwrap().to_string(), "2019-09-01");
        assert_eq!(parse_month("2019-9"), None);
        let d = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        assert_eq!(add_months_clamped(d, 1).to_string(), "2026-02-28");
        assert_eq!(add_months_clamped(d, 11).to_string(), "2026-12-31");
        assert_eq!(
            next_month_start(NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()).to_string(),
            "2027-01-01"
        );
        assert_eq!(days_to_date(date_to_days(d)), d);
        assert_eq!(
            from_micros(start_of_day_micros(d)).to_rfc3339(),
            "2026-01-31T00:00:00+00:00"
        );
        assert_eq!(
            date_to_days(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()),
            1
        );
    }
}
