//! What the harness reads from the operating system: a child's CPU time, memory, open files and
//! their limit from /proc, the machine's busy time, and the facts printed with results.

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use serde::Serialize;

/// User + system CPU time of a process, in clock ticks (`utime` + `stime` of /proc/PID/stat).
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces; fields after it are plain.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 (state) is index 0, so utime (14) and stime (15) are indexes 11 and 12.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// Resident set size (VmRSS) of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// Anonymous resident memory (RssAnon: the heap, stacks; not the mapped binary) in KiB.
pub fn anon_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "RssAnon:")
}

/// Open file descriptors of a process (entries of /proc/PID/fd), and how many of them are TCP
/// connections to `port` (a database pool's, which open and close on demand).
pub fn open_fds(pid: u32, port: u16) -> anyhow::Result<(u64, u64)> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).with_context(|| format!("read /proc/{pid}/fd"))?;
    let mut total = 0;
    let mut sockets = std::collections::HashSet::new();
    for entry in entries.flatten() {
        total += 1;
        let Ok(link) = std::fs::read_link(entry.path()) else { continue };
        if let Some(inode) = link.to_str().and_then(|l| l.strip_prefix("socket:[")).and_then(|l| l.strip_suffix(']')) {
            sockets.insert(inode.to_owned());
        }
    }
    let mut to_port = 0;
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            // sl, local_address, rem_address (hex IP:port), st, queues, tr, retrnsmt, uid, timeout, inode
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port =
                fields.get(2).and_then(|a| a.rsplit_once(':')).and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if remote_port == Some(port) && fields.get(9).is_some_and(|inode| sockets.contains(*inode)) {
                to_port += 1;
            }
        }
    }
    Ok((total, to_port))
}

/// Peak resident set size (VmHWM) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with(field)).with_context(|| format!("no {field}"))?;
    let kib = line.split_whitespace().nth(1).context("malformed status line")?;
    Ok(kib.parse()?)
}

/// The soft limit on open files of a process ("Max open files" in /proc/PID/limits).
pub fn nofile_limit(pid: &str) -> anyhow::Result<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = limits.lines().find(|l| l.starts_with("Max open files")).context("no open-files limit")?;
    let soft = line.split_whitespace().nth(3).context("malformed limits line")?;
    Ok(if soft == "unlimited" { u64::MAX } else { soft.parse()? })
}

/// Clock ticks per second, asked of `getconf` once (100 on every common Linux).
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// The machine's (busy, total) jiffies from the first line of /proc/stat.
pub fn machine_ticks() -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().take(8).sum();
    // idle + iowait
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Ok((total.saturating_sub(idle), total))
}

/// Whose CPU time a relay run is charged: Relay's process and, on PostgreSQL, the database
/// server processes serving Relay's connections (on SQLite that work is inside Relay).
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub relay_pid: u32,
    pub db_pids: Option<Vec<u32>>,
}

/// CPU counters taken before and after a measured phase.
#[derive(Debug, Clone)]
pub struct CpuSample {
    relay_ticks: Option<u64>,
    db_ticks: Option<u64>,
    machine_busy: u64,
    machine_total: u64,
}

/// CPU seconds spent between two samples, and the machine's busy share (0..=1).
#[derive(Debug, Clone, Copy)]
pub struct CpuDelta {
    pub relay_s: Option<f64>,
    pub db_s: Option<f64>,
    pub machine_busy: f64,
}

impl CpuSample {
    pub fn take(probe: Option<&Probe>) -> Self {
        let relay_ticks = probe.and_then(|p| cpu_ticks(p.relay_pid).ok());
        // A backend that exited meanwhile counts as zero on both sides of the difference.
        let db_ticks = probe
            .and_then(|p| p.db_pids.as_ref())
            .map(|pids| pids.iter().map(|pid| cpu_ticks(*pid).unwrap_or(0)).sum());
        let (machine_busy, machine_total) = machine_ticks().unwrap_or((0, 0));
        Self { relay_ticks, db_ticks, machine_busy, machine_total }
    }

    pub fn since(&self, earlier: &CpuSample, ticks_per_second: u64) -> CpuDelta {
        let seconds = |now: Option<u64>, then: Option<u64>| {
            now.zip(then).map(|(n, t)| n.saturating_sub(t) as f64 / ticks_per_second.max(1) as f64)
        };
        let total = self.machine_total.saturating_sub(earlier.machine_total);
        let busy = self.machine_busy.saturating_sub(earlier.machine_busy);
        CpuDelta {
            relay_s: seconds(self.relay_ticks, earlier.relay_ticks),
            db_s: seconds(self.db_ticks, earlier.db_ticks),
            machine_busy: if total == 0 { 0.0 } else { busy as f64 / total as f64 },
        }
    }
}

/// The machine and source the numbers came from.
#[derive(Debug, Clone, Serialize)]
pub struct MachineInfo {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_mib: u64,
    pub kernel: String,
    pub date: String,
    pub git_commit: String,
    pub git_dirty: bool,
    pub relay_binary: String,
    pub open_files_limit: u64,
    /// /proc/loadavg when the run started: other work on the machine skews the numbers.
    pub load_average: String,
}

pub fn machine_info(repo: &Path, relay_binary: &Path) -> MachineInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let memory_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map(|kib| kib / 1024)
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default();
    let git = |args: &[&str]| Command::new("git").arg("-C").arg(repo).args(args).output().ok();
    let git_commit = git(&["rev-parse", "HEAD"])
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    // `git diff` reads the index and never writes it (unlike `git status`).
    let git_dirty = git(&["diff", "--quiet", "HEAD", "--"]).is_some_and(|o| o.status.code() == Some(1));
    MachineInfo {
        cpu_model,
        cores,
        memory_mib,
        kernel,
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        git_commit,
        git_dirty,
        relay_binary: relay_binary.display().to_string(),
        open_files_limit: nofile_limit("self").unwrap_or(0),
        load_average: std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    }
}
