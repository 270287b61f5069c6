//! The standard process metrics of Prometheus's client libraries, read from `/proc` at each
//! scrape: `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
//! `process_max_fds` and `process_start_time_seconds`. Where there is no `/proc` (not Linux),
//! the figures that cannot be read are left out.

use std::io;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second in `/proc` figures (`USER_HZ`): 100 on every architecture Linux runs on
/// today, and what Prometheus's own `procfs` library assumes.
const USER_HZ: f64 = 100.0;

#[derive(Debug)]
pub struct Process {
    /// Unix seconds at which the process started, read once.
    start_time: Option<f64>,
}

impl Process {
    pub fn new() -> Process {
        Process { start_time: start_time().ok() }
    }
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        if let Ok(stat) = Stat::read() {
            let cpu = ConstCounter::new((stat.utime + stat.stime) as f64 / USER_HZ);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?)?;
        }
        let gauges = [
            ("process_resident_memory_bytes", "Resident memory size in bytes.", resident_bytes().ok()),
            ("process_open_fds", "Number of open file descriptors.", open_fds().ok()),
            ("process_max_fds", "Maximum number of open file descriptors.", max_fds().ok()),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
            }
        }
        if let Some(start) = self.start_time {
            ConstGauge::new(start).encode(encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds.",
                None,
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}

/// The fields of `/proc/self/stat` read here, in clock ticks.
struct Stat {
    utime: u64,
    stime: u64,
    /// Since boot.
    starttime: u64,
}

impl Stat {
    fn read() -> io::Result<Stat> {
        parse_stat(&std::fs::read_to_string("/proc/self/stat")?).ok_or_else(|| invalid("/proc/self/stat"))
    }
}

/// `/proc/[pid]/stat` (proc(5)): the command name, field 2, is in parentheses and may hold
/// spaces and parentheses itself, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let field = |n: usize| fields.get(n - 3)?.parse().ok();
    Some(Stat { utime: field(14)?, stime: field(15)?, starttime: field(22)? })
}

/// `VmRSS` of `/proc/self/status`, which is in kB whatever the page size.
fn resident_bytes() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    parse_vm_rss(&status).ok_or_else(|| invalid("/proc/self/status"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb * 1024)
}

/// The entries of `/proc/self/fd`, the one reading them included (as Prometheus's Go client counts).
fn open_fds() -> io::Result<u64> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count() as u64)
}

/// The soft limit, the one that refuses a new descriptor.
#[cfg(unix)]
fn max_fds() -> io::Result<u64> {
    Ok(rlimit::getrlimit(rlimit::Resource::NOFILE)?.0)
}

#[cfg(not(unix))]
fn max_fds() -> io::Result<u64> {
    Err(io::ErrorKind::Unsupported.into())
}

/// The boot time (`btime` of `/proc/stat`) plus the process's start in ticks since boot.
fn start_time() -> io::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let boot: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| invalid("/proc/stat"))?;
    Ok(boot as f64 + Stat::read()?.starttime as f64 / USER_HZ)
}

fn invalid(file: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("`{file}` is not as proc(5) describes it"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 9 0 1234 \
                    123456789 5000 18446744073709551615";
        let stat = parse_stat(line).unwrap();
        assert_eq!((stat.utime, stat.stime, stat.starttime), (250, 75, 1234));
        assert!(parse_stat("4242 (cut short) S 1").is_none());
    }

    #[test]
    fn resident_memory_is_read_in_kilobytes() {
        assert_eq!(parse_vm_rss("Name:\tx\nVmRSS:\t   1536 kB\nThreads:\t3\n"), Some(1536 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read() {
        let stat = Stat::read().unwrap();
        assert!(stat.starttime > 0);
        assert!(resident_bytes().unwrap() > 0);
        assert!(open_fds().unwrap() > 0);
        let now = jiff::Timestamp::now().as_second() as f64;
        let started = start_time().unwrap();
        assert!(started <= now + 1.0 && started > now - 24.0 * 3600.0, "{started} vs {now}");
    }
}
