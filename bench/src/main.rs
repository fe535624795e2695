//! `relay-bench`: measures what Relay adds on top of a provider. A zero-delay mock provider and
//! this load generator run in one process; Relay (a release build, as a child process) runs on a
//! fresh PostgreSQL database and on SQLite. Every scenario is measured direct (client → mock) and
//! through Relay with the same client and settings, and the difference is what Relay adds.

macro_rules! say {
    ($($t:tt)*) => { $crate::say(format_args!($($t)*)) };
}

mod client;
mod load;
mod mock;
mod relay;
mod report;
mod soak;
mod soak_report;
mod sys;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde_json::json;

use crate::client::{Conn, Expect, Target};
use crate::load::RunOutcome;
use crate::relay::{Db, RelayUnderTest};
use crate::report::{
    MaxPoint, OpenStreamsPoint, PathRun, RatePoint, Report, Scenario, Settings, StreamPoint, StreamRun,
};

#[derive(Debug, Parser)]
#[command(name = "relay-bench", about = "Benchmark Relay against a zero-delay mock provider, direct vs through Relay")]
struct Args {
    /// A few seconds of everything (tiny rates, 50 open streams), results in a temp directory;
    /// exits non-zero if any request failed. Overrides the load settings below.
    #[arg(long)]
    smoke: bool,
    #[command(subcommand)]
    command: Option<Command>,
    /// The relay binary [default: $CARGO_TARGET_DIR or target/, then release/relay].
    #[arg(long, global = true)]
    relay_bin: Option<PathBuf>,
    /// Where the results go [default: bench/results; smoke: a temp dir].
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Databases to run Relay on.
    #[arg(long, value_delimiter = ',', default_value = "postgres,sqlite")]
    db: Vec<Db>,
    /// An admin connection to PostgreSQL; the harness creates and drops its database there.
    #[arg(long, global = true, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg_url: String,
    /// Open-loop request rates (requests per second).
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000")]
    rates: Vec<f64>,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of the same load before each measured run, not counted.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Keep-alive connections of the load generator (open and closed loop).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Streams running at once in the streaming runs.
    #[arg(long, default_value_t = 16)]
    stream_concurrency: usize,
    /// Content chunks per stream.
    #[arg(long, default_value_t = 20)]
    stream_chunks: u64,
    /// Milliseconds between a stream's chunks.
    #[arg(long, default_value_t = 5)]
    stream_interval_ms: u64,
    /// Numbers of concurrently open streams to measure Relay's memory with.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    open_streams: Vec<usize>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Hours of steady load: memory, open files, CPU per call, throughput and errors sampled
    /// every few seconds (NAME.csv, NAME.svg, NAME.md in the output directory).
    #[command(args_override_self = true)]
    Soak(soak::SoakArgs),
}

fn say(msg: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(msg);
    let _ = err.write_all(b"\n");
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.smoke {
        args.rates = vec![50.0];
        args.duration = 0.5;
        args.warmup = 0.2;
        args.connections = 4;
        args.stream_concurrency = 4;
        args.stream_chunks = 5;
        args.stream_interval_ms = 2;
        args.open_streams = vec![50];
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            say!("relay-bench: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On Ctrl-C or SIGTERM the run is dropped, and with it Relay (stopped) and its database.
    let interrupted = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(args) => r,
            _ = interrupted => Err(anyhow::anyhow!("interrupted; Relay stopped and its database dropped")),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            say!("relay-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs everything; `Ok(false)` when some request failed (the results say which).
async fn run(mut args: Args) -> anyhow::Result<bool> {
    let root = repo_root();
    let relay_bin = match &args.relay_bin {
        Some(p) => p.clone(),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("release/relay"),
    };
    let relay_bin = std::fs::canonicalize(&relay_bin)
        .with_context(|| format!("no relay binary at {} (build it, or pass --relay-bin)", relay_bin.display()))?;
    let out_dir = match &args.out {
        Some(p) => p.clone(),
        None if args.smoke => std::env::temp_dir().join(format!("relay-bench-smoke-{}", relay::random_token(8))),
        None => root.join("bench/results"),
    };
    std::fs::create_dir_all(&out_dir).with_context(|| format!("create {}", out_dir.display()))?;
    if let Some(Command::Soak(soak)) = args.command.take() {
        return soak::run(soak, &relay_bin, &out_dir, &args.pg_url, &root).await;
    }

    let machine = sys::machine_info(&root, &relay_bin);
    let ticks = sys::clock_ticks_per_second();
    let settings = Settings {
        smoke: args.smoke,
        rates: args.rates.clone(),
        duration_s: args.duration,
        warmup_s: args.warmup,
        connections: args.connections,
        stream_concurrency: args.stream_concurrency,
        stream_chunks: args.stream_chunks,
        stream_interval_ms: args.stream_interval_ms,
        open_streams: args.open_streams.clone(),
        request_timeout_s: load::REQUEST_TIMEOUT.as_secs(),
        note: format!(
            "Relay, the mock provider (1 thread) and the load generator (1 thread, plus a scheduler thread) share this \
             machine's {} cores; Relay runs its default workers. The mock answers at once, so 'direct' is the harness's \
             own floor and 'added' = through Relay − direct, percentile by percentile.",
            machine.cores
        ),
    };
    say!("relay-bench: {} ({} cores), relay {}", machine.cpu_model, machine.cores, relay_bin.display());

    let mut report = Report::new(machine, settings);
    for db in args.db.clone() {
        if let Err(e) = run_db(&args, db, &relay_bin, ticks, &mut report).await {
            say!("relay-bench: {} run failed: {e:#}", db.label());
            report.fatal.push(format!("{}: {e:#}", db.label()));
        }
    }
    report.load_average_end = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    report.evaluate();
    let md = report.markdown();
    std::fs::write(out_dir.join("latest.md"), &md)?;
    std::fs::write(out_dir.join("latest.json"), serde_json::to_string_pretty(&report)?)?;
    if let Err(e) = report::chart(&out_dir.join("latency.svg"), &report) {
        say!("relay-bench: could not draw the chart: {e:#}");
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{md}")?;
    writeln!(stdout, "Results in {}", out_dir.display())?;
    let ok = report.fatal.is_empty() && report.total_errors() == 0;
    if !ok {
        say!("relay-bench: FAILED: {} failed requests, {} aborted runs", report.total_errors(), report.fatal.len());
    }
    Ok(ok)
}

/// The request of one scenario, on one path.
struct Pair {
    scenario: Scenario,
    direct: Arc<Target>,
    relay: Arc<Target>,
}

fn pairs(mock: &mock::Mock, r: &RelayUnderTest, chunks: u64) -> anyhow::Result<Vec<Pair>> {
    let openai_body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello to the benchmark."}], "max_tokens": 32});
    let claude_openai_body = json!({"model": "claude-3-5-haiku-latest", "messages": [{"role": "user", "content": "Say hello to the benchmark."}], "max_tokens": 32});
    let anthropic_body = json!({"model": "claude-3-5-haiku-latest", "max_tokens": 32, "messages": [{"role": "user", "content": "Say hello to the benchmark."}]});
    let streaming = |mut v: serde_json::Value| {
        v["stream"] = json!(true);
        v
    };
    let bearer = format!("Bearer {}", r.api_key);
    let direct_openai = |body: &serde_json::Value, expect| -> anyhow::Result<Target> {
        Target::post_json(mock.addr, "/v1/chat/completions", body, expect)
            .header("authorization", &format!("Bearer {}", r.openai_key))
    };
    let direct_anthropic = |body: &serde_json::Value, expect| -> anyhow::Result<Target> {
        Target::post_json(mock.addr, "/v1/messages", body, expect)
            .header("x-api-key", &r.anthropic_key)?
            .header("anthropic-version", "2023-06-01")
    };
    let via_relay = |path: &str, body: &serde_json::Value, expect| -> anyhow::Result<Target> {
        Target::post_json(r.addr, path, body, expect).header("authorization", &bearer)?.header("x-relay-user", &r.user)
    };
    let os = Expect::OpenAiStream { chunks };
    let an = Expect::AnthropicStream { chunks };
    let list = vec![
        Pair {
            scenario: Scenario::Chat,
            direct: Arc::new(direct_openai(&openai_body, Expect::OpenAiChat)?),
            relay: Arc::new(via_relay("/v1/chat/completions", &openai_body, Expect::OpenAiChat)?),
        },
        Pair {
            scenario: Scenario::Translated,
            direct: Arc::new(direct_anthropic(&anthropic_body, Expect::AnthropicMessage)?),
            relay: Arc::new(via_relay("/v1/chat/completions", &claude_openai_body, Expect::OpenAiChat)?),
        },
        Pair {
            scenario: Scenario::Passthrough,
            direct: Arc::new(direct_openai(&openai_body, Expect::OpenAiChat)?),
            relay: Arc::new(via_relay("/relay/openai/v1/chat/completions", &openai_body, Expect::OpenAiChat)?),
        },
        Pair {
            scenario: Scenario::ChatStream,
            direct: Arc::new(direct_openai(&streaming(openai_body.clone()), os)?),
            relay: Arc::new(via_relay("/v1/chat/completions", &streaming(openai_body.clone()), os)?),
        },
        Pair {
            scenario: Scenario::TranslatedStream,
            direct: Arc::new(direct_anthropic(&streaming(anthropic_body.clone()), an)?),
            relay: Arc::new(via_relay("/v1/chat/completions", &streaming(claude_openai_body.clone()), os)?),
        },
        Pair {
            scenario: Scenario::PassthroughStream,
            direct: Arc::new(direct_openai(&streaming(openai_body.clone()), os)?),
            relay: Arc::new(via_relay("/relay/openai/v1/chat/completions", &streaming(openai_body), os)?),
        },
    ];
    Ok(list)
}

async fn run_db(args: &Args, db: Db, relay_bin: &Path, ticks: u64, report: &mut Report) -> anyhow::Result<()> {
    let mock = mock::Mock::start()?;
    let interval = Duration::from_millis(args.stream_interval_ms);
    mock.plan.set(args.stream_chunks, interval);
    say!("[{}] starting relay", db.label());
    let mut relay = RelayUnderTest::start(relay_bin, db, &args.pg_url, &mock.url()).await?;
    let pairs = pairs(&mock, &relay, args.stream_chunks)?;

    // Every request checked once on both paths before anything is measured.
    for p in &pairs {
        for (path, target) in [("direct", &p.direct), ("relay", &p.relay)] {
            let mut conn = Conn::new(target.addr);
            let result = if p.scenario.is_stream() {
                conn.stream(target, &mut Vec::new()).await.map(|_| ())
            } else {
                conn.call(target).await
            };
            if let Err(f) = result {
                anyhow::bail!("{} {path}: {}\nrelay log:\n{}", p.scenario.label(), f.detail(), relay.log());
            }
        }
    }

    let duration = Duration::from_secs_f64(args.duration);
    let warmup = Duration::from_secs_f64(args.warmup);
    let rated: Vec<&Pair> = pairs.iter().filter(|p| !p.scenario.is_stream()).collect();
    let streamed: Vec<&Pair> = pairs.iter().filter(|p| p.scenario.is_stream()).collect();

    for &rate in &args.rates {
        for p in &rated {
            let direct = measured_open_loop(&p.direct, args.connections, rate, warmup, duration, None, ticks).await;
            let through =
                measured_open_loop(&p.relay, args.connections, rate, warmup, duration, Some(&relay.probe()), ticks)
                    .await;
            let point = RatePoint::new(db, p.scenario, rate, direct, through);
            say!("[{}] {}", db.label(), point.summary());
            report.rate_points.push(point);
        }
    }

    for p in &rated {
        let direct = measured_closed_loop(&p.direct, args.connections, warmup, duration, None, ticks).await;
        let through =
            measured_closed_loop(&p.relay, args.connections, warmup, duration, Some(&relay.probe()), ticks).await;
        let point = MaxPoint { db, scenario: p.scenario, direct, relay: through };
        say!("[{}] {}", db.label(), point.summary());
        report.max_points.push(point);
    }

    for p in &streamed {
        let direct = measured_streams(&p.direct, args.stream_concurrency, warmup, duration, None, ticks).await;
        let through =
            measured_streams(&p.relay, args.stream_concurrency, warmup, duration, Some(&relay.probe()), ticks).await;
        let point = StreamPoint::new(db, p.scenario, &report.settings, direct, through);
        say!("[{}] {}", db.label(), point.summary());
        report.stream_points.push(point);
    }

    // Open streams: the mock sends one chunk, then stays silent for an hour.
    mock.plan.set(2, Duration::from_secs(3600));
    let held_target = Arc::new(
        pairs
            .iter()
            .find(|p| p.scenario == Scenario::ChatStream)
            .context("stream pair")?
            .relay
            .as_ref()
            .clone()
            .with_chunks(2),
    );
    let relay_limit = sys::nofile_limit(&relay.pid.to_string()).unwrap_or(0);
    let own_limit = sys::nofile_limit("self").unwrap_or(0);
    // Relay holds two descriptors per stream (client and upstream socket); so does this process
    // (the client's socket and the mock's). Leave room for everything else.
    let fd_cap = (relay_limit.min(own_limit).saturating_sub(300) / 2) as usize;
    for &wanted in &args.open_streams {
        let attempt = wanted.min(fd_cap);
        tokio::time::sleep(Duration::from_millis(if args.smoke { 100 } else { 500 })).await;
        let before = sys::rss_kib(relay.pid).unwrap_or(0);
        let started = std::time::Instant::now();
        let (held, errors) = load::open_streams(&held_target, attempt, 200).await;
        let open_time = started.elapsed();
        // While the streams sit idle Relay still writes a keep-alive to each every 250 ms.
        let settle = Duration::from_millis(if args.smoke { 300 } else { 3000 });
        let idle_before = sys::CpuSample::take(Some(&relay.probe()));
        tokio::time::sleep(settle).await;
        let idle = sys::CpuSample::take(Some(&relay.probe())).since(&idle_before, ticks);
        let rss = sys::rss_kib(relay.pid).unwrap_or(0);
        let peak = sys::peak_rss_kib(relay.pid).unwrap_or(0);
        let point = OpenStreamsPoint {
            db,
            requested: wanted,
            attempted: attempt,
            reached: held.len(),
            errors,
            relay_rss_before_kib: before,
            relay_rss_kib: rss,
            relay_peak_rss_kib: peak,
            relay_fd_limit: relay_limit,
            harness_fd_limit: own_limit,
            open_seconds: open_time.as_secs_f64(),
            relay_cpu_while_idle: idle.relay_s.map(|c| c / settle.as_secs_f64()),
        };
        say!("[{}] {}", db.label(), point.summary());
        report.open_streams.push(point);
        drop(held);
        // Relay notices departed clients on its next heartbeat (250 ms) and closes upstreams.
        tokio::time::sleep(Duration::from_millis(if args.smoke { 600 } else { 2000 })).await;
    }
    mock.plan.set(args.stream_chunks, interval);

    relay.stop();
    drop(mock);
    Ok(())
}

async fn measured_open_loop(
    target: &Arc<Target>,
    connections: usize,
    rate: f64,
    warmup: Duration,
    duration: Duration,
    probe: Option<&sys::Probe>,
    ticks: u64,
) -> PathRun {
    let mut conns = load::connections(target, connections);
    let mut warmup_errors = 0;
    if !warmup.is_zero() {
        warmup_errors = load::open_loop(&mut conns, target, rate, warmup).await.errors.total;
    }
    let before = sys::CpuSample::take(probe);
    let outcome = load::open_loop(&mut conns, target, rate, duration).await;
    let after = sys::CpuSample::take(probe);
    PathRun::from_outcome(&outcome, true, after.since(&before, ticks), warmup_errors)
}

async fn measured_closed_loop(
    target: &Arc<Target>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    probe: Option<&sys::Probe>,
    ticks: u64,
) -> PathRun {
    let mut conns = load::connections(target, connections);
    let mut warmup_errors = 0;
    if !warmup.is_zero() {
        warmup_errors = load::closed_loop(&mut conns, target, warmup).await.errors.total;
    }
    let before = sys::CpuSample::take(probe);
    let outcome: RunOutcome = load::closed_loop(&mut conns, target, duration).await;
    let after = sys::CpuSample::take(probe);
    PathRun::from_outcome(&outcome, false, after.since(&before, ticks), warmup_errors)
}

async fn measured_streams(
    target: &Arc<Target>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    probe: Option<&sys::Probe>,
    ticks: u64,
) -> StreamRun {
    let mut conns = load::connections(target, concurrency);
    let mut warmup_errors = 0;
    if !warmup.is_zero() {
        warmup_errors = load::streams(&mut conns, target, warmup).await.errors.total;
    }
    let before = sys::CpuSample::take(probe);
    let outcome = load::streams(&mut conns, target, duration).await;
    let after = sys::CpuSample::take(probe);
    StreamRun::from_outcome(&outcome, after.since(&before, ticks), warmup_errors)
}
