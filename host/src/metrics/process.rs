//! The standard `process_*` metrics (as every Prometheus client library
//! names them), read from `/proc` at each scrape. Elsewhere than Linux, or
//! when `/proc` cannot be read, they are left out rather than made up.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux on
/// every architecture: the kernel scales to it for user space).
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc` says of this process.
#[derive(Debug, Default, PartialEq)]
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    threads: i64,
    start_time_seconds: f64,
    open_fds: i64,
    max_fds: Option<i64>,
}

impl ProcessStats {
    fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
        let mut stats = parse(&stat, &status, &boot, &limits)?;
        stats.open_fds = i64::try_from(open_fds).unwrap_or(i64::MAX);
        Some(stats)
    }
}

/// Parses the texts of `/proc/self/stat`, `/proc/self/status`, `/proc/stat`
/// and `/proc/self/limits` (open descriptors are counted apart).
fn parse(stat: &str, status: &str, boot: &str, limits: &str) -> Option<ProcessStats> {
    // The command name (field 2) may hold spaces and parentheses: the fields
    // that follow start after its last ')'. Index 0 below is field 3 (state).
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    let kilobytes = |key: &str| -> Option<i64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let kb: i64 = line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    let boot_time: f64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let max_fds = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok());
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
        resident_bytes: kilobytes("VmRSS:")?,
        virtual_bytes: kilobytes("VmSize:")?,
        threads: field(20)? as i64,
        start_time_seconds: boot_time + field(22)? / TICKS_PER_SECOND,
        open_fds: 0,
        max_fds,
    })
}

#[derive(Debug)]
pub(super) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = ProcessStats::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(stats.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let mut gauge = |name: &str, help: &str, value: f64| -> Result<(), std::fmt::Error> {
            let metric = ConstGauge::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            stats.resident_bytes as f64,
        )?;
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            stats.virtual_bytes as f64,
        )?;
        gauge(
            "process_threads",
            "Number of OS threads in the process",
            stats.threads as f64,
        )?;
        gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            stats.start_time_seconds,
        )?;
        gauge(
            "process_open_fds",
            "Number of open file descriptors",
            stats.open_fds as f64,
        )?;
        if let Some(max) = stats.max_fds {
            gauge(
                "process_max_fds",
                "Maximum number of open file descriptors",
                max as f64,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_proc_texts_even_with_a_command_name_holding_parentheses() {
        let stat = "4242 (pref sync) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 50 0 0 20 0 7 0 12345 987654 321 18446744073709551615";
        let status = "Name:\tprefsync\nVmSize:\t  2048 kB\nVmRSS:\t    1024 kB\nThreads:\t7\n";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        let stats = parse(stat, status, boot, limits).expect("parsed");
        assert!((stats.start_time_seconds - 1_700_000_123.45).abs() < 1e-3);
        assert_eq!(
            stats,
            ProcessStats {
                cpu_seconds: 3.0,
                resident_bytes: 1024 * 1024,
                virtual_bytes: 2048 * 1024,
                threads: 7,
                start_time_seconds: stats.start_time_seconds,
                open_fds: 0,
                max_fds: Some(1024),
            }
        );
        assert_eq!(parse("garbage", status, boot, limits), None);
    }

    #[test]
    fn reads_this_process() {
        let stats = ProcessStats::read().expect("/proc is readable here");
        assert!(stats.resident_bytes > 0 && stats.threads >= 1 && stats.open_fds > 0);
    }
}
