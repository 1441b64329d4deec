//! `keel hiccup`: how often, and for how long, this machine takes the CPU away from a
//! running thread. One thread per CPU, pinned, reads the clock in a tight loop and records
//! every gap between two reads longer than a threshold: time in which it did not run
//! (interrupts, other threads, the hypervisor). Gaps at the same moment on every CPU are
//! stalls of the whole machine (on a VM, of all its vCPUs). No request latency can have a
//! tail below the gaps that come often enough to reach it, so benchmarks quote this beside
//! their p99.9.

use std::time::{Duration, Instant};

/// What to measure.
#[derive(Debug, Clone)]
pub struct HiccupSettings {
    /// How long each CPU's thread runs.
    pub duration: Duration,
    /// Shortest gap recorded.
    pub threshold: Duration,
    /// CPUs `0..cpus`, one pinned thread each.
    pub cpus: usize,
}

/// A time a thread did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The CPU whose thread saw it.
    pub cpu: usize,
    /// When it ended, from the start of the run.
    pub end: Duration,
    /// How long it lasted.
    pub length: Duration,
}

impl Gap {
    fn start(&self) -> Duration {
        self.end.saturating_sub(self.length)
    }

    fn overlaps(&self, other: &Gap) -> bool {
        self.start() < other.end && other.start() < self.end
    }
}

/// Runs one thread per CPU for the settings' duration; every gap they saw, by end time.
pub fn run(s: &HiccupSettings) -> anyhow::Result<Vec<Gap>> {
    anyhow::ensure!(s.cpus >= 1, "--cpus is at least 1");
    let start = Instant::now() + Duration::from_millis(50);
    let (duration, threshold) = (s.duration, s.threshold);
    let threads: Vec<_> = (0..s.cpus)
        .map(|cpu| {
            glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(cpu))
                .name(&format!("keel-hiccup-{cpu}"))
                .io_memory(1 << 20)
                .spawn(move || async move { watch(cpu, start, duration, threshold) })
                .map_err(|e| anyhow::anyhow!("a thread on CPU {cpu}: {e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut gaps = Vec::new();
    for t in threads {
        gaps.extend(
            t.join()
                .map_err(|e| anyhow::anyhow!("a hiccup thread: {e}"))?,
        );
    }
    gaps.sort_by_key(|g| g.end);
    Ok(gaps)
}

/// Reads the clock from `start` for `duration` and returns the gaps over `threshold`.
fn watch(cpu: usize, start: Instant, duration: Duration, threshold: Duration) -> Vec<Gap> {
    while Instant::now() < start {
        std::hint::spin_loop();
    }
    let end = start + duration;
    let mut gaps = Vec::new();
    let mut last = Instant::now();
    while last < end {
        let now = Instant::now();
        let length = now - last;
        if length > threshold {
            gaps.push(Gap {
                cpu,
                end: now - start,
                length,
            });
        }
        last = now;
    }
    gaps
}

/// What the gaps of one run come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Per CPU: gaps over 1 ms, over 2 ms, over 4 ms, and the longest.
    pub per_cpu: Vec<(usize, usize, usize, Duration)>,
    /// Gaps over 1 ms that overlap a gap over 1 ms of every other CPU: the whole machine
    /// stalled (counted once per such moment).
    pub all_at_once: usize,
}

/// Counts `gaps` (sorted by end) of a run on `cpus` CPUs.
pub fn summarize(gaps: &[Gap], cpus: usize) -> Summary {
    let ms = Duration::from_millis;
    let per_cpu = (0..cpus)
        .map(|cpu| {
            let mine = || gaps.iter().filter(move |g| g.cpu == cpu);
            let over = |d: Duration| mine().filter(|g| g.length > d).count();
            let longest = mine().map(|g| g.length).max().unwrap_or_default();
            (over(ms(1)), over(ms(2)), over(ms(4)), longest)
        })
        .collect();
    let long: Vec<&Gap> = gaps.iter().filter(|g| g.length > ms(1)).collect();
    let mut all_at_once = 0;
    let mut covered_until = Duration::ZERO;
    for g in long.iter().filter(|g| g.cpu == 0) {
        let everywhere = (1..cpus).all(|cpu| {
            long.iter()
                .any(|other| other.cpu == cpu && other.overlaps(g))
        });
        if everywhere && g.start() >= covered_until {
            all_at_once += 1;
            covered_until = g.end;
        }
    }
    Summary {
        per_cpu,
        all_at_once,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(cpu: usize, end_ms: u64, length_us: u64) -> Gap {
        Gap {
            cpu,
            end: Duration::from_millis(end_ms),
            length: Duration::from_micros(length_us),
        }
    }

    #[test]
    fn gaps_are_counted_per_cpu_and_machine_stalls_once() {
        let mut gaps = vec![
            gap(0, 100, 5_000), // both CPUs stalled 95..100 ms
            gap(1, 101, 5_500),
            gap(0, 300, 1_500), // CPU 0 alone
            gap(1, 500, 2_500), // CPU 1 alone
            gap(0, 700, 800),   // under 1 ms: not a stall
            gap(1, 700, 900),
        ];
        gaps.sort_by_key(|g| g.end);
        let s = summarize(&gaps, 2);
        assert_eq!(
            s.per_cpu,
            vec![
                (2, 1, 1, Duration::from_millis(5)),
                (2, 2, 1, Duration::from_micros(5_500)),
            ]
        );
        assert_eq!(s.all_at_once, 1);
        // One CPU: every gap over 1 ms is the whole machine.
        let alone: Vec<Gap> = gaps.iter().copied().filter(|g| g.cpu == 0).collect();
        assert_eq!(summarize(&alone, 1).all_at_once, 2);
    }

    #[test]
    fn a_short_run_on_one_cpu_returns_its_gaps_in_order() {
        let gaps = run(&HiccupSettings {
            duration: Duration::from_millis(200),
            threshold: Duration::from_micros(1),
            cpus: 1,
        })
        .unwrap();
        // A thread that reads the clock for 200 ms is interrupted at least by the tick.
        assert!(!gaps.is_empty());
        assert!(gaps.windows(2).all(|w| w[0].end <= w[1].end));
        assert!(gaps
            .iter()
            .all(|g| g.cpu == 0 && g.length > Duration::from_micros(1)));
        assert!(gaps.iter().all(|g| g.end <= Duration::from_millis(400)));
    }
}
