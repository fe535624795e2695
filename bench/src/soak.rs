//! `relay-bench soak`: Relay (one node or several on one database) under a steady load for a long
//! time, sampled every few seconds; optionally with a PostgreSQL restart in the middle.
//!
//! The load reuses the benchmark's pieces: the mock provider, Relay's setup, the open-loop
//! generator (unified, translated and passthrough calls at a fixed rate, split evenly), closed-loop
//! streams and key connects. It runs in windows of `--sample` seconds; after each window the
//! harness reads every node's CPU time, memory and open files from /proc. What it found goes to
//! `soak_report`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;

use crate::client::{Conn, Failure, Target};
use crate::load::{self, Errors};
use crate::relay::{self, Db, RelayUnderTest};
use crate::report::Scenario;
use crate::soak_report::{Outage, Sample, SoakReport, SoakSettings};
use crate::sys;

/// What the load is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// `/v1/chat/completions` to the OpenAI-format mock.
    Chat,
    /// `/v1/chat/completions` translated to Anthropic's Messages API.
    Translated,
    /// Passthrough `/relay/openai/v1/chat/completions`.
    Passthrough,
    /// Streams of all three kinds, back to back (`--streams` at a time per kind and node).
    Streams,
    /// Registration token + `POST /v1/connect` (`--connects-per-s`, users taken in turn).
    Connects,
}

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// The database Relay runs on.
    #[arg(long, value_enum, default_value = "sqlite")]
    db: Db,
    /// Relay nodes on the one database, the load split evenly between them (2 or more: PostgreSQL).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Non-streaming calls per second in all (open loop), split evenly over the kinds and nodes.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// How long to run, e.g. 90s, 30m, 2h.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    duration: Duration,
    /// Run for about this many non-streaming calls instead: the duration becomes calls / rate.
    #[arg(long)]
    calls: Option<u64>,
    /// Seconds between two samples.
    #[arg(long, default_value_t = 5.0)]
    sample: f64,
    /// The start left out of the flatness verdict [default: a fifth of the run, at most 1m].
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// What the load is made of.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "chat")]
    mix: Vec<Kind>,
    /// Keep-alive connections of the open-loop generator, in all.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Streams open at a time, per stream kind and node.
    #[arg(long, default_value_t = 2)]
    streams: usize,
    /// Key connects per second, in all.
    #[arg(long, default_value_t = 1.0)]
    connects_per_s: f64,
    /// Restart PostgreSQL (pg_ctlcluster stop, then start) in the middle of the run.
    #[arg(long)]
    pg_restart: bool,
    /// Restart PostgreSQL this far into the run instead, e.g. 10m.
    #[arg(long, value_parser = parse_duration)]
    pg_restart_at: Option<Duration>,
    /// How long PostgreSQL stays stopped.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pg_down: Duration,
    /// After the restart, how long answers of 503 `store_unavailable` still count as explained.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    recovery: Duration,
    /// Percent by which the last minute may differ from the first and still be flat.
    #[arg(long, default_value_t = 10.0)]
    tolerance: f64,
    /// Also fail when RSS or open files are not flat (unexplained errors always fail).
    #[arg(long)]
    require_flat: bool,
    /// Seconds to wait, without load, after the run before the last memory reading.
    #[arg(long, default_value_t = 10.0)]
    idle: f64,
    /// File names in the output directory: NAME.csv, NAME.svg, NAME.md [default: soak-DB].
    #[arg(long)]
    name: Option<String>,
}

/// `90s`, `30m`, `2h`, `500ms`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number.trim().parse().map_err(|_| format!("not a duration: {s:?} (say 90s, 30m or 2h)"))?;
    let seconds = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit in {s:?} (ms, s, m or h)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("not a duration: {s:?}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The port of `postgres://user@host:port/db` (5432 when the URL names none).
fn port_of(url: &str) -> u16 {
    let host = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split(['/', '?']).next().unwrap_or(host);
    host.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(5432)
}

/// One part of the load, on one node, run window after window on the same connections.
struct Lane {
    node: usize,
    target: Arc<Target>,
    /// Open loop at this rate, or streams back to back when `None`.
    rate: Option<f64>,
    conns: Vec<Conn>,
}

/// What one lane (or the connects) did in one window.
struct LaneResult {
    node: usize,
    ok: u64,
    errors: Errors,
    latency: Option<Histogram<u64>>,
}

impl Lane {
    async fn run(mut self, window: Duration) -> (Self, LaneResult) {
        let result = match self.rate {
            Some(rate) => {
                let o = load::open_loop(&mut self.conns, &self.target, rate, window).await;
                LaneResult { node: self.node, ok: o.ok, errors: o.errors, latency: Some(o.latency) }
            }
            None => {
                let o = load::streams(&mut self.conns, &self.target, window).await;
                LaneResult { node: self.node, ok: o.ok, errors: o.errors, latency: None }
            }
        };
        (self, result)
    }
}

/// Where the key connects go: every node in turn, for users `soak_connect_0..CONNECT_USERS`.
struct Connects {
    nodes: Vec<std::net::SocketAddr>,
    api_key: String,
    openai_key: String,
    per_s: f64,
    done: u64,
}

/// Users the connects cycle through: each connect replaces that user's key, so the database
/// holds a fixed number of keys however long the run.
const CONNECT_USERS: u64 = 50;

impl Connects {
    async fn run(&mut self, window: Duration) -> Vec<LaneResult> {
        let mut results: Vec<LaneResult> = (0..self.nodes.len())
            .map(|node| LaneResult { node, ok: 0, errors: Errors::default(), latency: None })
            .collect();
        let count = (window.as_secs_f64() * self.per_s).round() as u64;
        let started = Instant::now();
        for i in 0..count {
            tokio::time::sleep_until((started + window.mul_f64(i as f64 / count as f64)).into()).await;
            let node = (self.done % self.nodes.len() as u64) as usize;
            let user = format!("soak_connect_{}", self.done % CONNECT_USERS);
            self.done += 1;
            let call = relay::connect_key(self.nodes[node], &self.api_key, &user, "openai", &self.openai_key);
            let outcome = match tokio::time::timeout(load::REQUEST_TIMEOUT, call).await {
                Ok(r) => r,
                Err(_) => Err(Failure::Timeout),
            };
            match outcome {
                Ok(()) => results[node].ok += 1,
                Err(f) => results[node].errors.add(&f),
            }
        }
        results
    }
}

/// Starts PostgreSQL again when dropped while it is stopped (a failed step, Ctrl-C).
struct StartOnDrop {
    version: String,
    armed: bool,
}

impl Drop for StartOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::process::Command::new("pg_ctlcluster")
                .args(["--skip-systemctl-redirect", &self.version, "main", "start"])
                .status();
        }
    }
}

/// The newest cluster under /etc/postgresql (the one on 127.0.0.1:5432 on a Debian machine).
fn cluster_version() -> anyhow::Result<String> {
    std::fs::read_dir("/etc/postgresql")
        .context("read /etc/postgresql (restarting PostgreSQL needs a Debian cluster here)")?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
        .context("no PostgreSQL cluster under /etc/postgresql")
}

async fn pg_ctlcluster(version: &str, action: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main", action])
        .status()
        .await
        .context("run pg_ctlcluster")?;
    if !status.success() {
        bail!("pg_ctlcluster {action}: {status}");
    }
    Ok(())
}

/// Stops PostgreSQL at `at` into the run and starts it `down` later; when it was stopped and when
/// it answered again, in seconds since `start`. It is started again even if this fails or is dropped.
async fn restart_postgres(at: Duration, down: Duration, start: Instant, pg_url: &str) -> anyhow::Result<Outage> {
    let version = cluster_version()?;
    tokio::time::sleep_until((start + at).into()).await;
    say!("soak: stopping PostgreSQL {version} for {:.0?}", down);
    let stopped_s = start.elapsed().as_secs_f64();
    let mut guard = StartOnDrop { version: version.clone(), armed: true };
    pg_ctlcluster(&version, "stop").await?;
    tokio::time::sleep(down).await;
    pg_ctlcluster(&version, "start").await?;
    guard.armed = false;
    while relay::psql(pg_url, "SELECT 1").is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started_s = start.elapsed().as_secs_f64();
    say!("soak: PostgreSQL back after {:.1} s", started_s - stopped_s);
    Ok(Outage { stopped_s, started_s })
}

/// Runs the soak; `Ok(false)` when an unexplained error happened (or, with `--require-flat`,
/// memory or open files grew).
pub async fn run(args: SoakArgs, relay_bin: &Path, out_dir: &Path, pg_url: &str, root: &Path) -> anyhow::Result<bool> {
    if args.nodes == 0 || args.sample <= 0.0 || args.rate <= 0.0 {
        bail!("--nodes, --sample and --rate must be above zero");
    }
    if args.db == Db::Sqlite && (args.nodes > 1 || args.pg_restart || args.pg_restart_at.is_some()) {
        bail!("several nodes and a PostgreSQL restart need --db postgres");
    }
    let unary: Vec<Scenario> = args
        .mix
        .iter()
        .filter_map(|k| match k {
            Kind::Chat => Some(Scenario::Chat),
            Kind::Translated => Some(Scenario::Translated),
            Kind::Passthrough => Some(Scenario::Passthrough),
            Kind::Streams | Kind::Connects => None,
        })
        .collect();
    let streams = args.mix.contains(&Kind::Streams);
    let duration = match args.calls {
        Some(calls) if !unary.is_empty() => Duration::from_secs_f64(calls as f64 / args.rate),
        _ => args.duration,
    };
    let restart_at = args.pg_restart_at.or(args.pg_restart.then_some(duration / 2));
    let warmup = args.warmup.unwrap_or_else(|| (duration / 5).min(Duration::from_secs(60)));
    let name = args.name.clone().unwrap_or_else(|| format!("soak-{}", args.db.label().to_lowercase()));

    let mock = crate::mock::Mock::start()?;
    say!("soak: starting {} relay node(s) on {}", args.nodes, args.db.label());
    let mut relay = RelayUnderTest::start(relay_bin, args.db, pg_url, &mock.url()).await?;
    for _ in 1..args.nodes {
        relay.add_node().await?;
    }
    let nodes: Vec<(std::net::SocketAddr, u32)> =
        std::iter::once((relay.addr, relay.pid)).chain(relay.others.iter().map(|n| (n.addr, n.pid))).collect();
    let chunks = 20;
    mock.plan.set(chunks, Duration::from_millis(5));
    let pairs = crate::pairs(&mock, &relay, chunks)?;

    let mut lanes = Vec::new();
    let per_lane_rate = args.rate / (unary.len() * nodes.len()).max(1) as f64;
    let per_lane_conns = (args.connections / (unary.len() * nodes.len()).max(1)).max(2);
    for (node, (addr, _)) in nodes.iter().enumerate() {
        for p in &pairs {
            let target = Arc::new(Target { addr: *addr, ..p.relay.as_ref().clone() });
            let (rate, conns) = if unary.contains(&p.scenario) {
                (Some(per_lane_rate), per_lane_conns)
            } else if streams && p.scenario.is_stream() {
                (None, args.streams)
            } else {
                continue;
            };
            // Checked once before the run: a setup mistake is not a soak finding.
            let mut conn = Conn::new(*addr);
            let checked = match rate {
                Some(_) => conn.call(&target).await,
                None => conn.stream(&target, &mut Vec::new()).await.map(|_| ()),
            };
            if let Err(f) = checked {
                bail!("{} on node {}: {}\nrelay log:\n{}", p.scenario.label(), node + 1, f.detail(), relay.log());
            }
            let conns = load::connections(&target, conns);
            lanes.push(Lane { node, target, rate, conns });
        }
    }
    let mut connects = args.mix.contains(&Kind::Connects).then(|| Connects {
        nodes: nodes.iter().map(|(a, _)| *a).collect(),
        api_key: relay.api_key.clone(),
        openai_key: relay.openai_key.clone(),
        per_s: args.connects_per_s,
        done: 0,
    });

    let settings = SoakSettings {
        db: args.db,
        nodes: nodes.len(),
        rate: args.rate,
        duration_s: duration.as_secs_f64(),
        sample_s: args.sample,
        warmup_s: warmup.as_secs_f64(),
        mix: args.mix.iter().map(|k| format!("{k:?}").to_lowercase()).collect::<Vec<_>>().join(","),
        connections: args.connections,
        streams_per_kind_and_node: if streams { args.streams } else { 0 },
        connects_per_s: if connects.is_some() { args.connects_per_s } else { 0.0 },
        pg_restart_at_s: restart_at.map(|d| d.as_secs_f64()),
        pg_down_s: args.pg_down.as_secs_f64(),
        recovery_s: args.recovery.as_secs_f64(),
        tolerance_pct: args.tolerance,
        idle_s: args.idle,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    say!(
        "soak: {} for {:.0} s ({:.0} calls/s, mix {}), a sample every {} s; results as {}/{name}.*",
        args.db.label(),
        duration.as_secs_f64(),
        args.rate,
        settings.mix,
        args.sample,
        out_dir.display()
    );

    let ticks = sys::clock_ticks_per_second();
    let machine = sys::machine_info(root, relay_bin);
    // Relay's connections to PostgreSQL are counted apart from its other open files.
    let pg_port = match args.db {
        Db::Postgres => port_of(pg_url),
        Db::Sqlite => 0,
    };
    let start = Instant::now();
    let load = drive(&mut lanes, connects.as_mut(), &nodes, duration, args.sample, (ticks, pg_port), start);
    let (samples, outage) = match restart_at {
        Some(at) => {
            let (samples, outage) = tokio::join!(load, restart_postgres(at, args.pg_down, start, pg_url));
            (samples, Some(outage))
        }
        None => (load.await, None),
    };
    let outage = match outage {
        Some(Ok(o)) => Some(o),
        Some(Err(e)) => bail!("the PostgreSQL restart failed: {e:#}"),
        None => None,
    };

    // Memory a while after the load stopped: what Relay gives back.
    drop(lanes);
    tokio::time::sleep(Duration::from_secs_f64(args.idle)).await;
    let idle: Vec<(u64, u64, u64)> = nodes
        .iter()
        .map(|(_, pid)| {
            let fds = sys::open_fds(*pid, pg_port).map(|(all, _)| all).unwrap_or(0);
            (sys::rss_kib(*pid).unwrap_or(0), sys::anon_kib(*pid).unwrap_or(0), fds)
        })
        .collect();
    let log_tail = relay.log();
    relay.stop();
    drop(mock);

    let report = SoakReport::new(machine, settings, samples, outage, idle);
    let csv = out_dir.join(format!("{name}.csv"));
    std::fs::write(&csv, report.csv()).with_context(|| format!("write {}", csv.display()))?;
    if let Err(e) = crate::soak_report::chart(&out_dir.join(format!("{name}.svg")), &report) {
        say!("soak: could not draw the chart: {e:#}");
    }
    let md = report.markdown(&format!("{name}.svg"));
    std::fs::write(out_dir.join(format!("{name}.md")), &md)?;
    let verdict = report.verdict();
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{md}")?;
        writeln!(stdout, "Results in {}", PathBuf::from(out_dir).join(&name).display())?;
    }
    if verdict.unexplained_errors > 0 {
        say!("soak: FAILED: {} unexplained errors; relay log tail:\n{log_tail}", verdict.unexplained_errors);
        return Ok(false);
    }
    if args.require_flat && !verdict.memory_and_files_flat {
        say!("soak: FAILED: RSS or open files are not flat within {}%", args.tolerance);
        return Ok(false);
    }
    Ok(true)
}

/// The load, window after window, and a sample of every node after each window.
async fn drive(
    lanes: &mut Vec<Lane>,
    mut connects: Option<&mut Connects>,
    nodes: &[(std::net::SocketAddr, u32)],
    duration: Duration,
    sample: f64,
    (ticks, pg_port): (u64, u16),
    start: Instant,
) -> Vec<Sample> {
    let probe = |pid: u32| sys::Probe { relay_pid: pid, db_pids: None };
    let mut cpu: Vec<sys::CpuSample> = nodes.iter().map(|(_, pid)| sys::CpuSample::take(Some(&probe(*pid)))).collect();
    let mut samples = Vec::new();
    let mut window_start = start;
    loop {
        let remaining = duration.saturating_sub(start.elapsed());
        if remaining < Duration::from_millis(200) {
            break;
        }
        let window = Duration::from_secs_f64(sample).min(remaining);
        let handles: Vec<_> = lanes.drain(..).map(|lane| tokio::spawn(lane.run(window))).collect();
        let mut results = match connects.as_deref_mut() {
            Some(c) => c.run(window).await,
            None => Vec::new(),
        };
        for h in handles {
            match h.await {
                Ok((lane, result)) => {
                    lanes.push(lane);
                    results.push(result);
                }
                Err(e) => say!("soak: a load task failed: {e}"),
            }
        }
        let now = Instant::now();
        let wall = now.duration_since(window_start).as_secs_f64();
        for (node, (_, pid)) in nodes.iter().enumerate() {
            let after = sys::CpuSample::take(Some(&probe(*pid)));
            let delta = after.since(&cpu[node], ticks);
            cpu[node] = after;
            let mut errors = Errors::default();
            let mut latency = load::histogram();
            let mut calls = 0;
            for r in results.iter_mut().filter(|r| r.node == node) {
                calls += r.ok;
                errors.merge(std::mem::take(&mut r.errors));
                if let Some(h) = &r.latency {
                    let _ = latency.add(h);
                }
            }
            let (fds, db_conns) = sys::open_fds(*pid, pg_port).unwrap_or((0, 0));
            let s = Sample {
                t_s: now.duration_since(start).as_secs_f64(),
                window_s: wall,
                node: node + 1,
                calls,
                errors,
                cpu_s: delta.relay_s,
                rss_kib: sys::rss_kib(*pid).unwrap_or(0),
                anon_kib: sys::anon_kib(*pid).unwrap_or(0),
                fds,
                db_conns,
                p50_us: (!latency.is_empty()).then(|| latency.value_at_quantile(0.5) as f64 / 1000.0),
                p99_us: (!latency.is_empty()).then(|| latency.value_at_quantile(0.99) as f64 / 1000.0),
                machine_busy: delta.machine_busy,
            };
            say!("{}", s.summary());
            samples.push(s);
        }
        window_start = now;
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("12"), Ok(Duration::from_secs(12)));
        assert!(parse_duration("ten minutes").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn the_database_port_comes_from_the_url() {
        assert_eq!(port_of("postgres://postgres@127.0.0.1:5433/postgres"), 5433);
        assert_eq!(port_of("postgres://u:secret@db/postgres?sslmode=disable"), 5432);
        assert_eq!(port_of("postgres://127.0.0.1:6000"), 6000);
    }
}
