//! A raw iSCSI test client over TCP built on `ironlun-iscsi`, and a fabric fixture with
//! in-memory LUNs.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ironlun_backstore::RamDisk;
use ironlun_engine::{Device, DeviceConfig, TargetPort};
use ironlun_fabric::{AuthConfig, Fabric, FabricConfig, FabricOptions, TargetConfig, TpgConfig};
use ironlun_iscsi::chap::{decode_binary, encode_hex, ChapAlgorithm};
use ironlun_iscsi::pdu::LoginRequest;
use ironlun_iscsi::{text, Bhs, Decoder, Digests, LoginResponse, Pdu, Stage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TARGET: &str = "iqn.2024-01.test.ironlun:disk1";
pub const HIDDEN: &str = "iqn.2024-01.test.ironlun:disabled";
pub const INITIATOR: &str = "iqn.2024-01.test.client:host1";

/// A READ(10) CDB (SBC-3).
pub fn read10(lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = 0x28;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// A WRITE(10) CDB (SBC-3).
pub fn write10(lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = read10(lba, blocks);
    c[0] = 0x2a;
    c
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn port(name: &str, tpgt: u16, rtpi: u16, luns: u64) -> Arc<TargetPort> {
    let p = TargetPort::new(name, tpgt, rtpi);
    for lun in 0..luns {
        let disk = Arc::new(RamDisk::new(16 << 20).unwrap());
        let dev = Device::new(
            DeviceConfig {
                name: format!("rd{lun}"),
                unit_serial: format!("serial{rtpi}{lun}"),
                vendor_id: "LIO-ORG".into(),
                product_id: "ramdisk".into(),
                revision: "4.0".into(),
                block_size: 512,
            },
            disk,
        )
        .unwrap();
        p.add_lun(lun, dev).unwrap();
    }
    p.set_demo_mode(true, false);
    p.set_enabled(true);
    p
}

pub fn tpg(port: Arc<TargetPort>, tpgt: u16, portal: SocketAddr) -> TpgConfig {
    TpgConfig {
        tpgt,
        enabled: true,
        portals: vec![portal],
        port,
        authentication: false,
        auth: AuthConfig::default(),
        acl_auth: BTreeMap::new(),
        params: BTreeMap::new(),
        nopin: None,
    }
}

/// A fabric with TARGET (enabled, one LUN) and HIDDEN (disabled TPG) on one loopback portal.
pub async fn fabric_with(
    opts: FabricOptions,
    edit: impl FnOnce(&mut TpgConfig),
) -> (Arc<Fabric>, SocketAddr) {
    fabric_cfg(opts, edit, |_| {}).await
}

/// Like [`fabric_with`], with a last edit of the whole configuration.
pub async fn fabric_cfg(
    opts: FabricOptions,
    edit: impl FnOnce(&mut TpgConfig),
    edit_cfg: impl FnOnce(&mut FabricConfig),
) -> (Arc<Fabric>, SocketAddr) {
    let portal = loopback();
    let mut g = tpg(port(TARGET, 1, 1, 1), 1, portal);
    edit(&mut g);
    let mut hidden = tpg(port(HIDDEN, 2, 2, 0), 2, portal);
    hidden.enabled = false;
    let mut cfg = FabricConfig {
        targets: vec![
            TargetConfig {
                name: TARGET.into(),
                tpgs: vec![g],
            },
            TargetConfig {
                name: HIDDEN.into(),
                tpgs: vec![hidden],
            },
        ],
        discovery_auth: None,
    };
    edit_cfg(&mut cfg);
    let f = Fabric::with_options(opts);
    f.apply(cfg).await.unwrap();
    let addr = f.listening()[0];
    (f, addr)
}

pub async fn fabric() -> (Arc<Fabric>, SocketAddr) {
    fabric_with(FabricOptions::default(), |_| {}).await
}

pub struct Client {
    pub stream: TcpStream,
    buf: BytesMut,
    pub digests: Digests,
    pub max_data: u32,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub cid: u16,
    pub itt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

pub fn kv(data: &[u8]) -> Vec<(String, String)> {
    text::parse(data).unwrap()
}

pub fn get<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str())
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client::over(TcpStream::connect(addr).await.unwrap())
    }

    /// Connect from the local address `from` (e.g. 127.0.0.2: another source address).
    pub async fn connect_from(addr: SocketAddr, from: std::net::IpAddr) -> Client {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(from, 0)).unwrap();
        Client::over(sock.connect(addr).await.unwrap())
    }

    fn over(stream: TcpStream) -> Client {
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
            digests: Digests::default(),
            max_data: 1 << 24,
            isid: [0x80, 0, 0, 0, 0, 1],
            tsih: 0,
            cid: 1,
            itt: 1,
            cmd_sn: 1,
            exp_stat_sn: 0,
        }
    }

    pub async fn send(&mut self, pdu: &Pdu) {
        let b = pdu.to_bytes(self.digests).unwrap();
        self.stream.write_all(&b).await.unwrap();
    }

    pub async fn send_raw(&mut self, b: &[u8]) {
        let _ = self.stream.write_all(b).await;
    }

    /// The next PDU, or None on close / 5 s of silence.
    pub async fn recv(&mut self) -> Option<Pdu> {
        self.recv_within(Duration::from_secs(5)).await
    }

    pub async fn recv_within(&mut self, t: Duration) -> Option<Pdu> {
        let dec = Decoder {
            digests: self.digests,
            max_data: self.max_data,
        };
        let deadline = tokio::time::Instant::now() + t;
        loop {
            if let Some(p) = dec.decode(&mut self.buf).unwrap() {
                return Some(p);
            }
            let r = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await;
            match r {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// True if the target closes the connection within `t` (PDUs before the close are skipped).
    pub async fn closed_within(&mut self, t: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + t;
        let mut scratch = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut scratch)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }

    pub fn next_itt(&mut self) -> u32 {
        self.itt += 1;
        self.itt
    }

    pub async fn login_pdu(
        &mut self,
        csg: Stage,
        nsg: Stage,
        transit: bool,
        keys: &[(&str, &str)],
    ) -> (LoginResponse, Vec<(String, String)>) {
        let req = LoginRequest {
            transit,
            cont: false,
            csg,
            nsg,
            version_max: 0,
            version_min: 0,
            isid: self.isid,
            tsih: self.tsih,
            itt: self.itt,
            cid: self.cid,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        let data = text::encode(keys.iter().copied());
        self.send(&Pdu::with_data(Bhs::LoginRequest(req), data))
            .await;
        let p = self.recv().await.expect("login response");
        let Bhs::LoginResponse(r) = p.bhs else {
            panic!("expected a login response, got {:?}", p.bhs)
        };
        self.exp_stat_sn = r.stat_sn.wrapping_add(1);
        if r.tsih != 0 {
            self.tsih = r.tsih;
        }
        (r, kv(&p.data))
    }

    /// Log in with AuthMethod=None and the given operational keys; returns the answers of
    /// the operational stage.
    pub async fn login_normal(
        &mut self,
        target: &str,
        op_keys: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut keys = vec![
            ("InitiatorName", INITIATOR),
            ("SessionType", "Normal"),
            ("AuthMethod", "None"),
        ];
        if !target.is_empty() {
            keys.push(("TargetName", target));
        }
        let (r, _) = self
            .login_pdu(Stage::Security, Stage::Operational, true, &keys)
            .await;
        assert_eq!(r.status(), 0, "security stage");
        let (r, ans) = self
            .login_pdu(Stage::Operational, Stage::FullFeature, true, op_keys)
            .await;
        assert_eq!(r.status(), 0, "operational stage");
        assert!(r.transit && r.nsg == Stage::FullFeature);
        ans
    }

    pub async fn login_discovery(&mut self) {
        let (r, _) = self
            .login_pdu(
                Stage::Security,
                Stage::FullFeature,
                true,
                &[
                    ("InitiatorName", INITIATOR),
                    ("SessionType", "Discovery"),
                    ("AuthMethod", "None"),
                ],
            )
            .await;
        assert_eq!(r.status(), 0);
    }

    /// Send a Text Request and gather the whole (possibly continued) answer.
    pub async fn text(&mut self, keys: &[(&str, &str)]) -> Vec<(String, String)> {
        let parts = self.text_parts(keys).await;
        let body: Vec<u8> = parts.into_iter().flat_map(|(_, d)| d).collect();
        kv(&body)
    }

    /// Send a Text Request and every empty one that asks for the next part of a continued
    /// answer (echoing its TTT), until the part with F set; returns each part's header and
    /// data.
    pub async fn text_parts(
        &mut self,
        keys: &[(&str, &str)],
    ) -> Vec<(ironlun_iscsi::TextResponse, Vec<u8>)> {
        let itt = self.next_itt();
        let mut parts = Vec::new();
        let mut ttt = ironlun_iscsi::RESERVED_TAG;
        let mut data = text::encode(keys.iter().copied());
        loop {
            let req = ironlun_iscsi::TextRequest {
                immediate: true,
                final_: true,
                cont: false,
                lun: [0; 8],
                itt,
                ttt,
                cmd_sn: self.cmd_sn,
                exp_stat_sn: self.exp_stat_sn,
            };
            self.send(&Pdu::with_data(
                Bhs::TextRequest(req),
                std::mem::take(&mut data),
            ))
            .await;
            let p = self.recv().await.expect("text response");
            let Bhs::TextResponse(r) = p.bhs else {
                panic!("expected text response, got {:?}", p.bhs)
            };
            self.exp_stat_sn = r.stat_sn.wrapping_add(1);
            let last = r.final_;
            ttt = r.ttt;
            parts.push((r, p.data.to_vec()));
            if last {
                return parts;
            }
        }
    }

    /// Send a non-immediate SCSI Command (RFC 7143 §11.3) on LUN 0 with F set and no data,
    /// expecting `read` bytes in or `write` bytes out; returns its ITT.
    pub async fn command(&mut self, cdb: &[u8], read: u32, write: u32) -> u32 {
        let itt = self.next_itt();
        let mut cdb16 = [0u8; 16];
        cdb16[..cdb.len()].copy_from_slice(cdb);
        let cmd = ironlun_iscsi::ScsiCommand {
            immediate: false,
            final_: true,
            read: read > 0,
            write: write > 0,
            attr: 1,
            lun: [0; 8],
            itt,
            expected_data_length: read.max(write),
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            cdb: cdb16,
        };
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        self.send(&Pdu::new(Bhs::ScsiCommand(cmd))).await;
        itt
    }

    /// Status, sense and Data-In of the command `itt`, whose response comes next.
    pub async fn response(&mut self, itt: u32) -> (u8, Vec<u8>, Vec<u8>) {
        let mut data = Vec::new();
        loop {
            let p = self.recv().await.expect("response");
            match p.bhs {
                Bhs::DataIn(d) => {
                    assert_eq!(d.itt, itt);
                    data.extend_from_slice(&p.data);
                    if let Some(s) = d.status {
                        self.exp_stat_sn = d.stat_sn.wrapping_add(1);
                        return (s, Vec::new(), data);
                    }
                }
                Bhs::ScsiResponse(r) => {
                    assert_eq!(r.itt, itt);
                    self.exp_stat_sn = r.stat_sn.wrapping_add(1);
                    let sense = p.data.get(2..).map(<[u8]>::to_vec).unwrap_or_default();
                    return (r.status, sense, data);
                }
                other => panic!("expected the response of {itt:#x}, got {other:?}"),
            }
        }
    }

    /// TEST UNIT READY: its status and sense.
    pub async fn tur(&mut self) -> (u8, Vec<u8>) {
        let itt = self.command(&[0; 6], 0, 0).await;
        let (s, sense, _) = self.response(itt).await;
        (s, sense)
    }

    /// TEST UNIT READY until GOOD, taking the unit attentions pending for this nexus.
    pub async fn clear_ua(&mut self) {
        for _ in 0..4 {
            if self.tur().await.0 == 0 {
                return;
            }
        }
        panic!("unit attentions do not clear");
    }

    /// Send an immediate task management request (RFC 7143 §11.5) for LUN 0 without waiting
    /// for its response; returns its ITT.
    pub async fn send_tmf(&mut self, function: u8, ref_tag: u32, ref_cmd_sn: u32) -> u32 {
        let itt = self.next_itt();
        let t = ironlun_iscsi::TaskMgmtRequest {
            immediate: true,
            function,
            lun: [0; 8],
            itt,
            referenced_task_tag: ref_tag,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            ref_cmd_sn,
            exp_data_sn: 0,
        };
        self.send(&Pdu::new(Bhs::TaskMgmtRequest(t))).await;
        itt
    }

    pub async fn nop(&mut self, payload: &[u8]) -> Pdu {
        let itt = self.next_itt();
        let n = ironlun_iscsi::NopOut {
            immediate: true,
            lun: [0; 8],
            itt,
            ttt: ironlun_iscsi::RESERVED_TAG,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        self.send(&Pdu::with_data(
            Bhs::NopOut(n),
            Bytes::copy_from_slice(payload),
        ))
        .await;
        self.recv().await.expect("nop-in")
    }
}

/// A TPG that requires CHAP of INITIATOR (user1 / secretsecret1; mutual: target1 /
/// tgtsecret12345).
pub fn chap_tpg(mutual: bool) -> impl FnOnce(&mut ironlun_fabric::TpgConfig) {
    move |g| {
        g.authentication = true;
        g.acl_auth.insert(
            INITIATOR.to_string(),
            AuthConfig {
                userid: "user1".into(),
                password: "secretsecret1".into(),
                mutual_userid: if mutual {
                    "target1".into()
                } else {
                    String::new()
                },
                mutual_password: if mutual {
                    "tgtsecret12345".into()
                } else {
                    String::new()
                },
            },
        );
    }
}

/// Run CHAP as INITIATOR; returns the status of the last response and its keys.
pub async fn chap_login(
    c: &mut Client,
    algs: &str,
    user: &str,
    pass: &str,
    mutual: Option<&[u8]>,
) -> (u16, Vec<(String, String)>) {
    chap_login_as(c, INITIATOR, algs, user, pass, mutual).await
}

/// The first Login Request of `initiator` to TARGET, offering CHAP or None.
pub async fn chap_offer(c: &mut Client, initiator: &str) -> (LoginResponse, Vec<(String, String)>) {
    c.login_pdu(
        Stage::Security,
        Stage::Operational,
        false,
        &[
            ("InitiatorName", initiator),
            ("TargetName", TARGET),
            ("AuthMethod", "CHAP,None"),
        ],
    )
    .await
}

/// Run CHAP as `initiator`; the status of the last response and its keys.
pub async fn chap_login_as(
    c: &mut Client,
    initiator: &str,
    algs: &str,
    user: &str,
    pass: &str,
    mutual: Option<&[u8]>,
) -> (u16, Vec<(String, String)>) {
    let (r, ans) = chap_offer(c, initiator).await;
    assert_eq!(r.status(), 0);
    assert_eq!(get(&ans, "AuthMethod"), Some("CHAP"));
    let (r, ans) = c
        .login_pdu(
            Stage::Security,
            Stage::Operational,
            false,
            &[("CHAP_A", algs)],
        )
        .await;
    assert_eq!(r.status(), 0);
    let alg = ChapAlgorithm::from_code(get(&ans, "CHAP_A").unwrap().parse().unwrap()).unwrap();
    let id: u8 = get(&ans, "CHAP_I").unwrap().parse().unwrap();
    let ch = decode_binary(get(&ans, "CHAP_C").unwrap()).unwrap();
    let resp = encode_hex(&alg.response(id, pass.as_bytes(), &ch));
    let mut keys = vec![("CHAP_N", user.to_string()), ("CHAP_R", resp)];
    if let Some(m) = mutual {
        keys.push(("CHAP_I", "77".into()));
        keys.push(("CHAP_C", encode_hex(m)));
    }
    let refs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (r, ans) = c
        .login_pdu(Stage::Security, Stage::Operational, true, &refs)
        .await;
    (r.status(), ans)
}
