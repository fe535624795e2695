//! Rates and limits as configured: `600/min`, `off`, and the server's defaults. Parsed at the
//! edge (flags, the store's columns); the limiter in `ratelimit` enforces them.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

/// A rate: `count` requests per `period`, with a burst of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub period: Duration,
}

impl Rate {
    pub fn new(count: NonZeroU32, period: Duration) -> Self {
        Self { count, period }
    }

    pub fn per_minute(count: NonZeroU32) -> Self {
        Self::new(count, Duration::from_secs(60))
    }

    /// The time one request "costs": `period / count`, at least 1 µs.
    pub fn interval_micros(&self) -> u64 {
        let micros = u64::try_from(self.period.as_micros()).unwrap_or(u64::MAX);
        (micros / u64::from(self.count.get())).max(1)
    }
}

const PERIODS: &[(&str, u64)] = &[
    ("s", 1),
    ("sec", 1),
    ("second", 1),
    ("m", 60),
    ("min", 60),
    ("minute", 60),
    ("h", 3600),
    ("hour", 3600),
    ("d", 86_400),
    ("day", 86_400),
];

impl FromStr for Rate {
    type Err = String;

    /// `600/min`, `10/s`, `5000/hour`, `100/day`.
    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = || format!("{raw:?} is not a rate: write it as <count>/<s|min|hour|day>, e.g. 600/min, or off");
        let (count, period) = raw.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let count = NonZeroU32::new(count).ok_or_else(bad)?;
        let period = period.trim().to_ascii_lowercase();
        let secs = PERIODS.iter().find(|(name, _)| *name == period).map(|(_, s)| *s).ok_or_else(bad)?;
        Ok(Self::new(count, Duration::from_secs(secs)))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.period.as_secs();
        let unit = match secs {
            1 => "s".to_owned(),
            60 => "min".to_owned(),
            3600 => "hour".to_owned(),
            86_400 => "day".to_owned(),
            other => format!("{other}s"),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// A configured limit: a rate, or none at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Off,
    Rate(Rate),
}

impl Limit {
    pub fn rate(self) -> Option<Rate> {
        match self {
            Limit::Off => None,
            Limit::Rate(r) => Some(r),
        }
    }
}

impl FromStr for Limit {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "off" | "none" | "unlimited" => Ok(Limit::Off),
            _ => raw.parse().map(Limit::Rate),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Off => f.write_str("off"),
            Limit::Rate(r) => r.fmt(f),
        }
    }
}

/// The server's default limits (`relay serve` flags); a tenant may override the first three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per `rly-` key, over every route that key calls.
    pub api_key: Limit,
    /// Per end user on the paid tier (no `X-Relay-Paid: false`), over provider calls.
    pub end_user: Limit,
    /// Per end user on the free tier (`X-Relay-Paid: false`), over provider calls.
    pub free_end_user: Limit,
    /// Per client IP: anonymous byok-flow registrations (`POST /users`).
    pub registration: Limit,
    /// Per client IP: the key-connect routes (`GET /v1/connect/{token}`, `POST /v1/connect`).
    pub connect: Limit,
}

fn rate(count: u32, secs: u64) -> Limit {
    NonZeroU32::new(count).map_or(Limit::Off, |c| Limit::Rate(Rate::new(c, Duration::from_secs(secs))))
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            api_key: rate(100, 1),
            end_user: rate(120, 60),
            free_end_user: rate(20, 60),
            registration: rate(10, 60),
            connect: rate(30, 60),
        }
    }
}
