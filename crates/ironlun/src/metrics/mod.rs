//! `serve --metrics ADDR`: Prometheus / OpenMetrics text on `GET /metrics` (docs/metrics.md
//! lists every metric). A [`Collector`] walks the live objects at scrape time (the LUs, the
//! open I_T nexuses through each target port, the fabric), so nothing is registered per object
//! and objects that go away leave the output. The command path only bumps atomics
//! (ironlun-engine `core/stats.rs`); everything here runs on a scrape. The HTTP side is
//! [`http`].

use std::fmt;
use std::sync::Arc;

use ironlun_control::live::LiveObjects;
use ironlun_engine::metrics::{IoSnapshot, OpClass, ERROR_STATUSES, TMF_NAMES};
use ironlun_engine::scsi::alua::AccessState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

pub mod http;

/// Sense keys by code (SPC-4 §4.5.6 table 28), as label values.
const SENSE_KEYS: [&str; 16] = [
    "no_sense",
    "recovered_error",
    "not_ready",
    "medium_error",
    "hardware_error",
    "illegal_request",
    "unit_attention",
    "data_protect",
    "blank_check",
    "vendor_specific",
    "copy_aborted",
    "aborted_command",
    "reserved_0c",
    "volume_overflow",
    "miscompare",
    "completed",
];

/// ALUA primary access states reported (the settable ones, SPC-4 §5.11.2.7), as label values.
const ALUA_STATES: [(AccessState, &str); 6] = [
    (AccessState::ActiveOptimized, "active_optimized"),
    (AccessState::ActiveNonOptimized, "active_nonoptimized"),
    (AccessState::Standby, "standby"),
    (AccessState::Unavailable, "unavailable"),
    (AccessState::Offline, "offline"),
    (AccessState::Transitioning, "transitioning"),
];

type Labels = Vec<(&'static str, String)>;

fn with(labels: &Labels, key: &'static str, value: &str) -> Labels {
    let mut l = labels.clone();
    l.push((key, value.to_string()));
    l
}

/// Counters of one LU or nexus, with its labels.
struct IoRow {
    labels: Labels,
    io: IoSnapshot,
    outstanding: usize,
}

/// Walks the live objects on every scrape.
pub struct Exporter {
    live: Arc<LiveObjects>,
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exporter")
    }
}

/// A registry holding the one [`Exporter`].
pub fn registry(live: Arc<LiveObjects>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(Exporter { live }));
    r
}

/// Encode one family: a descriptor, then one sample per row (none: the family is left out).
fn family<T>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    ty: MetricType,
    rows: &[(Labels, T)],
    mut sample: impl FnMut(&mut MetricEncoder, &T) -> fmt::Result,
) -> fmt::Result {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, unit, ty)?;
    for (labels, v) in rows {
        let mut f = m.encode_family(labels)?;
        sample(&mut f, v)?;
    }
    Ok(())
}

fn counter(m: &mut MetricEncoder, v: &u64) -> fmt::Result {
    m.encode_counter::<NoLabelSet, u64, u64>(v, None)
}

fn gauge(m: &mut MetricEncoder, v: &i64) -> fmt::Result {
    m.encode_gauge(v)
}

/// The families every LU and every nexus have; `what` is "logical unit" or "I_T nexus".
fn io_families(
    enc: &mut DescriptorEncoder,
    prefix: &str,
    what: &str,
    rows: &[IoRow],
) -> fmt::Result {
    let n = |s: &str| format!("{prefix}_{s}");
    let per_class = |f: &dyn Fn(&IoRow, usize) -> u64| -> Vec<(Labels, u64)> {
        rows.iter()
            .flat_map(|r| {
                OpClass::ALL
                    .iter()
                    .map(move |c| (with(&r.labels, "op", c.name()), f(r, *c as usize)))
            })
            .collect()
    };
    let commands = per_class(&|r, c| r.io.classes[c].count);
    family(
        enc,
        &n("commands"),
        &format!("SCSI commands answered per {what}, by operation class (read, write, other)."),
        None,
        MetricType::Counter,
        &commands,
        counter,
    )?;
    let read: Vec<(Labels, u64)> = rows
        .iter()
        .map(|r| (r.labels.clone(), r.io.read_bytes))
        .collect();
    family(
        enc,
        &n("read"),
        &format!("Data-In bytes sent to the initiator per {what}."),
        Some(&Unit::Bytes),
        MetricType::Counter,
        &read,
        counter,
    )?;
    let written: Vec<(Labels, u64)> = rows
        .iter()
        .map(|r| (r.labels.clone(), r.io.write_bytes))
        .collect();
    family(
        enc,
        &n("written"),
        &format!("Data-Out bytes received from the initiator per {what}."),
        Some(&Unit::Bytes),
        MetricType::Counter,
        &written,
        counter,
    )?;
    let hist: Vec<(Labels, &ironlun_engine::metrics::LatencySnapshot)> = rows
        .iter()
        .flat_map(|r| {
            OpClass::ALL
                .iter()
                .map(move |c| (with(&r.labels, "op", c.name()), &r.io.classes[*c as usize]))
        })
        .collect();
    family(
        enc,
        &n("command_duration"),
        &format!(
            "Time from a command's entry into the task set to its response, per {what} and \
             operation class."
        ),
        Some(&Unit::Seconds),
        MetricType::Histogram,
        &hist,
        |m, h| m.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None),
    )?;
    let sense: Vec<(Labels, u64)> = rows
        .iter()
        .flat_map(|r| {
            SENSE_KEYS
                .iter()
                .enumerate()
                .map(move |(k, key)| (with(&r.labels, "sense_key", key), r.io.sense[k]))
        })
        .collect();
    family(
        enc,
        &n("check_conditions"),
        &format!("Commands ended with CHECK CONDITION per {what}, by sense key."),
        None,
        MetricType::Counter,
        &sense,
        counter,
    )?;
    let status: Vec<(Labels, u64)> = rows
        .iter()
        .flat_map(|r| {
            ERROR_STATUSES
                .iter()
                .enumerate()
                .map(move |(i, (_, s))| (with(&r.labels, "status", s), r.io.statuses[i]))
        })
        .collect();
    family(
        enc,
        &n("status_errors"),
        &format!(
            "Commands ended with a status other than GOOD or CHECK CONDITION per {what}, by \
             status."
        ),
        None,
        MetricType::Counter,
        &status,
        counter,
    )?;
    let outstanding: Vec<(Labels, i64)> = rows
        .iter()
        .map(|r| (r.labels.clone(), r.outstanding as i64))
        .collect();
    family(
        enc,
        &n("outstanding_commands"),
        &format!("Commands received in command order and not yet answered, per {what}."),
        None,
        MetricType::Gauge,
        &outstanding,
        gauge,
    )?;
    let tmfs: Vec<(Labels, u64)> = rows
        .iter()
        .flat_map(|r| {
            TMF_NAMES
                .iter()
                .enumerate()
                .map(move |(i, f)| (with(&r.labels, "function", f), r.io.tmfs[i]))
        })
        .collect();
    family(
        enc,
        &n("task_management"),
        &format!(
            "Task management functions (aborts, LUN and target resets) per {what}, by function."
        ),
        None,
        MetricType::Counter,
        &tmfs,
        counter,
    )?;
    let aborted: Vec<(Labels, u64)> = rows
        .iter()
        .map(|r| (r.labels.clone(), r.io.aborted_tasks))
        .collect();
    family(
        enc,
        &n("aborted_tasks"),
        &format!("Tasks aborted by those task management functions, per {what}."),
        None,
        MetricType::Counter,
        &aborted,
        counter,
    )
}

impl Collector for Exporter {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let live = self.live.load();
        let lus: Vec<IoRow> = live
            .devices
            .iter()
            .map(|(path, d)| IoRow {
                labels: vec![("lu", path.clone())],
                io: d.io_stats(),
                outstanding: d.outstanding(),
            })
            .collect();
        let mut nexuses = Vec::new();
        for port in &live.ports {
            for n in port.sessions().iter().filter(|n| !n.is_closed()) {
                let i = n.initiator();
                let isid: String = i.isid.iter().map(|b| format!("{b:02x}")).collect();
                nexuses.push(IoRow {
                    labels: vec![
                        ("initiator", i.name.clone()),
                        ("isid", isid),
                        ("target", port.target_name().to_string()),
                        ("tpgt", port.tpgt().to_string()),
                    ],
                    io: n.io_stats(),
                    outstanding: n.outstanding(),
                });
            }
        }
        io_families(&mut enc, "ironlun_lu", "logical unit", &lus)?;
        io_families(&mut enc, "ironlun_nexus", "I_T nexus", &nexuses)?;
        self.encode_pr_alua(&mut enc, &live.devices)?;
        self.encode_fabric(&mut enc)
    }
}

impl Exporter {
    fn encode_pr_alua(
        &self,
        enc: &mut DescriptorEncoder,
        devices: &[(String, Arc<ironlun_engine::Device>)],
    ) -> fmt::Result {
        let pr: Vec<(Labels, ironlun_engine::metrics::PrSummary)> = devices
            .iter()
            .map(|(p, d)| (vec![("lu", p.clone())], d.pr_summary()))
            .collect();
        family(
            enc,
            "ironlun_lu_pr_generation",
            "PRgeneration of the logical unit's persistent reservations (SPC-4 6.15.2).",
            None,
            MetricType::Gauge,
            &pr,
            |m, s| m.encode_gauge(&i64::from(s.generation)),
        )?;
        family(
            enc,
            "ironlun_lu_pr_registrations",
            "Registered I_T nexuses (persistent reservation keys) of the logical unit.",
            None,
            MetricType::Gauge,
            &pr,
            |m, s| m.encode_gauge(&(s.registrations as i64)),
        )?;
        family(
            enc,
            "ironlun_lu_pr_reserved",
            "1 while a persistent reservation is held on the logical unit, else 0.",
            None,
            MetricType::Gauge,
            &pr,
            |m, s| m.encode_gauge(&i64::from(s.reserved)),
        )?;
        let mut alua: Vec<(Labels, i64)> = Vec::new();
        for (p, d) in devices {
            for g in d.alua_group_states() {
                for (state, name) in ALUA_STATES {
                    let labels = vec![
                        ("lu", p.clone()),
                        ("group", g.name.clone()),
                        ("group_id", g.id.to_string()),
                        ("state", name.to_string()),
                    ];
                    alua.push((labels, i64::from(g.state == state)));
                }
            }
        }
        family(
            enc,
            "ironlun_lu_alua_access_state",
            "ALUA primary access state of each target port group of the logical unit: 1 for \
             the current state, 0 for the others.",
            None,
            MetricType::Gauge,
            &alua,
            gauge,
        )
    }

    fn encode_fabric(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let f = self.live.fabric().stats();
        let sessions = vec![
            (vec![("type", "normal".to_string())], f.sessions as i64),
            (
                vec![("type", "discovery".to_string())],
                f.discovery_sessions as i64,
            ),
        ];
        family(
            enc,
            "ironlun_iscsi_sessions",
            "iSCSI sessions logged in, by session type.",
            None,
            MetricType::Gauge,
            &sessions,
            gauge,
        )?;
        family(
            enc,
            "ironlun_iscsi_connections",
            "iSCSI connections past login, all sessions together.",
            None,
            MetricType::Gauge,
            &[(Vec::new(), f.connections as i64)],
            gauge,
        )?;
        let fails: Vec<(Labels, u64)> = f
            .login_failures
            .iter()
            .map(|(r, n)| (vec![("reason", r.to_string())], *n))
            .collect();
        family(
            enc,
            "ironlun_iscsi_login_failures",
            "Failed iSCSI logins, by reason (the Login Response status, RFC 7143 11.13.5, or \
             timeout / bad_pdu).",
            None,
            MetricType::Counter,
            &fails,
            counter,
        )?;
        let digests = vec![
            (
                vec![("digest", "header".to_string())],
                f.header_digest_errors,
            ),
            (vec![("digest", "data".to_string())], f.data_digest_errors),
        ];
        family(
            enc,
            "ironlun_iscsi_digest_errors",
            "PDUs received with a wrong CRC32C digest, by digest.",
            None,
            MetricType::Counter,
            &digests,
            counter,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use prometheus_client::encoding::prometheus_text;

    #[derive(Debug)]
    struct Rows(Vec<(Labels, IoSnapshot)>);

    impl Collector for Rows {
        fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
            let rows: Vec<IoRow> = (self.0.iter())
                .map(|(l, io)| IoRow {
                    labels: l.clone(),
                    io: io.clone(),
                    outstanding: 2,
                })
                .collect();
            io_families(&mut enc, "ironlun_lu", "logical unit", &rows)
        }
    }

    #[test]
    fn histogram_buckets_are_cumulated_once() {
        let mut io = IoSnapshot::default();
        io.classes[0].count = 3;
        io.classes[0].sum_seconds = 0.5;
        io.classes[0].buckets = vec![(0.001, 1), (0.01, 2), (f64::INFINITY, 0)];
        let mut r = Registry::default();
        r.register_collector(Box::new(Rows(vec![(vec![("lu", "a".into())], io)])));
        let mut out = String::new();
        prometheus_text::encode(&mut out, &r).unwrap();
        assert!(
            out.contains(
                "ironlun_lu_command_duration_seconds_bucket{lu=\"a\",op=\"read\",le=\"0.01\"} 3\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "ironlun_lu_command_duration_seconds_bucket{lu=\"a\",op=\"read\",le=\"+Inf\"} 3\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("ironlun_lu_outstanding_commands{lu=\"a\"} 2\n"),
            "{out}"
        );
    }
}
