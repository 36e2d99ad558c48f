//! Seed inputs for each target: well-formed scripts that reach deep states at once (a whole
//! CHAP login, a persistent reservation held, a configured target), written in each harness's
//! input format. `tests/replay.rs` runs them; `cargo test -p ironlun-fuzzkit -- --ignored
//! write_seeds` writes them into `fuzz/corpus/<target>/` to start a fresh corpus.

use bytes::BytesMut;
use ironlun_control::service::Request;
use ironlun_iscsi::{text, Bhs, Digests, Pdu, ScsiCommand};

/// The seeds of target `name`.
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "pdu" => pdu(),
        "login" => login(),
        "engine" => engine(),
        "config" => config(),
        "control" => control(),
        _ => Vec::new(),
    }
}

fn pdu() -> Vec<Vec<u8>> {
    // A Login Request header as it comes off the wire (§11.12): I bit and opcode 03h, T with
    // CSG 0 and NSG 1, ISID, ITT 1, CmdSN 1.
    let mut raw = [0u8; 48];
    raw[0] = 0x43;
    raw[1] = 0x81;
    raw[8..14].copy_from_slice(&[0x40, 0, 0, 0, 0, 1]);
    raw[16..20].copy_from_slice(&1u32.to_be_bytes());
    raw[24..28].copy_from_slice(&1u32.to_be_bytes());
    let login = Pdu::with_data(
        Bhs::decode(&raw),
        text::encode([("InitiatorName", "iqn.x"), ("AuthMethod", "CHAP,None")]),
    );
    let mut cmd = Pdu::with_data(
        Bhs::ScsiCommand(ScsiCommand {
            immediate: false,
            final_: true,
            read: false,
            write: true,
            attr: 1,
            lun: [0; 8],
            itt: 2,
            expected_data_length: 512,
            cmd_sn: 2,
            exp_stat_sn: 1,
            cdb: [0x2a, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
        }),
        vec![0xa5; 512],
    );
    // An Extended CDB AHS (§11.3.5): length 5, type 1, reserved byte, 4 CDB bytes.
    cmd.ahs = bytes::Bytes::from_static(&[0, 5, 1, 0, 1, 2, 3, 4]);
    let mut out = Vec::new();
    for settings in 0..4u8 {
        let d = Digests {
            header: settings & 1 != 0,
            data: settings & 2 != 0,
        };
        let mut s = vec![settings | 0x0c, 7];
        for p in [&login, &cmd] {
            let mut b = BytesMut::new();
            if p.encode(d, &mut b).is_ok() {
                s.extend_from_slice(&b);
            }
        }
        out.push(s);
        // Sealed: BHS, AHS words, data length, data.
        let mut sealed = vec![settings | 0x10, 0];
        let mut bhs = [0u8; 48];
        login.bhs.encode(&mut bhs);
        sealed.extend_from_slice(&bhs);
        sealed.push(0);
        sealed.push(login.data.len() as u8);
        sealed.extend_from_slice(&login.data);
        out.push(sealed);
    }
    out
}

/// Builds a login script in [`crate::login`]'s format.
#[derive(Default)]
struct LoginScript(Vec<u8>);

/// Dictionary picks of [`crate::login`]'s keys.
mod key {
    pub const ALICE: u8 = 0;
    pub const BOB: u8 = 0x80;
    pub const TARGET: u8 = 1;
    pub const NORMAL: u8 = 3;
    pub const DISCOVERY: u8 = 3 | 0x80;
    pub const AUTH_CHAP: u8 = 4;
    pub const AUTH_NONE: u8 = 4 | 0x40;
    pub const CHAP_MD5: u8 = 5;
    pub const CHAP_SHA256: u8 = 5 | 0x40;
    pub const CHAP_RIGHT: u8 = 7;
    pub const CHAP_WRONG: u8 = 7 | 0x80;
    pub const MUTUAL_16: u8 = 8;
    pub const HEADER_DIGEST: u8 = 9 | 0x80;
    pub const DATA_DIGEST: u8 = 10;
    pub const MRDSL: u8 = 11;
    pub const SEND_TARGETS: u8 = 20;
}

impl LoginScript {
    /// A Login Request: T bit, CSG, NSG, connection ids byte, then the keys (with their extra
    /// bytes already in `keys`).
    fn request(&mut self, transit: bool, csg: u8, nsg: u8, ids: u8, nkeys: u8, keys: &[u8]) {
        self.0.push(2);
        self.0.push(u8::from(transit) | (csg << 2) | (nsg << 4));
        self.0.push(ids);
        self.0.push(nkeys);
        self.0.extend_from_slice(keys);
    }

    fn end(&mut self) {
        self.0.push(0);
    }

    /// Security stage with CHAP (`alg`, and a mutual challenge if asked), then operational.
    fn chap(&mut self, who: u8, alg: u8, mutual: bool, right: bool, discovery: bool) {
        let kind = if discovery {
            key::DISCOVERY
        } else {
            key::NORMAL
        };
        self.request(false, 0, 0, 0, 4, &[who, key::TARGET, kind, key::AUTH_CHAP]);
        self.request(false, 0, 0, 0, 1, &[alg]);
        let answer = if right {
            key::CHAP_RIGHT
        } else {
            key::CHAP_WRONG
        };
        if mutual {
            let mut k = vec![answer, key::MUTUAL_16, 9];
            k.extend_from_slice(&[0x5a; 16]);
            self.request(true, 0, 1, 0, 2, &k);
        } else {
            self.request(true, 0, 1, 0, 1, &[answer]);
        }
        let mut k = vec![key::HEADER_DIGEST, key::DATA_DIGEST, key::MRDSL];
        k.extend_from_slice(&65536u32.to_be_bytes());
        self.request(true, 1, 3, 0, 3, &k);
        if discovery {
            self.request(false, 1, 1, 0, 1, &[key::SEND_TARGETS]);
        }
        self.end();
    }
}

fn login() -> Vec<Vec<u8>> {
    use crate::login::cfg;
    let mut out = Vec::new();
    // No authentication: straight to the operational stage, then a second connection that
    // joins the session (TSIH of the first).
    let mut s = LoginScript(vec![0]);
    s.request(
        true,
        1,
        3,
        0,
        4,
        &[
            key::BOB,
            key::TARGET,
            key::NORMAL,
            key::MRDSL,
            0,
            0,
            0x20,
            0,
        ],
    );
    s.end();
    s.request(true, 1, 3, 0x18, 2, &[key::BOB, key::TARGET]);
    s.end();
    out.push(s.0);
    // AuthMethod None in the security stage.
    let mut s = LoginScript(vec![0]);
    s.request(
        true,
        0,
        1,
        0,
        4,
        &[key::ALICE, key::TARGET, key::NORMAL, key::AUTH_NONE],
    );
    s.request(true, 1, 3, 0, 1, &[key::DATA_DIGEST]);
    s.end();
    out.push(s.0);
    for (bits, who, alg, mutual, right, discovery) in [
        (
            cfg::CHAP_REQUIRED,
            key::ALICE,
            key::CHAP_MD5,
            false,
            true,
            false,
        ),
        (
            cfg::CHAP_REQUIRED,
            key::ALICE,
            key::CHAP_SHA256,
            true,
            true,
            false,
        ),
        (
            cfg::CHAP_REQUIRED,
            key::ALICE,
            key::CHAP_MD5,
            false,
            false,
            false,
        ),
        (
            cfg::CHAP_REQUIRED | cfg::TPG_CREDS | cfg::DIGESTS,
            key::BOB,
            key::CHAP_SHA256,
            false,
            true,
            false,
        ),
        (
            cfg::CHAP_ONLY,
            key::ALICE,
            key::CHAP_SHA256,
            true,
            true,
            false,
        ),
        (
            cfg::DISCOVERY_CHAP,
            key::BOB,
            key::CHAP_MD5,
            true,
            true,
            true,
        ),
    ] {
        let mut s = LoginScript(vec![bits]);
        s.chap(who, alg, mutual, right, discovery);
        out.push(s.0);
    }
    out
}

/// Builds an engine script in [`crate::engine`]'s format.
struct EngineScript(Vec<u8>);

impl EngineScript {
    /// A templated CDB: nexus, LUN, index in `OPS` of `opcode`/`sa`, the CDB bytes after the
    /// opcode, flags, Data-Out.
    fn cdb(&mut self, nexus: u8, lun: u8, opcode: u8, sa: u8, rest: &[u8], data: &[u8]) {
        let at = crate::engine::op_index(opcode, sa).unwrap_or(0);
        self.0.extend_from_slice(&[nexus, lun, at]);
        let mut cdb = rest.to_vec();
        cdb.resize(crate::engine::cdb_len(opcode) - 1, 0);
        self.0.extend_from_slice(&cdb);
        self.data(data);
    }

    fn data(&mut self, data: &[u8]) {
        if data.is_empty() {
            // Data-In with an expected length of 4096.
            self.0.extend_from_slice(&[0, 0, 0x10, 0]);
        } else {
            self.0.extend_from_slice(&[1, 0xff]);
            self.0.extend_from_slice(&(data.len() as u16).to_be_bytes());
            self.0.extend_from_slice(data);
        }
    }
}

fn pr_out(key: u64, sa_key: u64) -> Vec<u8> {
    let mut d = vec![0u8; 24];
    d[..8].copy_from_slice(&key.to_be_bytes());
    d[8..16].copy_from_slice(&sa_key.to_be_bytes());
    d
}

fn engine() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // Persistent reservations: register two nexuses, reserve, a conflicting write, preempt.
    let mut s = EngineScript(Vec::new());
    let len24 = [0, 0, 0, 0, 0, 0, 0, 24, 0];
    s.cdb(0, 0, 0x5f, 0, &len24, &pr_out(0, 0xaa));
    s.cdb(1, 0, 0x5f, 0, &len24, &pr_out(0, 0xbb));
    s.cdb(
        0,
        0,
        0x5f,
        1,
        &[0x03, 0, 0, 0, 0, 0, 24, 0],
        &pr_out(0xaa, 0),
    );
    s.cdb(1, 0, 0x2a, 0, &[0, 0, 0, 0, 0, 0, 1, 0], &[7; 512]);
    s.cdb(1, 0, 0x5e, 0, &[0, 0, 0, 0, 0, 0x10, 0, 0], &[]);
    s.cdb(1, 0, 0x5e, 3, &[0, 0, 0, 0, 0, 0x10, 0, 0], &[]);
    s.cdb(
        1,
        0,
        0x5f,
        5,
        &[0x03, 0, 0, 0, 0, 0, 24, 0],
        &pr_out(0xbb, 0xaa),
    );
    // LUN reset, then an I_T nexus loss.
    s.0.extend_from_slice(&[12 << 2, 0, 4]);
    s.0.extend_from_slice(&[(13 << 2) | 1, 0]);
    out.push(s.0);
    // ALUA: RTPG, STPG to Standby for group 2, RTPG again from the other port.
    let mut s = EngineScript(Vec::new());
    s.cdb(0, 0, 0xa3, 0x0a, &[0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0], &[]);
    let stpg = [0, 0, 0, 0, 0x02, 0, 0, 2];
    s.cdb(2, 0, 0xa4, 0x0a, &[0, 0, 0, 0, 0, 0, 0, 8, 0, 0], &stpg);
    s.cdb(3, 1, 0xa3, 0x0a, &[0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0], &[]);
    s.cdb(3, 0, 0x28, 0, &[0, 0, 0, 0, 0, 0, 1, 0], &[]);
    out.push(s.0);
    // COMPARE AND WRITE of one block (compare zeros, write ones), UNMAP, WRITE SAME.
    let mut s = EngineScript(Vec::new());
    let mut caw = vec![0u8; 512];
    caw.extend_from_slice(&[1; 512]);
    s.cdb(
        0,
        0,
        0x89,
        0,
        &[0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 1, 0, 0],
        &caw,
    );
    s.0.extend_from_slice(&[14 << 2, 0, 0, 1]); // emulate_tpu=1
    let mut unmap = vec![0, 22, 0, 16, 0, 0, 0, 0];
    unmap.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 8, 0, 0, 0, 0]);
    s.cdb(1, 0, 0x42, 0, &[0, 0, 0, 0, 0, 0, 0, 24, 0], &unmap);
    s.cdb(
        1,
        1,
        0x93,
        0,
        &[0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 4, 0, 0, 0],
        &[9; 512],
    );
    s.cdb(2, 0, 0x28, 0, &[0, 0, 0, 0, 0x10, 0, 0, 8, 0], &[]);
    out.push(s.0);
    // MODE SENSE of the caching page, MODE SELECT of it with WCE off, REQUEST SENSE.
    let mut s = EngineScript(Vec::new());
    s.cdb(0, 0, 0x1a, 0, &[0, 0x08, 0, 0xff, 0], &[]);
    let page = [
        0, 0, 0, 0, 0x08, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    s.cdb(0, 0, 0x15, 0, &[0x10, 0, 0, page.len() as u8, 0], &page);
    s.cdb(1, 0, 0x03, 0, &[0, 0, 0, 0xfc, 0], &[]);
    s.cdb(1, 0, 0xa3, 0x0c, &[0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0], &[]);
    out.push(s.0);
    // EXTENDED COPY (LID1) of 8 blocks from LUN 0 to LUN 1, as the rig's LUs name themselves.
    if let Some(x) = crate::engine::xcopy_params() {
        let mut s = EngineScript(Vec::new());
        let len = (x.len() as u32).to_be_bytes();
        let rest = [
            0, 0, 0, 0, 0, 0, 0, 0, 0, len[0], len[1], len[2], len[3], 0, 0,
        ];
        s.cdb(0, 0, 0x83, 0, &rest, &x);
        s.cdb(
            0,
            0,
            0x84,
            3,
            &[0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0],
            &[],
        );
        out.push(s.0);
    }
    out
}

/// Control request lines that build a small tree: a RAM disk with an ALUA group, a target
/// with a portal, a LUN and an ACL, CHAP and parameters.
fn control_lines() -> Vec<Request> {
    let t = "iscsi/iqn.2024-01.fuzz.ironlun:t1/tpgt_1";
    let dev = "core/rd_mcp_0/r0";
    let create = |path: &str, args: &[&str]| Request::Create {
        path: path.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
    };
    let set = |path: &str, value: &str| Request::Set {
        path: path.into(),
        value: value.into(),
    };
    vec![
        create(dev, &["size=1M", "wwn=fuzz-serial"]),
        set(&format!("{dev}/attrib/emulate_tpu"), "1"),
        create(&format!("{dev}/alua/west"), &["tg_pt_gp_id=2"]),
        create(t, &[]),
        create(&format!("{t}/np/127.0.0.1:3260"), &[]),
        create(&format!("{t}/lun/lun_0"), &[&format!("dev={dev}")]),
        set(&format!("{t}/lun/lun_0/alua_tg_pt_gp"), "west"),
        create(&format!("{t}/acls/iqn.2024-01.fuzz:a"), &[]),
        create(
            &format!("{t}/acls/iqn.2024-01.fuzz:a/lun_0"),
            &["tpg_lun=0", "write_protect=0"],
        ),
        set(&format!("{t}/auth/userid"), "joe"),
        set(&format!("{t}/auth/password"), "secret-password"),
        set(&format!("{t}/param/HeaderDigest"), "CRC32C"),
        set(&format!("{t}/attrib/authentication"), "1"),
        set(&format!("{t}/enable"), "1"),
        set(&format!("{dev}/alua/west/alua_access_state"), "s"),
        create("core/alua/lu_gps/pair", &["lu_gp_id=7"]),
        set(&format!("{dev}/alua_lu_gp"), "pair"),
        Request::Ls { path: "".into() },
        Request::AluaShow { path: dev.into() },
        Request::Delete {
            path: format!("{t}/acls/iqn.2024-01.fuzz:a/lun_0"),
        },
    ]
}

fn control() -> Vec<Vec<u8>> {
    let lines = control_lines();
    let mut all = Vec::new();
    for r in &lines {
        if let Ok(j) = serde_json::to_vec(r) {
            all.extend_from_slice(&j);
            all.push(b'\n');
        }
    }
    vec![
        all,
        b"{\"op\":\"ls\",\"path\":\"iscsi\"}\n{\"op\":\"get\"}\n".to_vec(),
    ]
}

fn config() -> Vec<Vec<u8>> {
    let mut out = vec![b"{}".to_vec()];
    let cfg = crate::control::build(&control_lines());
    out.push(ironlun_control::persist::to_json(&cfg).into_bytes());
    out
}
