//! The load generator. Open loop: a scheduler thread releases requests at fixed instants and a
//! request's latency runs from the instant it was due, not from when a connection was free, so a
//! slow answer cannot hide the requests that queued behind it (coordinated omission). Closed
//! loop: every connection sends back to back, for the most a path can carry. Streams: time to the
//! first byte and each chunk's transit time. Open streams: many held at once, for memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{mpsc, Mutex};

use crate::client::{Conn, Failure, HeldStream, Target};

/// Longest a request (or a whole stream) may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

pub fn histogram() -> Histogram<u64> {
    // 1 ns .. 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).clamp(1, h.high());
    let _ = h.record(ns);
}

/// Errors counted by kind, with the first example of each.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Errors {
    pub total: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub examples: BTreeMap<String, String>,
}

impl Errors {
    pub fn add(&mut self, f: &Failure) {
        self.total += 1;
        let kind = f.kind();
        *self.by_kind.entry(kind.clone()).or_default() += 1;
        self.examples.entry(kind).or_insert_with(|| f.detail());
    }

    pub fn merge(&mut self, other: Errors) {
        self.total += other.total;
        for (k, v) in other.by_kind {
            *self.by_kind.entry(k).or_default() += v;
        }
        for (k, v) in other.examples {
            self.examples.entry(k).or_insert(v);
        }
    }
}

/// What one measured run produced.
pub struct RunOutcome {
    /// Open loop: completion − scheduled instant. Closed loop: completion − send.
    pub latency: Histogram<u64>,
    /// Open loop only: completion − the moment a worker took the request (service time).
    pub service: Histogram<u64>,
    /// Open loop only: how late requests left, behind their schedule (timer and queueing).
    pub send_lag: Histogram<u64>,
    pub ok: u64,
    pub errors: Errors,
    pub elapsed: Duration,
}

pub fn connections(target: &Target, n: usize) -> Vec<Conn> {
    (0..n).map(|_| Conn::new(target.addr)).collect()
}

/// Sends `rate` requests a second for `duration`, on the given connections.
pub async fn open_loop(conns: &mut Vec<Conn>, target: &Arc<Target>, rate: f64, duration: Duration) -> RunOutcome {
    let (tx, rx) = mpsc::unbounded_channel::<Instant>();
    let rx = Arc::new(Mutex::new(rx));
    let start = Instant::now() + Duration::from_millis(20);
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let count = (duration.as_secs_f64() * rate).round().max(1.0) as u64;
    // A plain thread sleeps with far finer resolution than the runtime's 1 ms timer wheel.
    let scheduler = std::thread::spawn(move || {
        let mut i: u64 = 0;
        while i < count {
            let now = Instant::now();
            let mut due = start + period.mul_f64(i as f64);
            while due <= now && i < count {
                if tx.send(due).is_err() {
                    return;
                }
                i += 1;
                due = start + period.mul_f64(i as f64);
            }
            if i < count {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        }
    });
    let mut workers = Vec::new();
    for mut conn in conns.drain(..) {
        let rx = rx.clone();
        let target = target.clone();
        workers.push(tokio::spawn(async move {
            let (mut latency, mut service, mut send_lag) = (histogram(), histogram(), histogram());
            let mut errors = Errors::default();
            let mut ok = 0u64;
            loop {
                let next = { rx.lock().await.recv().await };
                let Some(due) = next else { break };
                let taken = Instant::now();
                record(&mut send_lag, taken.saturating_duration_since(due));
                match tokio::time::timeout(REQUEST_TIMEOUT, conn.call(&target)).await {
                    Ok(Ok(())) => {
                        let done = Instant::now();
                        record(&mut latency, done.saturating_duration_since(due));
                        record(&mut service, done.saturating_duration_since(taken));
                        ok += 1;
                    }
                    Ok(Err(f)) => errors.add(&f),
                    Err(_) => {
                        errors.add(&Failure::Timeout);
                        conn = Conn::new(target.addr);
                    }
                }
            }
            (conn, latency, service, send_lag, ok, errors)
        }));
    }
    let mut out = RunOutcome {
        latency: histogram(),
        service: histogram(),
        send_lag: histogram(),
        ok: 0,
        errors: Errors::default(),
        elapsed: Duration::ZERO,
    };
    for w in workers {
        match w.await {
            Ok((conn, latency, service, send_lag, ok, errors)) => {
                conns.push(conn);
                let _ = out.latency.add(latency);
                let _ = out.service.add(service);
                let _ = out.send_lag.add(send_lag);
                out.ok += ok;
                out.errors.merge(errors);
            }
            Err(e) => out.errors.add(&Failure::Transport(format!("worker panicked: {e}"))),
        }
    }
    let _ = scheduler.join();
    out.elapsed = start.elapsed();
    out
}

/// Every connection sends back to back until `duration` is over.
pub async fn closed_loop(conns: &mut Vec<Conn>, target: &Arc<Target>, duration: Duration) -> RunOutcome {
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::new();
    for mut conn in conns.drain(..) {
        let target = target.clone();
        workers.push(tokio::spawn(async move {
            let mut latency = histogram();
            let mut errors = Errors::default();
            let mut ok = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                match tokio::time::timeout(REQUEST_TIMEOUT, conn.call(&target)).await {
                    Ok(Ok(())) => {
                        record(&mut latency, sent.elapsed());
                        ok += 1;
                    }
                    Ok(Err(f)) => errors.add(&f),
                    Err(_) => {
                        errors.add(&Failure::Timeout);
                        conn = Conn::new(target.addr);
                    }
                }
            }
            (conn, latency, ok, errors)
        }));
    }
    let mut out = RunOutcome {
        latency: histogram(),
        service: histogram(),
        send_lag: histogram(),
        ok: 0,
        errors: Errors::default(),
        elapsed: Duration::ZERO,
    };
    for w in workers {
        match w.await {
            Ok((conn, latency, ok, errors)) => {
                conns.push(conn);
                let _ = out.latency.add(latency);
                out.ok += ok;
                out.errors.merge(errors);
            }
            Err(e) => out.errors.add(&Failure::Transport(format!("worker panicked: {e}"))),
        }
    }
    out.elapsed = start.elapsed();
    out
}

/// What a streaming run produced.
pub struct StreamOutcome {
    pub ttfb: Histogram<u64>,
    pub chunk: Histogram<u64>,
    pub ok: u64,
    pub errors: Errors,
    pub elapsed: Duration,
}

/// Each connection runs streams back to back until `duration` is over.
pub async fn streams(conns: &mut Vec<Conn>, target: &Arc<Target>, duration: Duration) -> StreamOutcome {
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::new();
    for mut conn in conns.drain(..) {
        let target = target.clone();
        workers.push(tokio::spawn(async move {
            let (mut ttfb, mut chunk) = (histogram(), histogram());
            let mut errors = Errors::default();
            let mut ok = 0u64;
            let mut chunk_ns = Vec::new();
            while Instant::now() < deadline {
                chunk_ns.clear();
                match tokio::time::timeout(REQUEST_TIMEOUT, conn.stream(&target, &mut chunk_ns)).await {
                    Ok(Ok(first)) => {
                        record(&mut ttfb, first);
                        for ns in &chunk_ns {
                            let _ = chunk.record((*ns).clamp(1, chunk.high()));
                        }
                        ok += 1;
                    }
                    Ok(Err(f)) => errors.add(&f),
                    Err(_) => {
                        errors.add(&Failure::Timeout);
                        conn = Conn::new(target.addr);
                    }
                }
            }
            (conn, ttfb, chunk, ok, errors)
        }));
    }
    let mut out = StreamOutcome {
        ttfb: histogram(),
        chunk: histogram(),
        ok: 0,
        errors: Errors::default(),
        elapsed: Duration::ZERO,
    };
    for w in workers {
        match w.await {
            Ok((conn, ttfb, chunk, ok, errors)) => {
                conns.push(conn);
                let _ = out.ttfb.add(ttfb);
                let _ = out.chunk.add(chunk);
                out.ok += ok;
                out.errors.merge(errors);
            }
            Err(e) => out.errors.add(&Failure::Transport(format!("worker panicked: {e}"))),
        }
    }
    out.elapsed = start.elapsed();
    out
}

/// Opens `count` streams, each on its own connection, at most `parallel` being set up at a time,
/// and returns the ones that delivered their first chunk.
pub async fn open_streams(target: &Arc<Target>, count: usize, parallel: usize) -> (Vec<HeldStream>, Errors) {
    let gate = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let gate = gate.clone();
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            match tokio::time::timeout(REQUEST_TIMEOUT, Conn::new(target.addr).open_stream(&target)).await {
                Ok(r) => r,
                Err(_) => Err(Failure::Timeout),
            }
        }));
    }
    let mut held = Vec::with_capacity(count);
    let mut errors = Errors::default();
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(f)) => errors.add(&f),
            Err(e) => errors.add(&Failure::Transport(format!("task panicked: {e}"))),
        }
    }
    (held, errors)
}
