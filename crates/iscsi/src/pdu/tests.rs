//! Tests of the PDU codec (RFC 7143 §11, §12.1): a round-trip property per PDU type, framing,
//! digests, AHS and robustness against arbitrary bytes.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

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

// One strategy per PDU type: every field arbitrary, masked fields within their bits.

fn any_nop_out() -> impl Strategy<Value = NopOut> {
    (any::<bool>(), any_lun(), any::<[u32; 4]>()).prop_map(|(immediate, lun, n)| NopOut {
        immediate,
        lun,
        itt: n[0],
        ttt: n[1],
        cmd_sn: n[2],
        exp_stat_sn: n[3],
    })
}

fn any_scsi_command() -> impl Strategy<Value = ScsiCommand> {
    (
        any::<[bool; 4]>(),
        0u8..8,
        any_lun(),
        any::<[u32; 4]>(),
        any::<[u8; 16]>(),
    )
        .prop_map(|(f, attr, lun, n, cdb)| ScsiCommand {
            immediate: f[0],
            final_: f[1],
            read: f[2],
            write: f[3],
            attr,
            lun,
            itt: n[0],
            expected_data_length: n[1],
            cmd_sn: n[2],
            exp_stat_sn: n[3],
            cdb,
        })
}

fn any_task_mgmt_request() -> impl Strategy<Value = TaskMgmtRequest> {
    (any::<bool>(), 0u8..128, any_lun(), any::<[u32; 6]>()).prop_map(
        |(immediate, function, lun, n)| TaskMgmtRequest {
            immediate,
            function,
            lun,
            itt: n[0],
            referenced_task_tag: n[1],
            cmd_sn: n[2],
            exp_stat_sn: n[3],
            ref_cmd_sn: n[4],
            exp_data_sn: n[5],
        },
    )
}

fn any_login_request() -> impl Strategy<Value = LoginRequest> {
    (
        any::<[bool; 2]>(),
        any_stage(),
        any_stage(),
        any::<[u8; 2]>(),
        any::<[u8; 6]>(),
        any::<[u16; 2]>(),
        any::<[u32; 3]>(),
    )
        .prop_map(|(f, csg, nsg, v, isid, s, n)| LoginRequest {
            transit: f[0],
            cont: f[1],
            csg,
            nsg,
            version_max: v[0],
            version_min: v[1],
            isid,
            tsih: s[0],
            itt: n[0],
            cid: s[1],
            cmd_sn: n[1],
            exp_stat_sn: n[2],
        })
}

fn any_text_request() -> impl Strategy<Value = TextRequest> {
    (any::<[bool; 3]>(), any_lun(), any::<[u32; 4]>()).prop_map(|(f, lun, n)| TextRequest {
        immediate: f[0],
        final_: f[1],
        cont: f[2],
        lun,
        itt: n[0],
        ttt: n[1],
        cmd_sn: n[2],
        exp_stat_sn: n[3],
    })
}

fn any_data_out() -> impl Strategy<Value = DataOut> {
    (any::<bool>(), any_lun(), any::<[u32; 5]>()).prop_map(|(final_, lun, n)| DataOut {
        final_,
        lun,
        itt: n[0],
        ttt: n[1],
        exp_stat_sn: n[2],
        data_sn: n[3],
        buffer_offset: n[4],
    })
}

fn any_logout_request() -> impl Strategy<Value = LogoutRequest> {
    (any::<bool>(), 0u8..128, any::<u16>(), any::<[u32; 3]>()).prop_map(
        |(immediate, reason, cid, n)| LogoutRequest {
            immediate,
            reason,
            itt: n[0],
            cid,
            cmd_sn: n[1],
            exp_stat_sn: n[2],
        },
    )
}

fn any_snack_request() -> impl Strategy<Value = SnackRequest> {
    (0u8..16, any_lun(), any::<[u32; 5]>()).prop_map(|(snack_type, lun, n)| SnackRequest {
        snack_type,
        lun,
        itt: n[0],
        ttt: n[1],
        exp_stat_sn: n[2],
        beg_run: n[3],
        run_length: n[4],
    })
}

fn any_nop_in() -> impl Strategy<Value = NopIn> {
    (any_lun(), any::<[u32; 5]>()).prop_map(|(lun, n)| NopIn {
        lun,
        itt: n[0],
        ttt: n[1],
        stat_sn: n[2],
        exp_cmd_sn: n[3],
        max_cmd_sn: n[4],
    })
}

fn any_scsi_response() -> impl Strategy<Value = ScsiResponse> {
    (any::<[bool; 4]>(), any::<[u8; 2]>(), any::<[u32; 8]>()).prop_map(|(f, rs, n)| ScsiResponse {
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
}

fn any_task_mgmt_response() -> impl Strategy<Value = TaskMgmtResponse> {
    (any::<u8>(), any::<[u32; 4]>()).prop_map(|(response, n)| TaskMgmtResponse {
        response,
        itt: n[0],
        stat_sn: n[1],
        exp_cmd_sn: n[2],
        max_cmd_sn: n[3],
    })
}

fn any_login_response() -> impl Strategy<Value = LoginResponse> {
    (
        any::<[bool; 2]>(),
        any_stage(),
        any_stage(),
        any::<[u8; 4]>(),
        any::<[u8; 6]>(),
        any::<u16>(),
        any::<[u32; 4]>(),
    )
        .prop_map(|(f, csg, nsg, v, isid, tsih, n)| LoginResponse {
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
        })
}

fn any_text_response() -> impl Strategy<Value = TextResponse> {
    (any::<[bool; 2]>(), any_lun(), any::<[u32; 5]>()).prop_map(|(f, lun, n)| TextResponse {
        final_: f[0],
        cont: f[1],
        lun,
        itt: n[0],
        ttt: n[1],
        stat_sn: n[2],
        exp_cmd_sn: n[3],
        max_cmd_sn: n[4],
    })
}

fn any_data_in() -> impl Strategy<Value = DataIn> {
    (
        any::<[bool; 4]>(),
        any::<Option<u8>>(),
        any_lun(),
        any::<[u32; 8]>(),
    )
        .prop_map(|(f, status, lun, n)| DataIn {
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
}

fn any_logout_response() -> impl Strategy<Value = LogoutResponse> {
    (any::<u8>(), any::<[u32; 4]>(), any::<[u16; 2]>()).prop_map(|(response, n, t)| {
        LogoutResponse {
            response,
            itt: n[0],
            stat_sn: n[1],
            exp_cmd_sn: n[2],
            max_cmd_sn: n[3],
            time2wait: t[0],
            time2retain: t[1],
        }
    })
}

fn any_r2t() -> impl Strategy<Value = R2t> {
    (any_lun(), any::<[u32; 8]>()).prop_map(|(lun, n)| R2t {
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
}

fn any_async_message() -> impl Strategy<Value = AsyncMessage> {
    (
        any_lun(),
        any::<[u32; 3]>(),
        any::<[u8; 2]>(),
        any::<[u16; 3]>(),
    )
        .prop_map(|(lun, n, e, p)| AsyncMessage {
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
}

fn any_reject() -> impl Strategy<Value = Reject> {
    (any::<u8>(), any::<[u32; 4]>()).prop_map(|(reason, n)| Reject {
        reason,
        stat_sn: n[0],
        exp_cmd_sn: n[1],
        max_cmd_sn: n[2],
        data_sn_r2t_sn: n[3],
    })
}

fn any_bhs() -> impl Strategy<Value = Bhs> {
    prop_oneof![
        any_nop_out().prop_map(Bhs::NopOut),
        any_scsi_command().prop_map(Bhs::ScsiCommand),
        any_task_mgmt_request().prop_map(Bhs::TaskMgmtRequest),
        any_login_request().prop_map(Bhs::LoginRequest),
        any_text_request().prop_map(Bhs::TextRequest),
        any_data_out().prop_map(Bhs::DataOut),
        any_logout_request().prop_map(Bhs::LogoutRequest),
        any_snack_request().prop_map(Bhs::SnackRequest),
        any_nop_in().prop_map(Bhs::NopIn),
        any_scsi_response().prop_map(Bhs::ScsiResponse),
        any_task_mgmt_response().prop_map(Bhs::TaskMgmtResponse),
        any_login_response().prop_map(Bhs::LoginResponse),
        any_text_response().prop_map(Bhs::TextResponse),
        any_data_in().prop_map(Bhs::DataIn),
        any_logout_response().prop_map(Bhs::LogoutResponse),
        any_r2t().prop_map(Bhs::R2t),
        any_async_message().prop_map(Bhs::AsyncMessage),
        any_reject().prop_map(Bhs::Reject),
    ]
}

/// One round-trip property per PDU type, through the whole frame: the encoding of arbitrary
/// field values (with arbitrary AHS, data and digests) carries the type's opcode, decodes to
/// exactly those values, and encoding the decoded PDU gives the same bytes again.
macro_rules! round_trip_per_type {
    ($($test:ident: $strategy:expr => $variant:ident,)*) => {
        proptest! {
            $(
                #[test]
                fn $test(fields in $strategy, ahs in any_ahs(), data in any_data(), d in any_digests()) {
                    let pdu = Pdu { bhs: Bhs::$variant(fields.clone()), ahs, data };
                    let wire = pdu.to_bytes(d).unwrap().freeze();
                    prop_assert_eq!(Opcode::from_u8(wire[0]), Some(Opcode::$variant));
                    let back = decode_frame(wire.clone(), d).unwrap();
                    let Bhs::$variant(decoded) = &back.bhs else {
                        return Err(TestCaseError::fail("decoded as another PDU type"));
                    };
                    prop_assert_eq!(decoded, &fields);
                    prop_assert_eq!(&back, &pdu);
                    prop_assert_eq!(&back.to_bytes(d).unwrap()[..], &wire[..]);
                }
            )*
        }
    };
}

round_trip_per_type! {
    nop_out_round_trips: any_nop_out() => NopOut,
    scsi_command_round_trips: any_scsi_command() => ScsiCommand,
    task_mgmt_request_round_trips: any_task_mgmt_request() => TaskMgmtRequest,
    login_request_round_trips: any_login_request() => LoginRequest,
    text_request_round_trips: any_text_request() => TextRequest,
    data_out_round_trips: any_data_out() => DataOut,
    logout_request_round_trips: any_logout_request() => LogoutRequest,
    snack_request_round_trips: any_snack_request() => SnackRequest,
    nop_in_round_trips: any_nop_in() => NopIn,
    scsi_response_round_trips: any_scsi_response() => ScsiResponse,
    task_mgmt_response_round_trips: any_task_mgmt_response() => TaskMgmtResponse,
    login_response_round_trips: any_login_response() => LoginResponse,
    text_response_round_trips: any_text_response() => TextResponse,
    data_in_round_trips: any_data_in() => DataIn,
    logout_response_round_trips: any_logout_response() => LogoutResponse,
    r2t_round_trips: any_r2t() => R2t,
    async_message_round_trips: any_async_message() => AsyncMessage,
    reject_round_trips: any_reject() => Reject,
}

fn any_ahs() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<[u8; 4]>(), 0..4).prop_map(|w| Bytes::from(w.concat()))
}

fn any_data() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn any_digests() -> impl Strategy<Value = Digests> {
    (any::<bool>(), any::<bool>()).prop_map(|(header, data)| Digests { header, data })
}

proptest! {
    #[test]
    fn typed_pdu_roundtrip(
        bhs in any_bhs(),
        ahs in any_ahs(),
        data in any_data(),
        d in any_digests(),
    ) {
        let pdu = Pdu { bhs, ahs, data };
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

#[test]
fn itt_is_the_tag_the_header_carries() {
    let nop = Bhs::NopOut(NopOut {
        immediate: true,
        lun: [0; 8],
        itt: 0x1234_5678,
        ttt: RESERVED_TAG,
        cmd_sn: 1,
        exp_stat_sn: 1,
    });
    assert_eq!(nop.itt(), 0x1234_5678);
    let reject = Bhs::Reject(Reject {
        reason: reject_reason::PROTOCOL_ERROR,
        stat_sn: 1,
        exp_cmd_sn: 1,
        max_cmd_sn: 1,
        data_sn_r2t_sn: 0,
    });
    assert_eq!(reject.itt(), RESERVED_TAG);
}
