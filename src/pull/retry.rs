//! What is retried and how long to wait (pull.md, throttling): `204` with `Retry-After`
//! (data not ready) and `429` wait the time Microsoft asks; `5xx` and dropped connections
//! back off exponentially with jitter ([`backon`]); at most [`MAX_ATTEMPTS`] attempts of one
//! logical request in all.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// Attempts of one logical request at most (the first included).
pub const MAX_ATTEMPTS: u32 = 5;
/// Longest `Retry-After` honoured: a longer one (minutes) is capped so a run cannot hang.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// Wait when a 429 carries no usable `Retry-After`.
const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(5);

/// What to do with one response.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Use the response (success, or a failure that retrying cannot fix).
    Done,
    /// Wait exactly this long (Retry-After), then retry.
    Wait(Duration),
    /// Retry after the next exponential back-off step.
    Backoff,
    /// Refresh the token once and retry.
    Unauthorized,
}

/// Classify a response status with its `Retry-After` header.
pub fn classify(status: u16, retry_after: Option<&str>) -> Verdict {
    let after = retry_after.and_then(parse_retry_after);
    match status {
        // Utilization not ready yet: only with Retry-After; a bare 204 is an empty answer.
        204 => after.map(Verdict::Wait).unwrap_or(Verdict::Done),
        401 => Verdict::Unauthorized,
        429 => Verdict::Wait(after.unwrap_or(DEFAULT_THROTTLE_WAIT)),
        408 | 500..=599 => match after {
            Some(d) => Verdict::Wait(d),
            None => Verdict::Backoff,
        },
        _ => Verdict::Done,
    }
}

/// `Retry-After` in seconds or as an HTTP date, capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
        let ms = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    };
    Some(d.min(MAX_RETRY_AFTER))
}

/// The exponential back-off of one logical request: 200 ms doubling, at most 10 s, with
/// jitter so that concurrent requests do not retry in lockstep.
pub fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .with_factor(2.0)
        .with_jitter()
        .with_max_times(MAX_ATTEMPTS as usize)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify(200, None), Verdict::Done);
        assert_eq!(classify(204, None), Verdict::Done);
        assert_eq!(
            classify(204, Some("1")),
            Verdict::Wait(Duration::from_secs(1))
        );
        assert_eq!(
            classify(429, Some(" 57 ")),
            Verdict::Wait(Duration::from_secs(57))
        );
        assert_eq!(classify(429, None), Verdict::Wait(DEFAULT_THROTTLE_WAIT));
        assert_eq!(classify(500, None), Verdict::Backoff);
        assert_eq!(
            classify(503, Some("2")),
            Verdict::Wait(Duration::from_secs(2))
        );
        assert_eq!(classify(401, None), Verdict::Unauthorized);
        assert_eq!(classify(404, Some("5")), Verdict::Done);
        assert_eq!(classify(400, None), Verdict::Done);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3600"), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_stops() {
        let steps: Vec<Duration> = backoff().collect();
        assert_eq!(steps.len(), MAX_ATTEMPTS as usize);
        // Jitter adds up to one step on top: 200 ms..400 ms first, then at least doubling.
        assert!(steps[0] >= Duration::from_millis(200) && steps[0] <= Duration::from_millis(400));
        assert!(steps[2] >= Duration::from_millis(800), "{steps:?}");
        assert!(steps.iter().all(|d| *d <= Duration::from_secs(20)));
    }
}
