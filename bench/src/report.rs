//! The results: what was measured (JSON), a markdown summary with the targets beside the
//! measurements, and an SVG chart of the added latency against the request rate.

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;

use crate::load::{Errors, RunOutcome, StreamOutcome};
use crate::relay::Db;
use crate::sys::{CpuDelta, MachineInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// `/v1/chat/completions` to an OpenAI-format upstream.
    Chat,
    /// `/v1/chat/completions` translated to Anthropic's Messages API.
    Translated,
    /// Raw passthrough `/relay/openai/v1/chat/completions`.
    Passthrough,
    ChatStream,
    TranslatedStream,
    PassthroughStream,
}

impl Scenario {
    pub fn label(self) -> &'static str {
        match self {
            Scenario::Chat => "unified chat → OpenAI",
            Scenario::Translated => "unified chat → Anthropic (translated)",
            Scenario::Passthrough => "passthrough /relay/openai",
            Scenario::ChatStream => "stream: unified → OpenAI",
            Scenario::TranslatedStream => "stream: unified → Anthropic (translated)",
            Scenario::PassthroughStream => "stream: passthrough /relay/openai",
        }
    }

    pub fn is_stream(self) -> bool {
        matches!(self, Scenario::ChatStream | Scenario::TranslatedStream | Scenario::PassthroughStream)
    }
}

/// Percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            count: h.len(),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// CPU seconds spread over `n` requests, in microseconds each.
fn per(seconds: Option<f64>, n: u64) -> Option<f64> {
    seconds.filter(|_| n > 0).map(|s| s * 1e6 / n as f64)
}

/// One path (direct or through Relay) of one run.
#[derive(Debug, Clone, Serialize)]
pub struct PathRun {
    pub ok: u64,
    pub errors: Errors,
    /// Errors during the (unrecorded) warmup, still counted as a failure of the run.
    pub warmup_errors: u64,
    pub seconds: f64,
    pub achieved_rps: f64,
    /// Open loop: from each request's scheduled instant. Closed loop: from its send.
    pub latency: Percentiles,
    /// Open loop: from the moment a connection took the request.
    pub service: Option<Percentiles>,
    /// Open loop: how late requests left behind their schedule.
    pub send_lag: Option<Percentiles>,
    pub relay_cpu_seconds: Option<f64>,
    pub relay_cpu_us_per_request: Option<f64>,
    /// PostgreSQL server processes serving Relay, per request (not part of Relay's figure).
    pub db_cpu_us_per_request: Option<f64>,
    /// Share of the machine's CPU time busy during the run (everything, not only Relay).
    pub machine_cpu_busy: f64,
}

impl PathRun {
    pub fn from_outcome(o: &RunOutcome, open_loop: bool, cpu: CpuDelta, warmup_errors: u64) -> Self {
        let seconds = o.elapsed.as_secs_f64();
        Self {
            ok: o.ok,
            errors: o.errors.clone(),
            warmup_errors,
            seconds,
            achieved_rps: if seconds > 0.0 { o.ok as f64 / seconds } else { 0.0 },
            latency: Percentiles::of(&o.latency),
            service: open_loop.then(|| Percentiles::of(&o.service)),
            send_lag: open_loop.then(|| Percentiles::of(&o.send_lag)),
            relay_cpu_seconds: cpu.relay_s,
            relay_cpu_us_per_request: per(cpu.relay_s, o.ok),
            db_cpu_us_per_request: per(cpu.db_s, o.ok),
            machine_cpu_busy: cpu.machine_busy,
        }
    }

    fn failed(&self) -> u64 {
        self.errors.total + self.warmup_errors
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Added {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

impl Added {
    fn between(direct: &Percentiles, relay: &Percentiles) -> Self {
        Self {
            p50_us: relay.p50_us - direct.p50_us,
            p99_us: relay.p99_us - direct.p99_us,
            p999_us: relay.p999_us - direct.p999_us,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RatePoint {
    pub db: Db,
    pub scenario: Scenario,
    pub rate: f64,
    pub direct: PathRun,
    pub relay: PathRun,
    pub added: Added,
}

impl RatePoint {
    pub fn new(db: Db, scenario: Scenario, rate: f64, direct: PathRun, relay: PathRun) -> Self {
        let added = Added::between(&direct.latency, &relay.latency);
        Self { db, scenario, rate, direct, relay, added }
    }

    pub fn summary(&self) -> String {
        format!(
            "{} @ {} rps: added p50 {} p99 {} p99.9 {}; relay CPU {}/req; errors {}/{}",
            self.scenario.label(),
            self.rate,
            us(self.added.p50_us),
            us(self.added.p99_us),
            us(self.added.p999_us),
            opt_us(self.relay.relay_cpu_us_per_request),
            self.direct.failed(),
            self.relay.failed()
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MaxPoint {
    pub db: Db,
    pub scenario: Scenario,
    pub direct: PathRun,
    pub relay: PathRun,
}

impl MaxPoint {
    pub fn summary(&self) -> String {
        format!(
            "{} max: direct {:.0} rps, relay {:.0} rps, relay CPU {}/req; errors {}/{}",
            self.scenario.label(),
            self.direct.achieved_rps,
            self.relay.achieved_rps,
            opt_us(self.relay.relay_cpu_us_per_request),
            self.direct.failed(),
            self.relay.failed()
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamRun {
    pub streams_ok: u64,
    pub errors: Errors,
    pub warmup_errors: u64,
    pub seconds: f64,
    pub ttfb: Percentiles,
    pub chunk: Percentiles,
    pub relay_cpu_us_per_stream: Option<f64>,
    pub db_cpu_us_per_stream: Option<f64>,
    pub machine_cpu_busy: f64,
}

impl StreamRun {
    pub fn from_outcome(o: &StreamOutcome, cpu: CpuDelta, warmup_errors: u64) -> Self {
        Self {
            streams_ok: o.ok,
            errors: o.errors.clone(),
            warmup_errors,
            seconds: o.elapsed.as_secs_f64(),
            ttfb: Percentiles::of(&o.ttfb),
            chunk: Percentiles::of(&o.chunk),
            relay_cpu_us_per_stream: per(cpu.relay_s, o.ok),
            db_cpu_us_per_stream: per(cpu.db_s, o.ok),
            machine_cpu_busy: cpu.machine_busy,
        }
    }

    fn failed(&self) -> u64 {
        self.errors.total + self.warmup_errors
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamPoint {
    pub db: Db,
    pub scenario: Scenario,
    pub concurrency: usize,
    pub chunks: u64,
    pub interval_ms: u64,
    pub direct: StreamRun,
    pub relay: StreamRun,
    pub added_ttfb: Added,
    pub added_chunk: Added,
}

impl StreamPoint {
    pub fn new(db: Db, scenario: Scenario, settings: &Settings, direct: StreamRun, relay: StreamRun) -> Self {
        Self {
            db,
            scenario,
            concurrency: settings.stream_concurrency,
            chunks: settings.stream_chunks,
            interval_ms: settings.stream_interval_ms,
            added_ttfb: Added::between(&direct.ttfb, &relay.ttfb),
            added_chunk: Added::between(&direct.chunk, &relay.chunk),
            direct,
            relay,
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "{}: added TTFB p50 {} p99 {}; added per chunk p50 {} p99 {}; streams {}/{}; errors {}/{}",
            self.scenario.label(),
            us(self.added_ttfb.p50_us),
            us(self.added_ttfb.p99_us),
            us(self.added_chunk.p50_us),
            us(self.added_chunk.p99_us),
            self.direct.streams_ok,
            self.relay.streams_ok,
            self.direct.failed(),
            self.relay.failed()
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OpenStreamsPoint {
    pub db: Db,
    pub requested: usize,
    /// `requested`, or fewer when the file-descriptor limits cannot hold that many.
    pub attempted: usize,
    pub reached: usize,
    pub errors: Errors,
    pub relay_rss_before_kib: u64,
    pub relay_rss_kib: u64,
    pub relay_peak_rss_kib: u64,
    pub relay_fd_limit: u64,
    pub harness_fd_limit: u64,
    pub open_seconds: f64,
    /// Relay's CPU use (in cores) while the streams were open and silent.
    pub relay_cpu_while_idle: Option<f64>,
}

impl OpenStreamsPoint {
    pub fn summary(&self) -> String {
        format!(
            "{} open streams requested, {} attempted, {} reached in {:.1} s: relay RSS {} (before {}); errors {}",
            self.requested,
            self.attempted,
            self.reached,
            self.open_seconds,
            mib(self.relay_rss_kib),
            mib(self.relay_rss_before_kib),
            self.errors.total
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub smoke: bool,
    pub rates: Vec<f64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub connections: usize,
    pub stream_concurrency: usize,
    pub stream_chunks: u64,
    pub stream_interval_ms: u64,
    pub open_streams: Vec<usize>,
    pub request_timeout_s: u64,
    pub note: String,
}

/// A target beside its measurement.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRow {
    pub db: Db,
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: MachineInfo,
    pub settings: Settings,
    pub targets: Vec<TargetRow>,
    pub rate_points: Vec<RatePoint>,
    pub max_points: Vec<MaxPoint>,
    pub stream_points: Vec<StreamPoint>,
    pub open_streams: Vec<OpenStreamsPoint>,
    /// Runs that could not complete (Relay did not start, a sanity request failed, …).
    pub fatal: Vec<String>,
    /// /proc/loadavg when the run ended (compare with the machine's figure at the start).
    pub load_average_end: String,
}

pub fn us(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else if v.abs() >= 10.0 {
        format!("{v:.0} µs")
    } else {
        format!("{v:.1} µs")
    }
}

fn opt_us(v: Option<f64>) -> String {
    v.map(us).unwrap_or_else(|| "–".into())
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn mark(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "✅",
        Some(false) => "❌",
        None => "–",
    }
}

fn errors_cell(e: &Errors, warmup: u64) -> String {
    let total = e.total + warmup;
    if total == 0 {
        return "0".into();
    }
    let kinds: Vec<String> = e.by_kind.iter().map(|(k, v)| format!("{k}×{v}")).collect();
    let mut s = format!("**{total}** ({}", kinds.join(", "));
    if warmup > 0 {
        let _ = write!(s, "{}warmup×{warmup}", if kinds.is_empty() { "" } else { ", " });
    }
    s.push(')');
    s
}

impl Report {
    pub fn new(machine: MachineInfo, settings: Settings) -> Self {
        Self {
            machine,
            settings,
            targets: vec![],
            rate_points: vec![],
            max_points: vec![],
            stream_points: vec![],
            open_streams: vec![],
            fatal: vec![],
            load_average_end: String::new(),
        }
    }

    pub fn total_errors(&self) -> u64 {
        let rates: u64 = self.rate_points.iter().map(|p| p.direct.failed() + p.relay.failed()).sum();
        let max: u64 = self.max_points.iter().map(|p| p.direct.failed() + p.relay.failed()).sum();
        let streams: u64 = self.stream_points.iter().map(|p| p.direct.failed() + p.relay.failed()).sum();
        let open: u64 = self.open_streams.iter().map(|p| p.errors.total).sum();
        rates + max + streams + open
    }

    /// Fills the target table from the measurements.
    pub fn evaluate(&mut self) {
        let mut rows = Vec::new();
        let dbs: Vec<Db> = {
            let mut d: Vec<Db> = self.rate_points.iter().map(|p| p.db).collect();
            d.dedup();
            d
        };
        let target_rate =
            self.settings
                .rates
                .iter()
                .copied()
                .fold(0.0_f64, |a, r| if (r - 2000.0).abs() < 1e-9 { r } else { a.max(r) });
        for db in dbs {
            for scenario in [Scenario::Chat, Scenario::Translated, Scenario::Passthrough] {
                let Some(p) = self
                    .rate_points
                    .iter()
                    .find(|p| p.db == db && p.scenario == scenario && (p.rate - target_rate).abs() < 1e-9)
                else {
                    continue;
                };
                let clean = p.direct.failed() + p.relay.failed() == 0;
                let at = format!("{} at {} rps", scenario.label(), p.rate);
                rows.push(TargetRow {
                    db,
                    what: format!("added p50, {at}"),
                    target: "≤ 100 µs".into(),
                    measured: us(p.added.p50_us),
                    met: Some(clean && p.added.p50_us <= 100.0),
                });
                rows.push(TargetRow {
                    db,
                    what: format!("added p99, {at}"),
                    target: "≤ 0.5 ms".into(),
                    measured: us(p.added.p99_us),
                    met: Some(clean && p.added.p99_us <= 500.0),
                });
                if let Some(cpu) = p.relay.relay_cpu_us_per_request {
                    rows.push(TargetRow {
                        db,
                        what: format!("Relay CPU per request, {at}"),
                        target: "≤ 60 µs".into(),
                        measured: match p.relay.db_cpu_us_per_request {
                            Some(db) => format!("{} (+ {} in PostgreSQL)", us(cpu), us(db)),
                            None => us(cpu),
                        },
                        met: Some(clean && cpu <= 60.0),
                    });
                }
            }
            for p in self.stream_points.iter().filter(|p| p.db == db) {
                let clean = p.direct.failed() + p.relay.failed() == 0;
                rows.push(TargetRow {
                    db,
                    what: format!("per-chunk overhead p50, {}", p.scenario.label()),
                    target: "≤ 10 µs".into(),
                    measured: format!("{} (p99 {})", us(p.added_chunk.p50_us), us(p.added_chunk.p99_us)),
                    met: Some(clean && p.added_chunk.p50_us <= 10.0),
                });
            }
            if let Some(p) = self.open_streams.iter().filter(|p| p.db == db).max_by_key(|p| p.requested) {
                let mb = p.relay_rss_kib as f64 * 1024.0 / 1e6;
                let (measured, met) = if p.reached >= p.requested {
                    (format!("{mb:.0} MB at {} streams", p.reached), Some(p.errors.total == 0 && mb <= 300.0))
                } else {
                    // Linear from the smaller measurement to the 10k point, clearly labelled.
                    let base = self
                        .open_streams
                        .iter()
                        .filter(|q| q.db == db && q.reached < p.reached && q.reached > 0)
                        .min_by_key(|q| q.reached);
                    match base {
                        Some(b) if p.reached > b.reached => {
                            let per =
                                (p.relay_rss_kib as f64 - b.relay_rss_kib as f64) / (p.reached - b.reached) as f64;
                            let extra = per * (p.requested - p.reached) as f64;
                            let est = (p.relay_rss_kib as f64 + extra) * 1024.0 / 1e6;
                            (
                                format!(
                                    "{mb:.0} MB at {} streams (fd limit); ≈{est:.0} MB extrapolated to {}",
                                    p.reached, p.requested
                                ),
                                Some(p.errors.total == 0 && est <= 300.0),
                            )
                        }
                        _ => (format!("{mb:.0} MB at {} of {} streams", p.reached, p.requested), None),
                    }
                };
                rows.push(TargetRow {
                    db,
                    what: format!("Relay RSS with {} open streams", p.requested),
                    target: "≤ 300 MB".into(),
                    measured,
                    met,
                });
            }
        }
        self.targets = rows;
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let st = &self.settings;
        let _ = writeln!(s, "# Relay benchmark{}\n", if st.smoke { " (smoke run: numbers mean nothing)" } else { "" });
        let _ = writeln!(
            s,
            "{} · {} cores · {} MiB · Linux {} · {} · commit {}{} · open-files limit {} · load average at start {}\n",
            m.cpu_model,
            m.cores,
            m.memory_mib,
            m.kernel,
            m.date,
            m.git_commit.get(..12).unwrap_or(&m.git_commit),
            if m.git_dirty { " (with uncommitted changes)" } else { "" },
            m.open_files_limit,
            m.load_average
        );
        let _ = writeln!(s, "{}\n", st.note);
        if !self.load_average_end.is_empty() {
            let _ = writeln!(
                s,
                "Load average at the end: {} (anything else running on the machine skews these numbers).\n",
                self.load_average_end
            );
        }
        let _ = writeln!(
            s,
            "Open loop: {} s measured after {} s warmup per run, {} keep-alive HTTP/1.1 connections, latency from each \
             request's scheduled send time (no coordinated omission). Streams: {} at once, {} chunks {} ms apart. \
             Every answer is checked (status 200, body intact, streams complete).\n",
            st.duration_s, st.warmup_s, st.connections, st.stream_concurrency, st.stream_chunks, st.stream_interval_ms
        );
        if !self.fatal.is_empty() {
            let _ = writeln!(s, "**Aborted runs:**\n");
            for f in &self.fatal {
                let _ = writeln!(s, "- {}", f.replace('\n', " "));
            }
            let _ = writeln!(s);
        }
        let errors = self.total_errors();
        if errors > 0 {
            let _ = writeln!(s, "**{errors} requests failed: the figures below are not clean.**\n");
        }

        let _ = writeln!(s, "## Targets\n\n| database | what | target | measured | |\n|---|---|---|---|---|");
        for r in &self.targets {
            let _ = writeln!(s, "| {} | {} | {} | {} | {} |", r.db.label(), r.what, r.target, r.measured, mark(r.met));
        }

        let _ = writeln!(
            s,
            "\n## Added latency at fixed rates (through Relay − direct)\n\n\
             | database | scenario | rate | direct p50 / p99 / p99.9 | through Relay p50 / p99 / p99.9 | added p50 / p99 / p99.9 | achieved rps | Relay CPU / req | PostgreSQL CPU / req | machine busy | errors (direct / relay) |\n\
             |---|---|---|---|---|---|---|---|---|---|---|"
        );
        for p in &self.rate_points {
            let (d, r) = (&p.direct.latency, &p.relay.latency);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} / {} / {} | {} / {} / {} | **{}** / **{}** / {} | {:.0} / {:.0} | {} | {} | {:.0}% | {} / {} |",
                p.db.label(),
                p.scenario.label(),
                p.rate,
                us(d.p50_us),
                us(d.p99_us),
                us(d.p999_us),
                us(r.p50_us),
                us(r.p99_us),
                us(r.p999_us),
                us(p.added.p50_us),
                us(p.added.p99_us),
                us(p.added.p999_us),
                p.direct.achieved_rps,
                p.relay.achieved_rps,
                opt_us(p.relay.relay_cpu_us_per_request),
                opt_us(p.relay.db_cpu_us_per_request),
                p.relay.machine_cpu_busy * 100.0,
                errors_cell(&p.direct.errors, p.direct.warmup_errors),
                errors_cell(&p.relay.errors, p.relay.warmup_errors)
            );
        }

        let _ = writeln!(
            s,
            "\n## Maximum throughput (closed loop, {} connections)\n\n\
             | database | scenario | direct rps | through Relay rps | Relay p50 / p99 | Relay CPU / req | PostgreSQL CPU / req | machine busy | errors (direct / relay) |\n\
             |---|---|---|---|---|---|---|---|---|",
            st.connections
        );
        for p in &self.max_points {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.0} | {} / {} | {} | {} | {:.0}% | {} / {} |",
                p.db.label(),
                p.scenario.label(),
                p.direct.achieved_rps,
                p.relay.achieved_rps,
                us(p.relay.latency.p50_us),
                us(p.relay.latency.p99_us),
                opt_us(p.relay.relay_cpu_us_per_request),
                opt_us(p.relay.db_cpu_us_per_request),
                p.relay.machine_cpu_busy * 100.0,
                errors_cell(&p.direct.errors, p.direct.warmup_errors),
                errors_cell(&p.relay.errors, p.relay.warmup_errors)
            );
        }

        let _ = writeln!(
            s,
            "\n## Streaming\n\nPer chunk: from the mock handing the chunk to its socket to the client reading it.\n\n\
             | database | scenario | TTFB direct p50 / p99 | TTFB Relay p50 / p99 | chunk direct p50 / p99 | chunk Relay p50 / p99 | added per chunk p50 / p99 | streams (direct / relay) | Relay CPU / stream | errors (direct / relay) |\n\
             |---|---|---|---|---|---|---|---|---|---|"
        );
        for p in &self.stream_points {
            let _ = writeln!(
                s,
                "| {} | {} | {} / {} | {} / {} | {} / {} | {} / {} | **{}** / {} | {} / {} | {} | {} / {} |",
                p.db.label(),
                p.scenario.label(),
                us(p.direct.ttfb.p50_us),
                us(p.direct.ttfb.p99_us),
                us(p.relay.ttfb.p50_us),
                us(p.relay.ttfb.p99_us),
                us(p.direct.chunk.p50_us),
                us(p.direct.chunk.p99_us),
                us(p.relay.chunk.p50_us),
                us(p.relay.chunk.p99_us),
                us(p.added_chunk.p50_us),
                us(p.added_chunk.p99_us),
                p.direct.streams_ok,
                p.relay.streams_ok,
                opt_us(p.relay.relay_cpu_us_per_stream),
                errors_cell(&p.direct.errors, p.direct.warmup_errors),
                errors_cell(&p.relay.errors, p.relay.warmup_errors)
            );
        }

        let _ = writeln!(
            s,
            "\n## Open streams (Relay's memory)\n\n\
             | database | requested | reached | Relay RSS before | Relay RSS with streams open | per stream | peak RSS | Relay CPU while they idle | fd limit (Relay / harness) | errors |\n\
             |---|---|---|---|---|---|---|---|---|---|"
        );
        for p in &self.open_streams {
            let per = if p.reached > 0 {
                format!(
                    "{:.1} KiB",
                    (p.relay_rss_kib as f64 - p.relay_rss_before_kib as f64).max(0.0) / p.reached as f64
                )
            } else {
                "–".into()
            };
            let _ = writeln!(
                s,
                "| {} | {} | {}{} | {} | {} | {} | {} | {} | {} / {} | {} |",
                p.db.label(),
                p.requested,
                p.reached,
                if p.attempted < p.requested { " (fd-limited)" } else { "" },
                mib(p.relay_rss_before_kib),
                mib(p.relay_rss_kib),
                per,
                mib(p.relay_peak_rss_kib),
                p.relay_cpu_while_idle.map(|c| format!("{:.0}% of a core", c * 100.0)).unwrap_or_else(|| "–".into()),
                p.relay_fd_limit,
                p.harness_fd_limit,
                errors_cell(&p.errors, 0)
            );
        }
        if self.open_streams.iter().any(|p| p.attempted < p.requested) {
            let _ = writeln!(
                s,
                "\nRelay holds two sockets per stream (client and provider), and so does the harness (client and mock): \
                 with the open-files limit above, fewer streams than requested fit. Raise the hard limit \
                 (`ulimit -Hn`, as root) to measure the full number."
            );
        }
        let _ = writeln!(s, "\n![added latency vs rate](latency.svg)");
        s
    }
}

pub const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A chart panel: its axis label, the value it plots, where it is drawn.
type Panel<'a> = (&'static str, fn(&Added) -> f64, DrawingArea<SVGBackend<'a>, plotters::coord::Shift>);

/// Added p50 and p99 against the request rate, one line per database and scenario.
pub fn chart(path: &Path, report: &Report) -> anyhow::Result<()> {
    let mut series: Vec<(String, Vec<(f64, Added)>)> = Vec::new();
    for p in &report.rate_points {
        let name = format!("{}: {}", p.db.label(), p.scenario.label());
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, pts)) => pts.push((p.rate, p.added)),
            None => series.push((name, vec![(p.rate, p.added)])),
        }
    }
    let root = SVGBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let title = format!(
        "Latency Relay adds (through Relay − direct), {} · {} cores shared by Relay, mock and load generator",
        report.machine.cpu_model, report.machine.cores
    );
    let root = root.titled(&title, ("sans-serif", 16)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(600);
    let panels: [Panel<'_>; 2] =
        [("added p50 (log scale)", |a| a.p50_us, left), ("added p99 (log scale)", |a| a.p99_us, right)];
    let x_max = report.rate_points.iter().map(|p| p.rate).fold(1.0_f64, f64::max) * 1.05;
    for (label, pick, area) in panels {
        // Log scale: below capacity Relay adds microseconds, past it queueing adds seconds.
        // Values under 1 µs (or negative: noise) are drawn at 1 µs.
        let values: Vec<f64> = series.iter().flat_map(|(_, pts)| pts.iter().map(|(_, a)| pick(a))).collect();
        let y_max = values.iter().copied().fold(10.0_f64, f64::max) * 2.0;
        let mut chart = ChartBuilder::on(&area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, (1.0..y_max).log_scale())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("request rate (requests/s)")
            .y_desc(label)
            .y_label_formatter(&|v| us(*v))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let line: Vec<(f64, f64)> = pts.iter().map(|(r, a)| (*r, pick(a).max(1.0))).collect();
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
