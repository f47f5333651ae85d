//! What /proc says about a process (peak and current RSS, CPU seconds) and about the machine, so
//! each child's memory and CPU are its own.

use std::time::Duration;

use credsync_testkit::ControlPlane;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcStats {
    pub(crate) hwm_kib: u64,
    pub(crate) rss_kib: u64,
    pub(crate) cpu_secs: f64,
}

pub(crate) fn proc_stats(pid: u32, clk_tck: f64) -> ProcStats {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after "pid (comm)": state is the first; utime and stime are the 12th and 13th.
    let after_comm = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    ProcStats {
        hwm_kib: field("VmHWM:"),
        rss_kib: field("VmRSS:"),
        cpu_secs: (ticks(11) + ticks(12)) as f64 / clk_tck,
    }
}

/// CPU seconds spent so far by the control plane, this process and the whole machine.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuSample {
    pub(crate) apiserver: f64,
    pub(crate) etcd: f64,
    pub(crate) bench: f64,
    /// Busy time of all CPUs together (/proc/stat: everything but idle and iowait).
    pub(crate) machine: f64,
}

impl CpuSample {
    pub(crate) fn take(cp: &ControlPlane, clk_tck: f64) -> CpuSample {
        let (etcd, apiserver) = cp.pids();
        let cpu = |pid: Option<u32>| pid.map_or(0.0, |pid| proc_stats(pid, clk_tck).cpu_secs);
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                let ticks: Vec<u64> = stat
                    .lines()
                    .next()?
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal ...
                let busy: u64 = ticks
                    .iter()
                    .take(8)
                    .enumerate()
                    .filter(|(i, _)| *i != 3 && *i != 4)
                    .map(|(_, t)| t)
                    .sum();
                Some(busy as f64 / clk_tck)
            })
            .unwrap_or(0.0);
        CpuSample {
            apiserver: cpu(apiserver),
            etcd: cpu(etcd),
            bench: cpu(Some(std::process::id())),
            machine,
        }
    }

    pub(crate) fn since(&self, earlier: &CpuSample) -> CpuSample {
        CpuSample {
            apiserver: self.apiserver - earlier.apiserver,
            etcd: self.etcd - earlier.etcd,
            bench: self.bench - earlier.bench,
            machine: self.machine - earlier.machine,
        }
    }
}

pub(crate) fn cpu_summary(cpu: &CpuSample, operator: Option<f64>, wall: Duration) -> String {
    format!(
        "API server {:.1} s, etcd {:.1} s, benchmark {:.1} s, operator {}, machine {:.1} s of {:.1} s ({} CPUs × {:.1} s)",
        cpu.apiserver,
        cpu.etcd,
        cpu.bench,
        operator.map_or("–".to_string(), |o| format!("{o:.1} s")),
        cpu.machine,
        wall.as_secs_f64() * nproc() as f64,
        nproc(),
        wall.as_secs_f64()
    )
}

pub(crate) fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::proc_stats;

    #[test]
    fn stat_fields_after_comm() {
        // Our own process: CPU time is readable and RSS is non-zero.
        let s = proc_stats(std::process::id(), 100.0);
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib);
    }
}
