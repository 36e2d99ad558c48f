//! Round-trip and robustness tests for the PDU codec.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use crate::pdu::*;

fn any_stage() -> impl Strategy<Value = Stage> {
    prop_oneof![
        Just(Stage::Security),
        Just(Stage::Operational),
        Just(Stage::Reserved),
        Just(Stage::FullFeature)
    ]
}

prop_compose! {
    fn any_lun()(l in any::<[u8; 8]>()) -> [u8; 8] { l }
}

fn any_bhs() -> impl Strategy<Value = Bhs> {
    let u = any::<u32>;
    prop_oneof![
        (any::<bool>(), any_lun(), u(), u(), u(), u()).prop_map(
            |(immediate, lun, itt, ttt, cmd_sn, exp_stat_sn)| {
                Bhs::NopOut(NopOut {
                    immediate,
                    lun,
                    itt,
                    ttt,
                    cmd_sn,
                    exp_stat_sn,
                })
            }
        ),
        (
            any::<[bool; 4]>(),
            0u8..8,
            any_lun(),
            u(),
            u(),
            u(),
            u(),
            any::<[u8; 16]>()
        )
            .prop_map(|(f, attr, lun, itt, edtl, cmd_sn, exp_stat_sn, cdb)| {
                Bhs::ScsiCommand(ScsiCommand {
                    immediate: f[0],
                    final_: f[1],
                    read: f[2],
                    write: f[3],
                    attr,
                    lun,
                    itt,
                    expected_data_length: edtl,
                    cmd_sn,
                    exp_stat_sn,
                    cdb,
                })
            }),
        (
            any::<bool>(),
            0u8..128,
            any_lun(),
            u(),
            u(),
            u(),
            u(),
            u(),
            u()
        )
            .prop_map(
                |(
                    immediate,
                    function,
                    lun,
                    itt,
                    rtt,
                    cmd_sn,
                    exp_stat_sn,
                    ref_cmd_sn,
                    exp_data_sn,
                )| {
                    Bhs::TaskMgmtRequest(TaskMgmtRequest {
                        immediate,
                        function,
                        lun,
                        itt,
                        referenced_task_tag: rtt,
                        cmd_sn,
                        exp_stat_sn,
                        ref_cmd_sn,
                        exp_data_sn,
                    })
                }
            ),
        (
            any::<[bool; 2]>(),
            any_stage(),
            any_stage(),
            any::<[u8; 2]>(),
            any::<[u8; 6]>(),
            any::<u16>(),
            u(),
            any::<u16>(),
            u(),
            u()
        )
            .prop_map(
                |(f, csg, nsg, v, isid, tsih, itt, cid, cmd_sn, exp_stat_sn)| Bhs::LoginRequest(
                    LoginRequest {
                        transit: f[0],
                        cont: f[1],
                        csg,
                        nsg,
                        version_max: v[0],
                        version_min: v[1],
                        isid,
                        tsih,
                        itt,
                        cid,
                        cmd_sn,
                        exp_stat_sn,
                    }
                )
            ),
        (any::<[bool; 3]>(), any_lun(), u(), u(), u(), u()).prop_map(
            |(f, lun, itt, ttt, cmd_sn, exp_stat_sn)| {
                Bhs::TextRequest(TextRequest {
                    immediate: f[0],
                    final_: f[1],
                    cont: f[2],
                    lun,
                    itt,
                    ttt,
                    cmd_sn,
                    exp_stat_sn,
                })
            }
        ),
        (any::<bool>(), any_lun(), u(), u(), u(), u(), u()).prop_map(
            |(final_, lun, itt, ttt, exp_stat_sn, data_sn, buffer_offset)| Bhs::DataOut(DataOut {
                final_,
                lun,
                itt,
                ttt,
                exp_stat_sn,
                data_sn,
                buffer_offset,
            })
        ),
        (any::<bool>(), 0u8..128, u(), any::<u16>(), u(), u()).prop_map(
            |(immediate, reason, itt, cid, cmd_sn, exp_stat_sn)| {
                Bhs::LogoutRequest(LogoutRequest {
                    immediate,
                    reason,
                    itt,
                    cid,
                    cmd_sn,
                    exp_stat_sn,
                })
            }
        ),
        (0u8..16, any_lun(), u(), u(), u(), u(), u()).prop_map(
            |(snack_type, lun, itt, ttt, exp_stat_sn, beg_run, run_length)| Bhs::SnackRequest(
                SnackRequest {
                    snack_type,
                    lun,
                    itt,
                    ttt,
                    exp_stat_sn,
                    beg_run,
                    run_length,
                }
            )
        ),
        (any_lun(), u(), u(), u(), u(), u()).prop_map(
            |(lun, itt, ttt, stat_sn, exp_cmd_sn, max_cmd_sn)| {
                Bhs::NopIn(NopIn {
                    lun,
                    itt,
                    ttt,
                    stat_sn,
                    exp_cmd_sn,
                    max_cmd_sn,
                })
            }
        ),
        (any::<[bool; 4]>(), any::<[u8; 2]>(), any::<[u32; 8]>()).prop_map(|(f, rs, n)| {
            Bhs::ScsiResponse(ScsiResponse {
                bidi_overflow: f[0],
                bidi_underflow: f[1],
                overflow: f[2],
                underflow: f[3],
                response: rs[0],
                status: rs[1],
                itt: n[0],
                snack_tag: n[1],
                stat_sn: n[2],
                exp_cmd_sn: n[3],
                max_cmd_sn: n[4],
                exp_data_sn: n[5],
                bidi_residual: n[6],
                residual: n[7],
            })
        }),
        (any::<u8>(), u(), u(), u(), u()).prop_map(
            |(response, itt, stat_sn, exp_cmd_sn, max_cmd_sn)| {
                Bhs::TaskMgmtResponse(TaskMgmtResponse {
                    response,
                    itt,
                    stat_sn,
                    exp_cmd_sn,
                    max_cmd_sn,
                })
            }
        ),
        (
            any::<[bool; 2]>(),
            any_stage(),
            any_stage(),
            any::<[u8; 4]>(),
            any::<[u8; 6]>(),
            any::<u16>(),
            any::<[u32; 4]>()
        )
            .prop_map(|(f, csg, nsg, v, isid, tsih, n)| Bhs::LoginResponse(
                LoginResponse {
                    transit: f[0],
                    cont: f[1],
                    csg,
                    nsg,
                    version_max: v[0],
                    version_active: v[1],
                    isid,
                    tsih,
                    itt: n[0],
                    stat_sn: n[1],
                    exp_cmd_sn: n[2],
                    max_cmd_sn: n[3],
                    status_class: v[2],
                    status_detail: v[3],
                }
            )),
        (any::<[bool; 2]>(), any_lun(), any::<[u32; 5]>()).prop_map(|(f, lun, n)| {
            Bhs::TextResponse(TextResponse {
                final_: f[0],
                cont: f[1],
                lun,
                itt: n[0],
                ttt: n[1],
                stat_sn: n[2],
                exp_cmd_sn: n[3],
                max_cmd_sn: n[4],
            })
        }),
        (
            any::<[bool; 4]>(),
            any::<Option<u8>>(),
            any_lun(),
            any::<[u32; 9]>()
        )
            .prop_map(|(f, status, lun, n)| {
                Bhs::DataIn(DataIn {
                    final_: f[0],
                    ack: f[1],
                    overflow: f[2],
                    underflow: f[3],
                    status,
                    lun,
                    itt: n[0],
                    ttt: n[1],
                    stat_sn: n[2],
                    exp_cmd_sn: n[3],
                    max_cmd_sn: n[4],
                    data_sn: n[5],
                    buffer_offset: n[6],
                    residual: n[7],
                })
            }),
        (any::<u8>(), any::<[u32; 4]>(), any::<[u16; 2]>()).prop_map(|(response, n, t)| {
            Bhs::LogoutResponse(LogoutResponse {
                response,
                itt: n[0],
                stat_sn: n[1],
                exp_cmd_sn: n[2],
                max_cmd_sn: n[3],
                time2wait: t[0],
                time2retain: t[1],
            })
        }),
        (any_lun(), any::<[u32; 8]>()).prop_map(|(lun, n)| {
            Bhs::R2t(R2t {
                lun,
                itt: n[0],
                ttt: n[1],
                stat_sn: n[2],
                exp_cmd_sn: n[3],
                max_cmd_sn: n[4],
                r2t_sn: n[5],
                buffer_offset: n[6],
                desired_length: n[7],
            })
        }),
        (
            any_lun(),
            any::<[u32; 3]>(),
            any::<[u8; 2]>(),
            any::<[u16; 3]>()
        )
            .prop_map(|(lun, n, e, p)| {
                Bhs::AsyncMessage(AsyncMessage {
                    lun,
                    stat_sn: n[0],
                    exp_cmd_sn: n[1],
                    max_cmd_sn: n[2],
                    event: e[0],
                    vcode: e[1],
                    param1: p[0],
                    param2: p[1],
                    param3: p[2],
                })
            }),
        (any::<u8>(), any::<[u32; 4]>()).prop_map(|(reason, n)| {
            Bhs::Reject(Reject {
                reason,
                stat_sn: n[0],
                exp_cmd_sn: n[1],
                max_cmd_sn: n[2],
                data_sn_r2t_sn: n[3],
            })
        }),
    ]
}

fn any_digests() -> impl Strategy<Value = Digests> {
    (any::<bool>(), any::<bool>()).prop_map(|(header, data)| Digests { header, data })
}

proptest! {
    #[test]
    fn typed_pdu_roundtrip(
        bhs in any_bhs(),
        ahs_words in proptest::collection::vec(any::<[u8; 4]>(), 0..4),
        data in proptest::collection::vec(any::<u8>(), 0..300),
        d in any_digests(),
    ) {
        let pdu = Pdu { bhs, ahs: Bytes::from(ahs_words.concat()), data: Bytes::from(data) };
        let wire = pdu.to_bytes(d).unwrap();
        prop_assert_eq!(wire.len(), pdu.encoded_len(d));
        prop_assert_eq!(wire.len() % 4, 0);
        prop_assert_eq!(check_frame(&wire, d, 1 << 20).unwrap(), FrameCheck::Complete(wire.len()));
        let back = decode_frame(wire.freeze(), d).unwrap();
        prop_assert_eq!(back, pdu);
    }

    #[test]
    fn raw_header_decode_is_stable(raw in any::<[u8; 48]>()) {
        let mut raw = raw;
        raw[4] = 0;
        raw[5..8].fill(0);
        let first = Bhs::decode(&raw);
        let mut again = [0u8; 48];
        first.encode(&mut again);
        prop_assert_eq!(Bhs::decode(&again), first);
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), d in any_digests()) {
        let dec = Decoder { digests: d, max_data: 256 };
        let mut buf = BytesMut::from(&bytes[..]);
        for _ in 0..8 {
            match dec.decode(&mut buf) {
                Ok(Some(p)) => { let _ = p.ahs_segments(); let _ = p.full_cdb(); }
                Ok(None) | Err(_) => break,
            }
        }
    }

    #[test]
    fn partial_frames_ask_for_more(data in proptest::collection::vec(any::<u8>(), 1..100), cut in 0usize..1000) {
        let pdu = Pdu::with_data(Bhs::NopOut(NopOut { immediate: true, lun: [0; 8], itt: 1, ttt: RESERVED_TAG, cmd_sn: 1, exp_stat_sn: 1 }), data);
        let d = Digests { header: true, data: true };
        let wire = pdu.to_bytes(d).unwrap();
        let cut = cut % wire.len();
        match check_frame(&wire[..cut], d, 1 << 20).unwrap() {
            FrameCheck::Incomplete(n) => prop_assert!(n > 0 && cut + n <= wire.len()),
            FrameCheck::Complete(_) => prop_assert!(false, "a cut frame is never complete"),
        }
    }
}

#[test]
fn digests_are_checked() {
    let pdu = Pdu::with_data(
        Bhs::NopOut(NopOut {
            immediate: false,
            lun: [0; 8],
            itt: 7,
            ttt: RESERVED_TAG,
            cmd_sn: 1,
            exp_stat_sn: 1,
        }),
        &b"ping"[..],
    );
    let d = Digests {
        header: true,
        data: true,
    };
    let wire = pdu.to_bytes(d).unwrap();
    let mut bad_header = wire.clone();
    bad_header[20] ^= 1;
    assert_eq!(
        decode_frame(bad_header.freeze(), d),
        Err(PduError::HeaderDigest)
    );
    let mut bad_data = wire.clone();
    bad_data[48 + 4] ^= 1;
    assert!(matches!(
        decode_frame(bad_data.freeze(), d),
        Err(PduError::DataDigest { .. })
    ));
}

#[test]
fn oversized_segment_is_refused_before_buffering() {
    let mut hdr = [0u8; 48];
    hdr[0] = 0x01;
    hdr[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    assert_eq!(
        check_frame(&hdr, Digests::default(), 8192),
        Err(PduError::DataSegmentTooLong {
            len: 0xff_ffff,
            max: 8192
        })
    );
}

#[test]
fn unknown_opcode_is_kept_raw() {
    let mut hdr = [0u8; 48];
    hdr[0] = 0x1c;
    hdr[16..20].copy_from_slice(&5u32.to_be_bytes());
    let b = Bhs::decode(&hdr);
    assert_eq!(b.opcode(), None);
    assert_eq!(b.itt(), 5);
}

#[test]
fn extended_cdb_and_bidi_ahs() {
    // 32-byte CDB: 16 in the BHS, 16 more in an extended-CDB AHS (AHSLength 17 counts the
    // reserved byte; 3 + 17 = 20 bytes, no padding), then a bidi read length AHS.
    let mut ahs = vec![0u8, 17, 1, 0];
    ahs.extend(16u8..32);
    ahs.extend([0, 5, 2, 0, 0, 0, 0x10, 0]);
    let mut cdb = [0u8; 16];
    for (i, c) in cdb.iter_mut().enumerate() {
        *c = i as u8;
    }
    let pdu = Pdu {
        bhs: Bhs::ScsiCommand(ScsiCommand {
            immediate: false,
            final_: true,
            read: true,
            write: false,
            attr: 1,
            lun: [0; 8],
            itt: 1,
            expected_data_length: 0,
            cmd_sn: 0,
            exp_stat_sn: 0,
            cdb,
        }),
        ahs: Bytes::from(ahs),
        data: Bytes::new(),
    };
    let full = pdu.full_cdb().unwrap();
    assert_eq!(full, (0u8..32).collect::<Vec<u8>>());
    assert_eq!(pdu.bidi_read_length(), Some(0x1000));
}
