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

/// Fields 3 onwards of a /proc/<pid>/stat line (index 0 is field 3, the state).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    // The command name (field 2) may contain spaces: count fields after its closing paren.
    let (_, after) = stat.rsplit_once(')')?;
    Some(after.split_whitespace().collect())
}

/// A /proc/<pid>/stat field by its number in proc(5) (field 4 is ppid, 14 utime, ...).
fn stat_field(fields: &[&str], number: usize) -> Option<u64> {
    fields.get(number.checked_sub(3)?)?.parse().ok()
}

/// USER_HZ ticks to seconds: Linux fixes USER_HZ at 100 for user space (proc(5)).
fn ticks_to_seconds(ticks: u64) -> f64 {
    ticks as f64 / 100.0
}

/// User plus system CPU seconds used by this process so far (/proc/self/stat fields 14 and 15).
pub fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("cannot read /proc")?;
    let fields = stat_fields(&stat).context("unexpected /proc/self/stat")?;
    let ticks = |n| stat_field(&fields, n).context("unexpected /proc/self/stat");
    Ok(ticks_to_seconds(ticks(14)? + ticks(15)?))
}

/// System (kernel) CPU seconds used by this process so far (/proc/self/stat field 15): where
/// the filesystem's own work on the migrator's behalf shows.
pub fn system_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("cannot read /proc")?;
    let fields = stat_fields(&stat).context("unexpected /proc/self/stat")?;
    let ticks = stat_field(&fields, 15).context("unexpected /proc/self/stat")?;
    Ok(ticks_to_seconds(ticks))
}

/// CPU seconds used so far by the process `root` and every process descending from it: the
/// live ones' utime + stime (proc(5) fields 14, 15), found by walking /proc for processes whose
/// parent chain (field 4) reaches `root`, plus `root`'s cutime + cstime (fields 16, 17: its
/// children that exited and were waited for, with their own reaped descendants). A descendant
/// reaped by a process that is not its parent (a daemonized grandchild) is missed; Dovecot's
/// master forks every service itself and waits for it.
pub fn tree_cpu_seconds(root: u32) -> anyhow::Result<f64> {
    let mut parent = std::collections::HashMap::new();
    let mut own = std::collections::HashMap::new();
    let mut reaped = 0;
    for entry in std::fs::read_dir("/proc")
        .context("cannot read /proc")?
        .flatten()
    {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between the listing and the read: it is simply not counted.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(fields) = stat_fields(&stat) else {
            continue;
        };
        let field = |n| stat_field(&fields, n).unwrap_or(0);
        parent.insert(pid, field(4) as u32);
        own.insert(pid, field(14) + field(15));
        if pid == root {
            reaped = field(16) + field(17);
        }
    }
    if !own.contains_key(&root) {
        anyhow::bail!("process {root} is not running");
    }
    let descends = |mut pid: u32| {
        // Bounded walk: a parent chain is never longer than the process table.
        for _ in 0..=parent.len() {
            if pid == root {
                return true;
            }
            match parent.get(&pid) {
                Some(&p) if p != 0 && p != pid => pid = p,
                _ => return false,
            }
        }
        false
    };
    let live: u64 = own
        .iter()
        .filter(|(&pid, _)| descends(pid))
        .map(|(_, &t)| t)
        .sum();
    Ok(ticks_to_seconds(live + reaped))
}

/// The machine's CPU time from /proc/stat's `cpu` line (all CPUs together), in seconds since
/// boot: busy = user + nice + system + irq + softirq + steal, idle = idle + iowait (guest time
/// is already inside user and nice).
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub busy: f64,
    pub idle: f64,
}

impl MachineCpu {
    pub fn now() -> anyhow::Result<MachineCpu> {
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
        // user nice system idle iowait irq softirq steal
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        Ok(MachineCpu {
            busy: ticks_to_seconds(at(0) + at(1) + at(2) + at(5) + at(6) + at(7)),
            idle: ticks_to_seconds(at(3) + at(4)),
        })
    }

    /// The time from `earlier` to `self`.
    pub fn since(self, earlier: MachineCpu) -> MachineCpu {
        MachineCpu {
            busy: self.busy - earlier.busy,
            idle: self.idle - earlier.idle,
        }
    }

    /// Busy share of all CPUs' time in this interval (0..=1).
    pub fn busy_fraction(self) -> f64 {
        let total = self.busy + self.idle;
        if total > 0.0 {
            self.busy / total
        } else {
            0.0
        }
    }
}

/// The CPUs /proc/stat counts (`cpuN` lines): the denominator of the busy fraction.
pub fn machine_cpus() -> usize {
    std::fs::read_to_string("/proc/stat")
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
                .count()
        })
        .unwrap_or(0)
        .max(1)
}

/// The 1-, 5- and 15-minute load averages (/proc/loadavg).
pub fn load_average() -> anyhow::Result<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").context("cannot read /proc/loadavg")?;
    let mut v = text.split_whitespace().map(|x| x.parse::<f64>());
    let mut next = || -> anyhow::Result<f64> {
        v.next()
            .context("short /proc/loadavg")?
            .context("unexpected /proc/loadavg")
    };
    Ok([next()?, next()?, next()?])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CPU of the tree minus the root's own: what the descendants used.
    fn descendants_cpu() -> f64 {
        tree_cpu_seconds(std::process::id()).unwrap_or(0.0) - cpu_seconds().unwrap_or(0.0)
    }

    #[test]
    fn a_busy_child_s_cpu_is_counted_while_it_lives_and_after_it_is_reaped() {
        use std::io::BufRead as _;
        let before = descendants_cpu();
        // Burns a few tenths of a CPU second, says so, then idles until killed.
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg("i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo burnt; exec sleep 30")
            .stdout(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            panic!("cannot start sh");
        };
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        assert_eq!(line.trim(), "burnt");
        let live = descendants_cpu() - before;
        let _ = child.kill();
        let _ = child.wait();
        let reaped = descendants_cpu() - before;
        assert!(live >= 0.1, "a live child's utime+stime: {live} s");
        assert!(
            reaped >= live - 0.01,
            "a reaped child moves into cutime, not away: live {live} s, reaped {reaped} s"
        );
    }

    #[test]
    fn the_machine_counts_some_busy_time_and_a_load_average() {
        let a = MachineCpu::now().unwrap_or_default();
        let b = MachineCpu::now().unwrap_or_default();
        assert!(a.busy > 0.0 && a.idle >= 0.0);
        let f = b.since(a).busy_fraction();
        assert!((0.0..=1.0).contains(&f));
        assert!(load_average().is_ok_and(|l| l.iter().all(|x| *x >= 0.0)));
        assert!(machine_cpus() >= 1);
    }
}
