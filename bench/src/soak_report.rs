//! What a soak found: the samples as CSV, an SVG of memory, CPU per call, throughput and open
//! files over time, and a markdown summary (first vs last minute, flat or not, errors explained).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::load::Errors;
use crate::relay::Db;
use crate::report::{mib, us, COLORS};
use crate::sys::MachineInfo;

/// The one error a PostgreSQL outage may explain: Relay's documented answer while its database
/// does not answer.
const OUTAGE_ERROR: &str = "http_503 store_unavailable";

/// One node over one window.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// End of the window, seconds since the load started.
    pub t_s: f64,
    pub window_s: f64,
    /// 1-based.
    pub node: usize,
    /// Successful calls of every kind.
    pub calls: u64,
    pub errors: Errors,
    /// Relay's CPU seconds in the window.
    pub cpu_s: Option<f64>,
    pub rss_kib: u64,
    pub anon_kib: u64,
    pub fds: u64,
    /// Of `fds`, connections to PostgreSQL (its pool opens them on demand).
    pub db_conns: u64,
    /// Non-streaming calls, from the instant each was due.
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// Share of the whole machine's CPU that was busy.
    pub machine_busy: f64,
}

impl Sample {
    pub fn rps(&self) -> f64 {
        if self.window_s > 0.0 {
            self.calls as f64 / self.window_s
        } else {
            0.0
        }
    }

    pub fn cpu_us_per_call(&self) -> Option<f64> {
        self.cpu_s.filter(|_| self.calls > 0).map(|s| s * 1e6 / self.calls as f64)
    }

    pub fn summary(&self) -> String {
        format!(
            "[{:>7.1} s] node {}: {:.0} calls/s, {} errors, CPU {}/call, RSS {} (anon {}), {} fds ({} to the db), p99 {}",
            self.t_s,
            self.node,
            self.rps(),
            self.errors.total,
            self.cpu_us_per_call().map(us).unwrap_or_else(|| "–".into()),
            mib(self.rss_kib),
            mib(self.anon_kib),
            self.fds,
            self.db_conns,
            self.p99_us.map(us).unwrap_or_else(|| "–".into())
        )
    }
}

/// When PostgreSQL was stopped, and when it answered again (seconds since the start).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Outage {
    pub stopped_s: f64,
    pub started_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakSettings {
    pub db: Db,
    pub nodes: usize,
    pub rate: f64,
    pub duration_s: f64,
    pub sample_s: f64,
    pub warmup_s: f64,
    pub mix: String,
    pub connections: usize,
    pub streams_per_kind_and_node: usize,
    pub connects_per_s: f64,
    pub pg_restart_at_s: Option<f64>,
    pub pg_down_s: f64,
    pub recovery_s: f64,
    pub tolerance_pct: f64,
    pub idle_s: f64,
    pub command: String,
}

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub machine: MachineInfo,
    pub settings: SoakSettings,
    pub samples: Vec<Sample>,
    pub outage: Option<Outage>,
    /// (RSS, anonymous, open files) of each node after `idle_s` without load.
    pub idle: Vec<(u64, u64, u64)>,
}

/// One figure, first window against last.
pub struct Check {
    pub what: String,
    /// With a PostgreSQL restart: the first window before it (`first` is then after it).
    pub before_restart: Option<f64>,
    pub first: f64,
    pub last: f64,
    pub unit: Unit,
    pub flat: bool,
    /// Memory and open files decide `--require-flat`; CPU and throughput are reported only.
    pub resource: bool,
}

#[derive(Clone, Copy)]
pub enum Unit {
    Kib,
    Us,
    PerSecond,
    Count,
}

impl Unit {
    fn show(self, v: f64) -> String {
        match self {
            Unit::Kib => mib(v.round() as u64),
            Unit::Us => us(v),
            Unit::PerSecond => format!("{v:.0}/s"),
            Unit::Count => format!("{v:.1}"),
        }
    }
}

pub struct Verdict {
    pub checks: Vec<Check>,
    /// kind → (explained, unexplained)
    pub errors: BTreeMap<String, (u64, u64)>,
    pub unexplained_errors: u64,
    pub memory_and_files_flat: bool,
    /// The windows compared: (from, to) seconds; with a restart, `first` starts after the
    /// recovery (reconnecting is a step, not growth) and `before_restart` is shown beside it.
    pub before_restart: Option<(f64, f64)>,
    pub first: (f64, f64),
    pub last: (f64, f64),
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0u64), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

impl SoakReport {
    pub fn new(
        machine: MachineInfo,
        settings: SoakSettings,
        samples: Vec<Sample>,
        outage: Option<Outage>,
        idle: Vec<(u64, u64, u64)>,
    ) -> Self {
        Self { machine, settings, samples, outage, idle }
    }

    /// Whether a window ending at `t_s` overlaps the outage or the recovery after it.
    fn in_outage(&self, s: &Sample) -> bool {
        self.outage.is_some_and(|o| {
            let from = s.t_s - s.window_s;
            from <= o.started_s + self.settings.recovery_s && s.t_s >= o.stopped_s
        })
    }

    pub fn csv(&self) -> String {
        let mut out = String::from(
            "t_s,window_s,node,calls,calls_per_s,errors,cpu_s,cpu_us_per_call,rss_kib,anon_kib,fds,db_conns,p50_us,p99_us,\
             machine_busy,outage,error_kinds\n",
        );
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
        for s in &self.samples {
            let kinds: Vec<String> = s.errors.by_kind.iter().map(|(k, n)| format!("{k}={n}")).collect();
            let _ = writeln!(
                out,
                "{:.3},{:.3},{},{},{:.1},{},{},{},{},{},{},{},{},{},{:.3},{},{}",
                s.t_s,
                s.window_s,
                s.node,
                s.calls,
                s.rps(),
                s.errors.total,
                opt(s.cpu_s),
                opt(s.cpu_us_per_call()),
                s.rss_kib,
                s.anon_kib,
                s.fds,
                s.db_conns,
                opt(s.p50_us),
                opt(s.p99_us),
                s.machine_busy,
                u8::from(self.in_outage(s)),
                kinds.join(";")
            );
        }
        out
    }

    /// First minute after the warm-up against the last minute (shorter windows on short runs).
    pub fn verdict(&self) -> Verdict {
        let st = &self.settings;
        let end = self.samples.iter().map(|s| s.t_s).fold(0.0, f64::max);
        let from = match self.outage {
            Some(o) => st.warmup_s.max(o.started_s + st.recovery_s),
            None => st.warmup_s,
        };
        let span = ((end - from) / 2.0).clamp(0.0, 60.0);
        let first = (from, from + span);
        let last = (end - span, end);
        let before_restart =
            self.outage.map(|o| (st.warmup_s, st.warmup_s + (o.stopped_s - st.warmup_s).clamp(0.0, 60.0)));
        let within = |s: &Sample, (from, to): (f64, f64)| s.t_s > from && s.t_s <= to + 1e-9;
        let tol = st.tolerance_pct / 100.0;
        let flat = |a: f64, b: f64, slack: f64| (b - a).abs() <= a.abs() * tol + slack;
        let mut checks = Vec::new();
        for node in 1..=st.nodes {
            let of = |w| self.samples.iter().filter(move |s| s.node == node && within(s, w));
            let tag = if st.nodes > 1 { format!(" (node {node})") } else { String::new() };
            for (what, pick, unit) in [
                ("RSS", (|s: &Sample| s.rss_kib as f64) as fn(&Sample) -> f64, Unit::Kib),
                ("anonymous memory", |s: &Sample| s.anon_kib as f64, Unit::Kib),
                (
                    "open files besides database connections",
                    |s: &Sample| s.fds.saturating_sub(s.db_conns) as f64,
                    Unit::Count,
                ),
            ] {
                let (a, b) = (mean(of(first).map(pick)), mean(of(last).map(pick)));
                // A few descriptors come and go with connections: two of slack.
                let slack = if matches!(unit, Unit::Count) { 2.0 } else { 0.0 };
                checks.push(Check {
                    what: format!("{what}{tag}"),
                    before_restart: before_restart.map(|w| mean(of(w).map(pick))),
                    first: a,
                    last: b,
                    unit,
                    flat: flat(a, b, slack),
                    resource: true,
                });
            }
            let per_call = |w| {
                let (cpu, calls) = of(w).fold((0.0, 0u64), |(c, n), s| (c + s.cpu_s.unwrap_or(0.0), n + s.calls));
                if calls == 0 {
                    0.0
                } else {
                    cpu * 1e6 / calls as f64
                }
            };
            let (a, b) = (per_call(first), per_call(last));
            checks.push(Check {
                what: format!("Relay CPU per call{tag}"),
                before_restart: before_restart.map(per_call),
                first: a,
                last: b,
                unit: Unit::Us,
                flat: flat(a, b, 0.0),
                resource: false,
            });
        }
        let throughput = |w| {
            let n1 = self.samples.iter().filter(|s| s.node == 1 && within(s, w)).count().max(1) as f64;
            self.samples.iter().filter(|s| within(s, w)).map(Sample::rps).sum::<f64>() / n1
        };
        let (a, b) = (throughput(first), throughput(last));
        checks.push(Check {
            what: "throughput (all nodes)".into(),
            before_restart: before_restart.map(throughput),
            first: a,
            last: b,
            unit: Unit::PerSecond,
            flat: flat(a, b, 0.0),
            resource: false,
        });

        let mut errors: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for s in &self.samples {
            let outage = self.in_outage(s);
            for (kind, n) in &s.errors.by_kind {
                let e = errors.entry(kind.clone()).or_default();
                if outage && kind == OUTAGE_ERROR {
                    e.0 += n;
                } else {
                    e.1 += n;
                }
            }
        }
        let unexplained_errors = errors.values().map(|(_, u)| u).sum();
        let memory_and_files_flat = checks.iter().filter(|c| c.resource).all(|c| c.flat);
        Verdict { checks, errors, unexplained_errors, memory_and_files_flat, before_restart, first, last }
    }

    pub fn markdown(&self, chart_file: &str) -> String {
        let st = &self.settings;
        let m = &self.machine;
        let v = self.verdict();
        let mut s = String::new();
        let calls: u64 = self.samples.iter().map(|s| s.calls).sum();
        let errors: u64 = self.samples.iter().map(|s| s.errors.total).sum();
        let _ = writeln!(s, "# Soak: {} × {} node(s), {}\n", st.db.label(), st.nodes, st.mix);
        let _ = writeln!(
            s,
            "{} ({} cores, {} MiB), Linux {}, {}, commit {}{}; load average {} at the start.\n",
            m.cpu_model,
            m.cores,
            m.memory_mib,
            m.kernel,
            m.date,
            m.git_commit.get(..10).unwrap_or(&m.git_commit),
            if m.git_dirty { " (dirty)" } else { "" },
            m.load_average
        );
        let _ = writeln!(s, "Command: `{}`\n", st.command);
        let _ = writeln!(
            s,
            "{:.0} s at {:.0} non-streaming calls/s{}{}, {} connections; a sample every {} s; {} calls succeeded, \
             {} failed. Flat means the last window is within {}% of the first.\n",
            st.duration_s,
            st.rate,
            if st.streams_per_kind_and_node > 0 {
                format!(", {} streams at a time per stream kind and node", st.streams_per_kind_and_node)
            } else {
                String::new()
            },
            if st.connects_per_s > 0.0 { format!(", {} key connects/s", st.connects_per_s) } else { String::new() },
            st.connections,
            st.sample_s,
            calls,
            errors,
            st.tolerance_pct
        );
        if let Some(o) = self.outage {
            let _ = writeln!(
                s,
                "PostgreSQL stopped at {:.1} s and answered again at {:.1} s; 503 `store_unavailable` up to {:.0} s \
                 after that counts as explained.\n",
                o.stopped_s, o.started_s, st.recovery_s
            );
        }
        let (pre_head, pre_rule) = match v.before_restart {
            Some((a, b)) => (format!(" before the restart {a:.0}–{b:.0} s |"), "---|"),
            None => (String::new(), ""),
        };
        let _ = writeln!(
            s,
            "| |{pre_head} first {:.0}–{:.0} s | last {:.0}–{:.0} s | change | flat |\n|---|{pre_rule}---|---|---|---|",
            v.first.0, v.first.1, v.last.0, v.last.1
        );
        for c in &v.checks {
            let change =
                if c.first != 0.0 { format!("{:+.1}%", (c.last - c.first) / c.first * 100.0) } else { "–".into() };
            let pre = c.before_restart.map(|p| format!(" {} |", c.unit.show(p))).unwrap_or_default();
            let _ = writeln!(
                s,
                "| {} |{pre} {} | {} | {} | {} |",
                c.what,
                c.unit.show(c.first),
                c.unit.show(c.last),
                change,
                if c.flat { "✅" } else { "❌" }
            );
        }
        for (i, (rss, anon, fds)) in self.idle.iter().enumerate() {
            let peak = self.samples.iter().filter(|x| x.node == i + 1).map(|x| x.rss_kib).max().unwrap_or(0);
            let _ = writeln!(
                s,
                "\nNode {}, {:.0} s after the load stopped: RSS {} (anonymous {}), {} open files; highest RSS \
                 sampled under load {}.",
                i + 1,
                st.idle_s,
                mib(*rss),
                mib(*anon),
                fds,
                mib(peak)
            );
        }
        let _ = writeln!(s, "\n## Errors\n");
        if v.errors.is_empty() {
            let _ = writeln!(s, "None.");
        } else {
            let _ = writeln!(s, "| kind | explained (PostgreSQL restart) | unexplained |\n|---|---|---|");
            for (kind, (e, u)) in &v.errors {
                let _ = writeln!(s, "| {kind} | {e} | {u} |");
            }
            let examples: Vec<String> = self
                .samples
                .iter()
                .flat_map(|x| x.errors.examples.iter())
                .map(|(k, d)| format!("- {k}: {}", d.replace('\n', " ")))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .take(10)
                .collect();
            let _ = writeln!(s, "\nFirst examples:\n\n{}", examples.join("\n"));
        }
        let _ = writeln!(
            s,
            "\n**Verdict:** {} unexplained errors; RSS and open files {}.\n\n![soak]({chart_file})",
            v.unexplained_errors,
            if v.memory_and_files_flat { "flat" } else { "NOT flat" }
        );
        s
    }
}

/// Four panels against time: RSS, CPU per call, throughput, open files; one line per node, the
/// PostgreSQL outage marked.
pub fn chart(path: &Path, report: &SoakReport) -> anyhow::Result<()> {
    type Pick = fn(&Sample) -> Option<f64>;
    // Each panel's lines per node: (name, value); a second line is drawn lighter.
    let panels: [(&str, &[(&str, Pick)]); 4] = [
        (
            "memory (MiB)",
            &[("RSS", |s| Some(s.rss_kib as f64 / 1024.0)), ("anonymous", |s| Some(s.anon_kib as f64 / 1024.0))],
        ),
        ("Relay CPU per call (µs)", &[("", Sample::cpu_us_per_call)]),
        ("calls per second", &[("", |s| Some(s.rps()))]),
        ("open files", &[("", |s| Some(s.fds as f64)), ("to the database", |s| Some(s.db_conns as f64))]),
    ];
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("{e}");
    let root = SVGBackend::new(path, (1100, 1100)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let st = &report.settings;
    let title = format!(
        "Soak: {}, {} node(s), {}, {:.0} calls/s · {} ({} cores shared with the load generator)",
        st.db.label(),
        st.nodes,
        st.mix,
        st.rate,
        report.machine.cpu_model,
        report.machine.cores
    );
    let root = root.titled(&title, ("sans-serif", 15)).map_err(|e| err(&e))?;
    let x_max = report.samples.iter().map(|s| s.t_s / 60.0).fold(0.1, f64::max);
    for ((label, lines), area) in panels.into_iter().zip(root.split_evenly((4, 1))) {
        let y_max =
            lines.iter().flat_map(|(_, pick)| report.samples.iter().filter_map(pick)).fold(1.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(&area)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| err(&e))?;
        chart.configure_mesh().x_desc("minutes").y_desc(label).draw().map_err(|e| err(&e))?;
        if let Some(o) = report.outage {
            for t in [o.stopped_s, o.started_s] {
                let line = vec![(t / 60.0, 0.0), (t / 60.0, y_max)];
                chart.draw_series(LineSeries::new(line, BLACK.mix(0.5).stroke_width(1))).map_err(|e| err(&e))?;
            }
        }
        for node in 1..=st.nodes {
            for (i, (name, pick)) in lines.iter().enumerate() {
                let base = COLORS[(node - 1) % COLORS.len()];
                let color = if i == 0 { base.to_rgba() } else { base.mix(0.45) };
                let line: Vec<(f64, f64)> = report
                    .samples
                    .iter()
                    .filter(|s| s.node == node)
                    .filter_map(|s| pick(s).map(|v| (s.t_s / 60.0, v)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(line, color.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(format!("node {node} {name}").trim_end().to_owned())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, kinds: &[(&str, u64)]) -> Sample {
        let mut errors = Errors::default();
        for (k, n) in kinds {
            errors.total += n;
            errors.by_kind.insert((*k).to_owned(), *n);
        }
        Sample {
            t_s,
            window_s: 5.0,
            node: 1,
            calls: 1000,
            errors,
            cpu_s: Some(0.2),
            rss_kib: 50_000,
            anon_kib: 20_000,
            fds: 40,
            db_conns: 0,
            p50_us: None,
            p99_us: None,
            machine_busy: 0.5,
        }
    }

    fn report(samples: Vec<Sample>) -> SoakReport {
        let settings = SoakSettings {
            db: Db::Postgres,
            nodes: 1,
            rate: 200.0,
            duration_s: 60.0,
            sample_s: 5.0,
            warmup_s: 10.0,
            mix: "chat".into(),
            connections: 4,
            streams_per_kind_and_node: 0,
            connects_per_s: 0.0,
            pg_restart_at_s: Some(30.0),
            pg_down_s: 3.0,
            recovery_s: 10.0,
            tolerance_pct: 10.0,
            idle_s: 0.0,
            command: String::new(),
        };
        let machine = crate::sys::machine_info(Path::new("."), Path::new("relay"));
        SoakReport::new(machine, settings, samples, Some(Outage { stopped_s: 30.0, started_s: 33.0 }), vec![])
    }

    #[test]
    fn only_store_unavailable_around_the_restart_is_explained() {
        let samples = (1..=12)
            .map(|i| {
                let t = i as f64 * 5.0;
                match i {
                    7 => sample(t, &[(OUTAGE_ERROR, 40)]),
                    9 => sample(t, &[(OUTAGE_ERROR, 3), ("timeout", 1)]),
                    12 => sample(t, &[(OUTAGE_ERROR, 2)]),
                    _ => sample(t, &[]),
                }
            })
            .collect();
        let v = report(samples).verdict();
        assert_eq!(v.errors[OUTAGE_ERROR], (43, 2));
        assert_eq!(v.errors["timeout"], (0, 1));
        assert_eq!(v.unexplained_errors, 3);
        assert!(v.memory_and_files_flat);
    }
}
