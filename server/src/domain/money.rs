//! Money and budget periods: US dollars held as whole nano-dollars (1e-9 USD) so that sums are
//! exact, and the calendar (UTC) day or month a budget counts over.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

/// An amount of US dollars, in nano-dollars (1e-9 USD). Never negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(i64);

/// The most a budget or cap may be: one billion dollars.
const MAX_NANOS: i64 = 1_000_000_000 * NANOS_PER_USD;
const NANOS_PER_USD: i64 = 1_000_000_000;

impl Usd {
    pub const ZERO: Usd = Usd(0);

    pub fn from_nanos(nanos: i64) -> Self {
        Self(nanos.max(0))
    }

    pub fn nanos(self) -> i64 {
        self.0
    }

    /// A dollar amount as a client sends it (`limitUsd: 12.5`): finite, 0 or more, at most one
    /// billion; rounded to the nano-dollar.
    pub fn from_dollars(dollars: f64) -> Option<Self> {
        if !dollars.is_finite() || dollars < 0.0 {
            return None;
        }
        let nanos = (dollars * NANOS_PER_USD as f64).round();
        (nanos <= MAX_NANOS as f64).then_some(Self(nanos as i64))
    }

    /// As a JSON number of dollars.
    pub fn dollars(self) -> f64 {
        self.0 as f64 / NANOS_PER_USD as f64
    }

    pub fn saturating_add(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }

    /// `bps` basis points of this amount (8000: 80 %), rounded up so that a threshold is never
    /// reached before its share is.
    pub fn share(self, bps: u16) -> Usd {
        let part = i128::from(self.0) * i128::from(bps);
        Usd(i64::try_from((part + 9_999) / 10_000).unwrap_or(i64::MAX))
    }
}

/// A dollar amount from a request body, or a 400 `invalid_amount` naming `param`.
pub fn dollars_param(dollars: f64, param: &'static str) -> Result<Usd, crate::error::ApiError> {
    Usd::from_dollars(dollars).ok_or_else(|| {
        crate::error::ApiError::invalid_request(
            "invalid_amount",
            format!("{param} must be a number of US dollars from 0 to 1000000000."),
        )
        .param(param)
    })
}

impl fmt::Display for Usd {
    /// `$12.50`; amounts under a cent keep their significant digits (`$0.000125`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dollars = self.dollars();
        if self.0 == 0 || self.0 >= NANOS_PER_USD / 100 {
            write!(f, "${dollars:.2}")
        } else {
            let text = format!("{dollars:.9}");
            write!(f, "${}", text.trim_end_matches('0'))
        }
    }
}

/// The calendar period a budget counts over, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// `daily` or `monthly`.
    pub fn adjective(self) -> &'static str {
        match self {
            Period::Day => "daily",
            Period::Month => "monthly",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "day" => Some(Period::Day),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    /// Midnight UTC of the day or the first of the month that `at` falls in.
    pub fn start(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let date = at.date_naive();
        let first = match self {
            Period::Day => date,
            Period::Month => NaiveDate::from_ymd_opt(date.year(), date.month(), 1).unwrap_or(date),
        };
        Utc.from_utc_datetime(&first.and_time(chrono::NaiveTime::MIN))
    }

    /// When the period `at` falls in ends (and the next one begins).
    pub fn next_start(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let start = self.start(at);
        match self {
            Period::Day => start + chrono::Duration::days(1),
            Period::Month => {
                let (y, m) =
                    if start.month() == 12 { (start.year() + 1, 1) } else { (start.year(), start.month() + 1) };
                let first = NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(start.date_naive());
                Utc.from_utc_datetime(&first.and_time(chrono::NaiveTime::MIN))
            }
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn dollars_round_trip_to_the_nano_dollar() {
        assert_eq!(Usd::from_dollars(12.5).map(Usd::nanos), Some(12_500_000_000));
        assert_eq!(Usd::from_dollars(0.000_000_001).map(Usd::nanos), Some(1));
        assert_eq!(Usd::from_dollars(-0.01), None);
        assert_eq!(Usd::from_dollars(f64::NAN), None);
        assert_eq!(Usd::from_dollars(2e9), None);
        assert_eq!(Usd::from_nanos(-5), Usd::ZERO);
    }

    #[test]
    fn amounts_read_as_dollars() {
        assert_eq!(Usd::from_nanos(12_500_000_000).to_string(), "$12.50");
        assert_eq!(Usd::ZERO.to_string(), "$0.00");
        assert_eq!(Usd::from_nanos(125_000).to_string(), "$0.000125");
        assert_eq!(Usd::from_nanos(10_000_000).to_string(), "$0.01");
    }

    #[test]
    fn a_share_is_rounded_up() {
        assert_eq!(Usd::from_nanos(10).share(8000), Usd::from_nanos(8));
        assert_eq!(Usd::from_nanos(11).share(8000), Usd::from_nanos(9));
        assert_eq!(Usd::from_nanos(i64::MAX).share(10_000), Usd::from_nanos(i64::MAX));
    }

    #[test]
    fn periods_are_calendar_days_and_months_in_utc() {
        let t = at("2026-12-31T23:59:59Z");
        assert_eq!(Period::Day.start(t), at("2026-12-31T00:00:00Z"));
        assert_eq!(Period::Day.next_start(t), at("2027-01-01T00:00:00Z"));
        assert_eq!(Period::Month.start(t), at("2026-12-01T00:00:00Z"));
        assert_eq!(Period::Month.next_start(t), at("2027-01-01T00:00:00Z"));
        assert_eq!(Period::Month.next_start(at("2027-02-01T00:00:00Z")), at("2027-03-01T00:00:00Z"));
    }
}
