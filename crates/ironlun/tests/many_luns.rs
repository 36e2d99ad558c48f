//! Thousands of LUNs with real clients: 10,000 RAM disks (1 MiB each) exported as LUNs
//! 0..9999 of one TPG, brought up by writing a config.json and `ironlun apply FILE`. libiscsi's
//! `iscsi-ls -s` lists every LUN (INQUIRY and READ CAPACITY on each); through
//! ironlun-initiator REPORT LUNS returns the whole list, peripheral device addressing below
//! 256 and flat space addressing above (SAM-5 §4.7.7.3, §4.7.7.5), and READs on LUNs 300
//! and 9999 (flat space LUN fields, RFC 7143 §11.2.1.3) are GOOD.
//!
//! Ports 4350-4359. Without `iscsi-ls` (libiscsi-bin) its test says so and passes, unless
//! IRONLUN_REQUIRE_LIBISCSI is set.

mod support;

use std::ops::Range;
use std::process::Command;
use std::time::Instant;

use ironlun_initiator::iscsi::pdu::task_attr::SIMPLE;
use ironlun_initiator::scsi::cdb;
use ironlun_initiator::scsi_codes::status;
use ironlun_initiator::LoginConfig;
use serde_json::json;
use support::*;

const PORTS: Range<u16> = 4350..4360;
const N: u64 = 10_000;
const MANY: &str = "iqn.2026-11.org.ironlun:many";

/// The whole config: `N` RAM disks, each LUN `i` of one TPG on the daemon's own portal, open
/// to every initiator (generate_node_acls) for reading and writing.
fn config(port: u16) -> serde_json::Value {
    let storage: Vec<_> = (0..N)
        .map(|i| {
            json!({
                "plugin": "ramdisk", "hba": 1, "name": format!("d{i}"),
                "wwn": format!("many-{i}"), "vendor_id": "IRONLUN",
                "product_id": "RAMDISK-MCP", "revision": "1.0", "size": 1 << 20,
                "write_back": false, "readonly": false, "attributes": {},
            })
        })
        .collect();
    let luns: Vec<_> = (0..N)
        .map(|i| json!({"index": i, "storage_object": format!("core/rd_mcp_1/d{i}")}))
        .collect();
    json!({
        "version": 1,
        "storage_objects": storage,
        "discovery_auth": {},
        "targets": [{
            "wwn": MANY, "fabric": "iscsi",
            "tpgs": [{
                "tag": 1, "enable": true,
                "attributes": {
                    "authentication": 0, "generate_node_acls": 1,
                    "demo_mode_write_protect": 0, "prod_mode_write_protect": 0,
                },
                "parameters": {},
                "portals": [{"ip_address": "127.0.0.1", "port": port}],
                "luns": luns,
                "node_acls": [],
            }],
        }],
    })
}

/// A daemon serving only [`config`], applied with `ironlun apply FILE`.
fn many_luns() -> Daemon {
    let d = Daemon::start_in(PORTS);
    let file = d.dir.path().join("many.json");
    std::fs::write(&file, serde_json::to_vec(&config(d.port)).expect("json")).expect("write");
    let t = Instant::now();
    let out = d.cli(&["apply", &file.display().to_string()]);
    println!("ironlun apply of {N} LUNs: {:.2?}", t.elapsed());
    assert!(out.contains(&format!("lun_{}", N - 1)), "{out}");
    d
}

/// `iscsi-ls` is on PATH; else say why the test is skipped, or fail where the environment
/// promises libiscsi (IRONLUN_REQUIRE_LIBISCSI set, as `.ci/run` does).
fn iscsi_ls_present() -> bool {
    match Command::new("iscsi-ls").arg("--help").output() {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var_os("IRONLUN_REQUIRE_LIBISCSI").is_none(),
                "iscsi-ls (libiscsi-bin) is required: {e}"
            );
            println!("SKIP iscsi_ls_lists_ten_thousand_luns: iscsi-ls (libiscsi-bin): {e}");
            false
        }
    }
}

/// The LUN number of an `iscsi-ls -s` line `Lun:N Type:...`: libiscsi prints the first two
/// bytes of the 8-byte LUN as one number, so flat space LUNs show as 0x4000 | LUN.
fn ls_lun(line: &str) -> Option<u64> {
    let n: u64 = line
        .strip_prefix("Lun:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(if n >> 14 == 0b01 { n & 0x3FFF } else { n })
}

#[test]
fn iscsi_ls_lists_ten_thousand_luns() {
    if !iscsi_ls_present() {
        return;
    }
    let d = many_luns();
    let t = Instant::now();
    let out = Command::new("iscsi-ls")
        .args(["-s", &format!("iscsi://127.0.0.1:{}", d.port)])
        .output()
        .expect("run iscsi-ls");
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "iscsi-ls: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("Lun:")).collect();
    println!("iscsi-ls -s listed {} LUNs in {took:.2?}", lines.len());
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.starts_with(&format!("Target:{MANY} "))),
        "{}",
        text.lines().next().unwrap_or_default()
    );
    let mut luns: Vec<u64> = lines.iter().filter_map(|l| ls_lun(l)).collect();
    luns.sort_unstable();
    assert_eq!(luns, (0..N).collect::<Vec<_>>(), "every LUN once");
    let disks = lines
        .iter()
        .filter(|l| l.contains("Type:DIRECT_ACCESS") && l.contains("(Size:1023k)"))
        .count();
    assert_eq!(
        disks as u64, N,
        "INQUIRY and READ CAPACITY answered on every LUN"
    );
}

#[tokio::test]
async fn initiator_reports_ten_thousand_luns_and_reads_above_255() {
    let d = many_luns();
    let s = login_at(d.addr(), LoginConfig::normal(&iqn("many"), MANY), 0).await;
    let luns = guard("REPORT LUNS", s.report_luns(0))
        .await
        .expect("REPORT LUNS");
    assert_eq!(luns, (0..N).collect::<Vec<_>>());
    // The wire form: the whole list asked for in one command, checked byte by byte.
    let alloc = 8 + 8 * N as u32;
    let raw = good(
        guard(
            "REPORT LUNS",
            s.command(0, &cdb::report_luns(0, alloc), None, alloc, SIMPLE),
        )
        .await,
        "REPORT LUNS",
    );
    assert_eq!(&raw[..4], &(8 * N as u32).to_be_bytes(), "LUN LIST LENGTH");
    for (i, e) in raw[8..].chunks_exact(8).enumerate() {
        let want = if i < 256 {
            [0, i as u8, 0, 0, 0, 0, 0, 0]
        } else {
            [0x40 | (i >> 8) as u8, i as u8, 0, 0, 0, 0, 0, 0]
        };
        assert_eq!(e, want, "entry {i}");
    }
    for lun in [300, 9999] {
        clear_ua(&s, lun).await;
        let r = good(guard("READ", s.read16(lun, 0, 8, BLOCK)).await, "READ");
        assert_eq!(r.len(), 8 * BLOCK as usize, "READ on LUN {lun}");
    }
    // A LUN past the list is not there.
    let r = guard("TUR", s.test_unit_ready(N)).await.expect("TUR");
    assert_eq!(r.status, status::CHECK_CONDITION);
}
