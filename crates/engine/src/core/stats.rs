//! I/O counters of one logical unit and of one I_T nexus, for the metrics exporter
//! (docs/metrics.md). The command path only adds to relaxed atomics (no lock, no allocation);
//! [`IoStats::snapshot`] reads them when the exporter is scraped. Commands are counted by
//! operation class in a latency histogram (its count is the command count), their Data-In and
//! Data-Out bytes, CHECK CONDITION by sense key (SPC-4 §4.5.6 table 28), the other non-GOOD
//! statuses (SAM-5 §5.3.1) and the task management functions (SAM-5 §7) that reached them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use ironlun_scsi::status;

/// Upper bounds of the latency buckets, in nanoseconds (25 µs to 10 s; then +Inf).
pub const LATENCY_BOUNDS_NS: [u64; 18] = [
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];
const BUCKETS: usize = LATENCY_BOUNDS_NS.len() + 1;

/// The operation class a command is counted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpClass {
    /// READ (6/10/12/16).
    Read = 0,
    /// Commands that change the medium (the opcode table's write flag: WRITE, WRITE SAME,
    /// UNMAP, COMPARE AND WRITE, …).
    Write = 1,
    /// Everything else (INQUIRY, TEST UNIT READY, PR, …) and CDBs that were refused.
    Other = 2,
}

impl OpClass {
    pub const ALL: [OpClass; 3] = [OpClass::Read, OpClass::Write, OpClass::Other];

    pub fn name(self) -> &'static str {
        match self {
            OpClass::Read => "read",
            OpClass::Write => "write",
            OpClass::Other => "other",
        }
    }
}

/// Non-GOOD statuses other than CHECK CONDITION, in [`IoSnapshot::statuses`] order.
pub const ERROR_STATUSES: [(u8, &str); 4] = [
    (status::BUSY, "busy"),
    (status::RESERVATION_CONFLICT, "reservation_conflict"),
    (status::TASK_SET_FULL, "task_set_full"),
    (status::TASK_ABORTED, "task_aborted"),
];

/// Task management functions, in [`IoSnapshot::tmfs`] order.
pub const TMF_NAMES: [&str; 7] = [
    "abort_task",
    "abort_task_set",
    "clear_task_set",
    "clear_aca",
    "lun_reset",
    "target_warm_reset",
    "target_cold_reset",
];

/// Counters of one LU or one I_T nexus, made by the first thing counted (720 bytes that the
/// many LUs no command reaches go without).
#[derive(Default)]
pub(crate) struct IoStats {
    counters: OnceLock<Box<Counters>>,
}

struct Counters {
    /// Per class: commands per latency bucket (not cumulative; the last is +Inf).
    latency: [[AtomicU64; BUCKETS]; 3],
    latency_ns: [AtomicU64; 3],
    read_bytes: AtomicU64,
    write_bytes: AtomicU64,
    sense: [AtomicU64; 16],
    statuses: [AtomicU64; ERROR_STATUSES.len()],
    tmfs: [AtomicU64; TMF_NAMES.len()],
    aborted: AtomicU64,
}

impl Counters {
    const fn new() -> Counters {
        Counters {
            latency: [const { [const { AtomicU64::new(0) }; BUCKETS] }; 3],
            latency_ns: [const { AtomicU64::new(0) }; 3],
            read_bytes: AtomicU64::new(0),
            write_bytes: AtomicU64::new(0),
            sense: [const { AtomicU64::new(0) }; 16],
            statuses: [const { AtomicU64::new(0) }; ERROR_STATUSES.len()],
            tmfs: [const { AtomicU64::new(0) }; TMF_NAMES.len()],
            aborted: AtomicU64::new(0),
        }
    }
}

/// What a snapshot reads before anything was counted.
static NOTHING_COUNTED: Counters = Counters::new();

/// The sense key of fixed (70h/71h) or descriptor (72h/73h) format sense data (SPC-4 §4.5).
fn sense_key(sense: &[u8]) -> Option<usize> {
    let at = match sense.first()? & 0x7f {
        0x70 | 0x71 => 2,
        0x72 | 0x73 => 1,
        _ => return None,
    };
    sense.get(at).map(|b| usize::from(b & 0x0f))
}

impl IoStats {
    fn counters(&self) -> &Counters {
        self.counters.get_or_init(|| Box::new(Counters::new()))
    }

    /// One finished command: its class, latency, Data-In / Data-Out bytes and status.
    #[inline]
    pub(crate) fn record(&self, class: OpClass, nanos: u64, data_in: usize, data_out: usize) {
        let c = class as usize;
        let b = LATENCY_BOUNDS_NS
            .iter()
            .position(|&le| nanos <= le)
            .unwrap_or(BUCKETS - 1);
        let n = self.counters();
        n.latency[c][b].fetch_add(1, Ordering::Relaxed);
        n.latency_ns[c].fetch_add(nanos, Ordering::Relaxed);
        if data_in != 0 {
            n.read_bytes.fetch_add(data_in as u64, Ordering::Relaxed);
        }
        if data_out != 0 {
            n.write_bytes.fetch_add(data_out as u64, Ordering::Relaxed);
        }
    }

    /// A command ended with a status other than GOOD / CONDITION MET.
    #[cold]
    pub(crate) fn error(&self, st: u8, sense: &[u8]) {
        if st == status::CHECK_CONDITION {
            if let Some(k) = sense_key(sense) {
                self.counters().sense[k].fetch_add(1, Ordering::Relaxed);
            }
        } else if let Some(i) = ERROR_STATUSES.iter().position(|(s, _)| *s == st) {
            self.counters().statuses[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A task management function (index into [`TMF_NAMES`]) that aborted `aborted` tasks.
    pub(crate) fn tmf(&self, which: usize, aborted: usize) {
        let n = self.counters();
        if let Some(c) = n.tmfs.get(which) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        n.aborted.fetch_add(aborted as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> IoSnapshot {
        let n: &Counters = self.counters.get().map_or(&NOTHING_COUNTED, |b| b);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let classes = std::array::from_fn(|c| {
            let mut total = 0;
            let mut buckets = Vec::with_capacity(BUCKETS);
            for (i, b) in n.latency[c].iter().enumerate() {
                let b = load(b);
                total += b;
                let le = LATENCY_BOUNDS_NS
                    .get(i)
                    .map_or(f64::INFINITY, |ns| *ns as f64 / 1e9);
                buckets.push((le, b));
            }
            LatencySnapshot {
                count: total,
                sum_seconds: load(&n.latency_ns[c]) as f64 / 1e9,
                buckets,
            }
        });
        IoSnapshot {
            classes,
            read_bytes: load(&n.read_bytes),
            write_bytes: load(&n.write_bytes),
            sense: std::array::from_fn(|i| load(&n.sense[i])),
            statuses: std::array::from_fn(|i| load(&n.statuses[i])),
            tmfs: std::array::from_fn(|i| load(&n.tmfs[i])),
            aborted_tasks: load(&n.aborted),
        }
    }
}

/// One class' latency histogram.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencySnapshot {
    /// Commands of this class (the histogram's count).
    pub count: u64,
    pub sum_seconds: f64,
    /// (upper bound in seconds, commands in this bucket only: not cumulative, as
    /// prometheus-client's encoders take them), the last bound +Inf.
    pub buckets: Vec<(f64, u64)>,
}

/// The counters of one LU or I_T nexus at one moment (each counter read on its own).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IoSnapshot {
    /// By [`OpClass`] (`OpClass::ALL` order).
    pub classes: [LatencySnapshot; 3],
    /// Data-In bytes sent to the initiator.
    pub read_bytes: u64,
    /// Data-Out bytes received from the initiator.
    pub write_bytes: u64,
    /// CHECK CONDITION by sense key (index = key).
    pub sense: [u64; 16],
    /// By [`ERROR_STATUSES`].
    pub statuses: [u64; ERROR_STATUSES.len()],
    /// By [`TMF_NAMES`].
    pub tmfs: [u64; TMF_NAMES.len()],
    /// Tasks those task management functions aborted.
    pub aborted_tasks: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_lands_in_its_bucket_and_counts() {
        let s = IoStats::default();
        s.record(OpClass::Read, 30_000, 4096, 0);
        s.record(OpClass::Read, 20_000_000_000, 512, 0);
        s.record(OpClass::Write, 1, 0, 8192);
        let snap = s.snapshot();
        let r = &snap.classes[0];
        assert_eq!(r.count, 2);
        assert_eq!(r.buckets[0], (0.000025, 0));
        assert_eq!(r.buckets[1], (0.00005, 1));
        assert_eq!(r.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(snap.classes[1].buckets[0].1, 1);
        assert_eq!((snap.read_bytes, snap.write_bytes), (4608, 8192));
    }

    #[test]
    fn errors_count_by_sense_key_in_either_format() {
        let s = IoStats::default();
        s.error(status::CHECK_CONDITION, &[0x70, 0, 0x05, 0, 0, 0, 0, 10]);
        s.error(status::CHECK_CONDITION, &[0x72, 0x06, 0x29, 0]);
        s.error(status::RESERVATION_CONFLICT, &[]);
        s.error(status::CHECK_CONDITION, &[]);
        let snap = s.snapshot();
        assert_eq!(snap.sense[5], 1);
        assert_eq!(snap.sense[6], 1);
        assert_eq!(snap.sense.iter().sum::<u64>(), 2);
        assert_eq!(snap.statuses, [0, 1, 0, 0]);
    }
}
