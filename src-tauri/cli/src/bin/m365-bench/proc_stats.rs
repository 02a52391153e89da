//! The process's own resource use, from Linux's /proc.

use anyhow::Context as _;

/// A `Vm*` line of /proc/self/status in KiB (`VmRSS` now, `VmHWM` the peak so far).
pub fn rss_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("cannot read /proc")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/self/status"))
}

/// User plus system CPU seconds used by this process so far (/proc/self/stat fields 14 and 15,
/// in USER_HZ ticks, which Linux fixes at 100 per second for user space).
pub fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("cannot read /proc")?;
    // The command name (field 2) may contain spaces: count fields after its closing paren.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/self/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .context("unexpected /proc/self/stat")
    };
    // `after` starts at field 3 (state), so field 14 is index 11.
    Ok((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// CPU seconds all processes of the machine have used since boot (busy time in /proc/stat),
/// to tell how much of a scenario's CPU went to other programs.
pub fn machine_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    let busy: u64 = v
        .iter()
        .enumerate()
        .filter(|(i, _)| !matches!(i, 3 | 4) && *i < 8)
        .map(|(_, x)| x)
        .sum();
    Ok(busy as f64 / 100.0)
}
