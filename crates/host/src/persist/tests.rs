//! `ironlun host persist`: the options as sg_persist spells them, every refusal (one line,
//! nothing sent), the parameter lists they produce (SPC-4 §6.16.3, §6.16.4), and the reports
//! in sg_persist's text and as JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use ironlun_initiator::pr::{
    Capabilities, FullStatus, FullStatusDescriptor, PrType, ReadKeys, ReadReservation, Reservation,
    TransportId,
};
use ironlun_initiator::{Bytes, CommandResult, Residual};
use ironlun_scsi::sense::{asc, key};
use ironlun_scsi::{status, Sense};
use serde_json::json;

use super::format::{output, Report};
use super::*;
use crate::ctx::Ctx;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    a: PersistArgs,
}

/// Nothing listens on port 1: a plan that got as far as connecting fails differently.
const URL: &str = "iscsi://127.0.0.1:1/iqn.2026-11.org.ironlun:default/0";

fn args(argv: &[&str]) -> PersistArgs {
    let all = std::iter::once("persist")
        .chain(argv.iter().copied())
        .chain([URL]);
    match Cli::try_parse_from(all) {
        Ok(c) => c.a,
        Err(e) => panic!("clap refused {argv:?}: {e}"),
    }
}

fn plan(argv: &[&str]) -> Plan {
    match Plan::from_args(&args(argv)) {
        Ok(p) => p,
        Err(e) => panic!("{argv:?} refused: {e}"),
    }
}

/// The refusal of `argv`: one line that names `option`.
fn refused(argv: &[&str], option: &str) -> String {
    match Plan::from_args(&args(argv)) {
        Ok(p) => panic!("{argv:?} accepted: {p:?}"),
        Err(e) => {
            assert!(!e.0.contains('\n'), "{argv:?}: not one line: {e}");
            assert!(
                e.0.contains(option),
                "{argv:?}: '{e}' does not name {option}"
            );
            e.0
        }
    }
}

const ISID: [u8; 6] = [0x80, 0x00, 0x49, 0x4c, 0x00, 0x01];

// ---- service actions ----

#[test]
fn no_service_action_is_read_keys_as_sg_persist() {
    let p = plan(&[]);
    assert_eq!(p.action, Action::In(InAction::ReadKeys));
    assert!(p.inquiry);
    assert_eq!(plan(&["-i"]).action, Action::In(InAction::ReadKeys));
    assert!(!plan(&["-n"]).inquiry);
    assert!(!plan(&["--no-inquiry"]).inquiry);
}

#[test]
fn pr_in_service_actions_by_short_and_long_option() {
    for (short, long, a) in [
        ("-k", "--read-keys", InAction::ReadKeys),
        ("-r", "--read-reservation", InAction::ReadReservation),
        ("-c", "--report-capabilities", InAction::ReportCapabilities),
        ("-s", "--read-full-status", InAction::ReadFullStatus),
    ] {
        assert_eq!(plan(&[short]).action, Action::In(a));
        assert_eq!(plan(&["--in", long]).action, Action::In(a));
        assert_eq!(a.option(), &long[2..]);
    }
    assert_eq!(
        plan(&["--read-status"]).action,
        Action::In(InAction::ReadFullStatus)
    );
    assert_eq!(
        plan(&["--read_keys"]).action,
        Action::In(InAction::ReadKeys)
    );
}

#[test]
fn pr_out_service_actions_by_short_and_long_option() {
    let cases: [(&str, &str, OutAction, &[&str]); 9] = [
        ("-G", "--register", OutAction::Register, &["-S", "1"]),
        (
            "-I",
            "--register-ignore",
            OutAction::RegisterIgnore,
            &["-S", "1"],
        ),
        (
            "-R",
            "--reserve",
            OutAction::Reserve,
            &["-K", "1", "-T", "1"],
        ),
        (
            "-L",
            "--release",
            OutAction::Release,
            &["-K", "1", "-T", "1"],
        ),
        ("-C", "--clear", OutAction::Clear, &["-K", "1"]),
        (
            "-P",
            "--preempt",
            OutAction::Preempt,
            &["-K", "1", "-S", "2", "-T", "1"],
        ),
        (
            "-A",
            "--preempt-abort",
            OutAction::PreemptAbort,
            &["-K", "1", "-T", "1"],
        ),
        (
            "-M",
            "--register-move",
            OutAction::RegisterMove,
            &["-K", "1", "-S", "2", "-X", "iqn.x"],
        ),
        (
            "-z",
            "--replace-lost",
            OutAction::ReplaceLost,
            &["-K", "1", "-T", "1"],
        ),
    ];
    for (short, long, a, params) in cases {
        let mut argv = vec!["-o", short];
        argv.extend_from_slice(params);
        assert_eq!(plan(&argv).action, Action::Out(a), "{argv:?}");
        argv[0] = "--out";
        argv[1] = long;
        assert_eq!(plan(&argv).action, Action::Out(a), "{argv:?}");
        assert_eq!(a.option(), &long[2..]);
    }
}

#[test]
fn in_and_out_together_are_refused() {
    refused(&["-i", "-o", "-G"], "--in");
}

#[test]
fn a_pr_out_action_without_out_is_refused_as_sg_persist() {
    let e = refused(&["-G", "-S", "1"], "--register");
    assert!(e.contains("--out"), "{e}");
    refused(&["-i", "--reserve", "-T", "1"], "--reserve");
}

#[test]
fn out_without_a_pr_out_action_is_refused() {
    let e = refused(&["-o"], "--out");
    assert!(e.contains("--register-move"), "lists the actions: {e}");
}

#[test]
fn two_service_actions_are_refused() {
    refused(&["-k", "-r"], "--read-reservation");
    refused(&["-o", "-G", "-R"], "--reserve");
    refused(&["-o", "-G", "-k"], "--read-keys");
}

#[test]
fn pr_out_parameters_with_pr_in_are_refused() {
    for (opt, argv) in [
        ("--param-rk", vec!["-K", "1"]),
        ("--param-sark", vec!["-S", "1"]),
        ("--prout-type", vec!["-T", "1"]),
        ("--param-aptpl", vec!["-Z"]),
        ("--param-alltgpt", vec!["-Y"]),
        ("--transport-id", vec!["-X", "iqn.x"]),
        ("--spec-i-pt", vec!["--spec-i-pt"]),
        ("--unreg", vec!["-U"]),
        ("--relative-target-port", vec!["-Q", "1"]),
    ] {
        let mut a = vec!["-s"];
        a.extend(argv);
        refused(&a, opt);
    }
}

#[test]
fn parameters_the_action_does_not_use_are_refused() {
    for (argv, opt) in [
        (vec!["-o", "-G", "-T", "1"], "--prout-type"),
        (vec!["-o", "-C", "-K", "1", "-T", "1"], "--prout-type"),
        (vec!["-o", "-I", "-K", "1", "-S", "2"], "--param-rk"),
        (
            vec!["-o", "-R", "-K", "1", "-S", "2", "-T", "1"],
            "--param-sark",
        ),
        (
            vec!["-o", "-L", "-K", "1", "-T", "1", "-Z"],
            "--param-aptpl",
        ),
        (
            vec!["-o", "-M", "-S", "2", "-X", "iqn.x", "-Y"],
            "--param-alltgpt",
        ),
        (
            vec!["-o", "-R", "-K", "1", "-T", "1", "-X", "iqn.x"],
            "--transport-id",
        ),
        (vec!["-o", "-I", "-S", "2", "-X", "iqn.x"], "--transport-id"),
        (vec!["-o", "-I", "-S", "2", "--spec-i-pt"], "--spec-i-pt"),
        (vec!["-o", "-G", "-S", "2", "-U"], "--unreg"),
        (
            vec!["-o", "-G", "-S", "2", "-Q", "1"],
            "--relative-target-port",
        ),
    ] {
        let e = refused(&argv, opt);
        assert!(e.contains("only by"), "says who uses it: {e}");
    }
}

#[test]
fn actions_that_name_a_reservation_type_need_prout_type() {
    for a in ["-R", "-L", "-P", "-A", "-z"] {
        refused(&["-o", a, "-K", "1"], "--prout-type");
    }
}

#[test]
fn register_and_move_needs_one_transport_id_and_a_destination_key() {
    refused(&["-o", "-M", "-K", "1", "-S", "2"], "--transport-id");
    refused(
        &["-o", "-M", "-K", "1", "-S", "2", "-X", "iqn.a;iqn.b"],
        "--transport-id",
    );
    refused(&["-o", "-M", "-K", "1", "-X", "iqn.a"], "--param-sark");
    refused(
        &["-o", "-M", "-K", "1", "-S", "0", "-X", "iqn.a"],
        "--param-sark",
    );
}

#[test]
fn spec_i_pt_needs_transport_ids_and_transport_ids_imply_it() {
    refused(&["-o", "-G", "-S", "1", "--spec-i-pt"], "--transport-id");
    let p = plan(&["-o", "-G", "-S", "1", "-X", "iqn.b"]);
    assert!(p.spec_i_pt);
    let p = plan(&["-o", "-G", "-S", "1", "--spec-i-pt", "-X", "iqn.b"]);
    assert!(p.spec_i_pt);
    assert!(!plan(&["-o", "-G", "-S", "1"]).spec_i_pt);
}

// ---- values ----

#[test]
fn keys_are_hex_as_sg_persist() {
    let p = plan(&[
        "-o",
        "-P",
        "-K",
        "abc",
        "-S",
        "0xDEADbeef00000001",
        "-T",
        "1",
    ]);
    assert_eq!((p.rk, p.sark), (0xabc, 0xdead_beef_0000_0001));
    assert_eq!(plan(&["-o", "-C", "--param-rk=1234"]).rk, 0x1234);
}

#[test]
fn bad_keys_are_refused() {
    for bad in ["", "xyz", "0x", "12345678901234567", "-1", "1 2"] {
        let e = refused(&["-o", "-C", &format!("--param-rk={bad}")], "--param-rk");
        assert!(e.contains("hex"), "{e}");
        refused(
            &["-o", "-G", &format!("--param-sark={bad}")],
            "--param-sark",
        );
    }
}

#[test]
fn prout_type_by_number_or_name() {
    for (v, t) in [
        ("1", PrType::WriteExclusive),
        ("3", PrType::ExclusiveAccess),
        ("5", PrType::WriteExclusiveRegistrantsOnly),
        ("0x6", PrType::ExclusiveAccessRegistrantsOnly),
        ("7", PrType::WriteExclusiveAllRegistrants),
        ("8", PrType::ExclusiveAccessAllRegistrants),
        ("wr-ex", PrType::WriteExclusive),
        ("ex-ac", PrType::ExclusiveAccess),
        ("wr-ex-ro", PrType::WriteExclusiveRegistrantsOnly),
        ("EX_AC_RO", PrType::ExclusiveAccessRegistrantsOnly),
        ("wr-ex-ar", PrType::WriteExclusiveAllRegistrants),
        ("ex-ac-ar", PrType::ExclusiveAccessAllRegistrants),
    ] {
        let p = plan(&["-o", "-R", "-K", "1", "-T", v]);
        assert_eq!(p.prout_type, Some(t), "{v}");
    }
}

#[test]
fn bad_prout_types_are_refused_with_the_valid_ones() {
    for bad in ["0", "2", "4", "9", "10", "wr", "", "0x"] {
        let e = refused(&["-o", "-R", "-K", "1", "-T", bad], "--prout-type");
        assert!(e.contains("wr-ex-ro") && e.contains('8'), "{e}");
    }
}

#[test]
fn relative_target_port_is_hex_one_to_ffff() {
    let base = ["-o", "-M", "-S", "2", "-X", "iqn.a", "-Q"];
    let with = |v: &str| {
        let mut a = base.to_vec();
        a.push(v);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let p = |v: &str| {
        let a = with(v);
        let r: Vec<&str> = a.iter().map(String::as_str).collect();
        plan(&r).rtpi
    };
    assert_eq!(p("10"), Some(0x10));
    assert_eq!(p("0xffff"), Some(0xffff));
    for bad in ["0", "10000", "zz", ""] {
        let a = with(bad);
        let r: Vec<&str> = a.iter().map(String::as_str).collect();
        refused(&r, "--relative-target-port");
    }
    assert_eq!(
        plan(&["-o", "-M", "-S", "2", "-X", "iqn.a"]).rtpi,
        None,
        "default: the session's own port"
    );
}

// ---- TransportIDs ----

fn tids(values: &[&str]) -> Vec<TransportId> {
    let mut argv = vec!["-o", "-G", "-S", "1"];
    for v in values {
        argv.push("-X");
        argv.push(v);
    }
    plan(&argv).transport_ids
}

#[test]
fn transport_ids_in_sg_persists_iscsi_forms() {
    assert_eq!(
        tids(&["iqn.2026-11.org.ironlun:b"]),
        vec![TransportId::iscsi("iqn.2026-11.org.ironlun:b")]
    );
    assert_eq!(
        tids(&["iqn.2026-11.org.ironlun:b,i,0x8000494C0001"]),
        vec![TransportId::iscsi_port("iqn.2026-11.org.ironlun:b", ISID)]
    );
    assert_eq!(
        tids(&["eui.0123456789abcdef"]),
        vec![TransportId::iscsi("eui.0123456789abcdef")]
    );
}

#[test]
fn several_transport_ids_by_semicolon_comma_or_repetition() {
    let a = TransportId::iscsi("iqn.a");
    let b = TransportId::iscsi_port("iqn.b", ISID);
    let c = TransportId::iscsi("naa.1234");
    let want = vec![a.clone(), b.clone(), c.clone()];
    assert_eq!(tids(&["iqn.a;iqn.b,i,0x8000494c0001;naa.1234"]), want);
    assert_eq!(tids(&["iqn.a,iqn.b,i,0x8000494c0001,naa.1234"]), want);
    assert_eq!(tids(&["iqn.a", "iqn.b,i,0x8000494c0001", "naa.1234"]), want);
    assert_eq!(tids(&["iqn.a ; iqn.b,i,0x8000494c0001"]), vec![a, b]);
}

#[test]
fn transport_ids_as_hex_bytes() {
    let t = TransportId::iscsi_port("iqn.2026-11.org.ironlun:b", ISID);
    let bytes = t.encode();
    let commas: Vec<String> = bytes.iter().map(|b| format!("{b:x}")).collect();
    let spaces: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    let run: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(tids(&[&commas.join(",")]), vec![t.clone()]);
    assert_eq!(tids(&[&spaces.join(" ")]), vec![t.clone()]);
    assert_eq!(tids(&[&run]), vec![t.clone()]);
    // Another protocol's 24 bytes (SAS, protocol 6) are kept as given.
    let mut sas = vec![0x06u8, 0, 0, 0, 0x50, 0, 0, 0, 0, 0, 0, 1];
    sas.resize(24, 0);
    let hex: String = sas.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        tids(&[&hex]),
        vec![TransportId::Other {
            protocol: 6,
            bytes: sas
        }]
    );
}

#[test]
fn bad_transport_ids_are_refused() {
    let good = TransportId::iscsi("iqn.b").encode();
    let mut longer = good.clone();
    longer.extend_from_slice(&[0, 0, 0, 0]);
    let longer: String = longer.iter().map(|b| format!("{b:02x}")).collect();
    for (bad, why) in [
        ("iqn.b,i,0x8000494c00", "12 hex digits"),
        ("iqn.b,i,0x8000494c0001zz", "12 hex digits"),
        ("iqn.b,i,8000494c0001", "without 0x"),
        ("iqn.b c", "' '"),
        ("iqn.b,t,0x1", "','"),
        ("hello", "neither"),
        ("45,00,00", "not a TransportID"),
        ("450,0", "neither"),
        (longer.as_str(), "bytes given"),
        ("iqn.a;;iqn.b", "empty"),
    ] {
        let e = refused(&["-o", "-G", "-S", "1", "-X", bad], "--transport-id");
        assert!(e.contains(why), "{bad}: {e}");
    }
    let long = format!("iqn.{}", "a".repeat(230));
    let e = refused(&["-o", "-G", "-S", "1", "-X", &long], "--transport-id");
    assert!(e.contains("at most 223"), "{e}");
}

// ---- parameter lists ----

#[test]
fn register_with_transport_ids_sends_spec_i_pt_and_the_ids() {
    let p = plan(&[
        "-o",
        "-G",
        "-K",
        "0",
        "-S",
        "abc",
        "-Y",
        "-Z",
        "-X",
        "iqn.b;iqn.c",
    ]);
    let d = basic_params(&p);
    let t1 = TransportId::iscsi("iqn.b").encode();
    let t2 = TransportId::iscsi("iqn.c").encode();
    assert_eq!(&d[0..8], &[0; 8]);
    assert_eq!(&d[8..16], &0xabcu64.to_be_bytes());
    assert_eq!(d[20], 0x08 | 0x04 | 0x01, "SPEC_I_PT, ALL_TG_PT, APTPL");
    let n = (t1.len() + t2.len()) as u32;
    assert_eq!(&d[24..28], &n.to_be_bytes());
    assert_eq!(&d[28..], [t1, t2].concat().as_slice());
}

#[test]
fn preempt_sends_both_keys_and_no_flags() {
    let p = plan(&["-o", "-A", "-K", "1", "-S", "2", "-T", "ex-ac"]);
    let d = basic_params(&p);
    assert_eq!(d.len(), 24);
    assert_eq!(
        &d[0..16],
        &[[0, 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 2]].concat()[..]
    );
    assert_eq!(d[20], 0);
    assert_eq!(p.prout_type.map(PrType::code), Some(3));
}

#[test]
fn register_and_move_list_names_the_port_and_the_destination() {
    let p = plan(&[
        "-o",
        "-M",
        "-K",
        "1",
        "-S",
        "2",
        "-U",
        "-Q",
        "2",
        "-X",
        "iqn.b,i,0x8000494c0001",
    ]);
    let dest = &p.transport_ids[0];
    let d = register_move_params(&p, dest, p.rtpi.unwrap());
    let t = TransportId::iscsi_port("iqn.b", ISID).encode();
    assert_eq!(&d[0..8], &1u64.to_be_bytes());
    assert_eq!(&d[8..16], &2u64.to_be_bytes());
    assert_eq!(d[17], 0x02, "UNREG");
    assert_eq!(&d[18..20], &[0, 2]);
    assert_eq!(&d[20..24], &(t.len() as u32).to_be_bytes());
    assert_eq!(&d[24..], t.as_slice());
}

#[test]
fn a_refused_invocation_sends_nothing() {
    // The URL's port has no listener: reaching the network would fail with "connect".
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let a = args(&["-o", "-R", "-K", "1"]);
    let e = rt.block_on(run(&Ctx::default(), &a)).unwrap_err();
    assert!(
        e.0.contains("--prout-type") && !e.0.contains("connect"),
        "{e}"
    );
}

// ---- outcomes ----

fn result(st: u8, sense: Option<Sense>) -> CommandResult {
    CommandResult {
        response: 0,
        status: st,
        sense,
        sense_bytes: Bytes::new(),
        data_in: Bytes::new(),
        residual: Residual::None,
        data_in_pdus: 0,
    }
}

#[test]
fn unit_attention_is_what_is_retried() {
    let ua = Sense::unit_attention(asc::POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED);
    assert!(is_unit_attention(&result(
        status::CHECK_CONDITION,
        Some(ua)
    )));
    let ill = Sense::illegal(asc::INVALID_FIELD_IN_CDB);
    assert!(!is_unit_attention(&result(
        status::CHECK_CONDITION,
        Some(ill)
    )));
    assert!(!is_unit_attention(&result(
        status::RESERVATION_CONFLICT,
        None
    )));
    assert!(!is_unit_attention(&result(status::GOOD, None)));
}

#[test]
fn failures_name_status_and_sense_on_one_line() {
    assert_eq!(
        failure_line("PR out (Reserve)", status::RESERVATION_CONFLICT, None),
        "PR out (Reserve): SCSI status RESERVATION CONFLICT (0x18)"
    );
    let s = Sense::invalid_param_field(20, Some(3));
    let l = failure_line("PR out (Register)", status::CHECK_CONDITION, Some(&s));
    assert_eq!(
        l,
        "PR out (Register): SCSI status CHECK CONDITION (0x02), sense key ILLEGAL REQUEST \
         (0x5), ASC/ASCQ 26h/00h (INVALID FIELD IN PARAMETER LIST, at parameter list byte 20 \
         bit 3)"
    );
    let s = Sense::new(
        key::ILLEGAL_REQUEST,
        asc::INVALID_RELEASE_OF_PERSISTENT_RESERVATION,
    );
    assert!(failure_line("x", status::CHECK_CONDITION, Some(&s))
        .ends_with("26h/04h (INVALID RELEASE OF PERSISTENT RESERVATION)"));
}

fn out(action: Action, r: &Report) -> crate::output::Output {
    output(URL, action, None, r)
}

#[test]
fn read_keys_text_and_json() {
    let r = Report::Keys(ReadKeys {
        generation: 3,
        additional_length: 16,
        keys: vec![0x1234, 0xabcd_0000_0000_0001],
    });
    let o = out(Action::In(InAction::ReadKeys), &r);
    assert_eq!(
        o.text,
        "  PR generation=0x3, 2 registered reservation keys follow:\n    0x1234\n    \
         0xabcd000000000001\n"
    );
    assert_eq!(
        o.json,
        json!({"url": URL, "action": "read-keys", "generation": 3,
               "keys": ["0x1234", "0xabcd000000000001"]})
    );
    let one = Report::Keys(ReadKeys {
        generation: 1,
        additional_length: 8,
        keys: vec![1],
    });
    assert!(out(Action::In(InAction::ReadKeys), &one)
        .text
        .contains("1 registered reservation key follows:"));
    let none = Report::Keys(ReadKeys {
        generation: 0,
        additional_length: 0,
        keys: vec![],
    });
    assert_eq!(
        out(Action::In(InAction::ReadKeys), &none).text,
        "  PR generation=0x0, there are NO registered reservation keys\n"
    );
}

#[test]
fn read_reservation_text_and_json() {
    let r = Report::Reservation(ReadReservation {
        generation: 3,
        reservation: Some(Reservation {
            key: 0x1234,
            scope: 0,
            pr_type: 1,
        }),
    });
    let o = out(Action::In(InAction::ReadReservation), &r);
    assert_eq!(
        o.text,
        "  PR generation=0x3, Reservation follows:\n    Key=0x1234\n    scope: LU_SCOPE,  \
         type: Write Exclusive\n"
    );
    assert_eq!(
        o.json,
        json!({"url": URL, "action": "read-reservation", "generation": 3,
               "reservation": {"key": "0x1234", "scope": 0, "scope_name": "LU_SCOPE",
                               "type": 1, "type_name": "Write Exclusive"}})
    );
    let none = Report::Reservation(ReadReservation {
        generation: 2,
        reservation: None,
    });
    let o = out(Action::In(InAction::ReadReservation), &none);
    assert_eq!(
        o.text,
        "  PR generation=0x2, there is NO reservation held\n"
    );
    assert_eq!(o.json["reservation"], json!(null));
}

#[test]
fn report_capabilities_text_and_json() {
    let c = Capabilities {
        length: 8,
        rlr_c: false,
        crh: true,
        sip_c: true,
        atp_c: true,
        ptpl_c: true,
        tmv: true,
        allow_commands: 1,
        ptpl_a: false,
        type_mask: 0xea01,
    };
    let o = out(
        Action::In(InAction::ReportCapabilities),
        &Report::Capabilities(c),
    );
    assert_eq!(
        o.text,
        "Report capabilities response:\n\
         \x20 Replace Lost Reservation Capable(RLR_C): 0\n\
         \x20 Compatible Reservation Handling(CRH): 1\n\
         \x20 Specify Initiator Ports Capable(SIP_C): 1\n\
         \x20 All Target Ports Capable(ATP_C): 1\n\
         \x20 Persist Through Power Loss Capable(PTPL_C): 1\n\
         \x20 Type Mask Valid(TMV): 1\n\
         \x20 Allow Commands: 1\n\
         \x20 Persist Through Power Loss Active(PTPL_A): 0\n\
         \x20   Support indicated in Type mask:\n\
         \x20     Write Exclusive, all registrants: 1\n\
         \x20     Exclusive Access, registrants only: 1\n\
         \x20     Write Exclusive, registrants only: 1\n\
         \x20     Exclusive Access: 1\n\
         \x20     Write Exclusive: 1\n\
         \x20     Exclusive Access, all registrants: 1\n"
    );
    assert_eq!(
        o.json["capabilities"],
        json!({"rlr_c": false, "crh": true, "sip_c": true, "atp_c": true, "ptpl_c": true,
               "tmv": true, "allow_commands": 1, "ptpl_a": false,
               "type_mask": {"wr_ex_ar": true, "ex_ac_ro": true, "wr_ex_ro": true,
                             "ex_ac": true, "wr_ex": true, "ex_ac_ar": true}})
    );
    let partial = Capabilities {
        type_mask: 0x0200,
        ..c
    };
    let o = out(
        Action::In(InAction::ReportCapabilities),
        &Report::Capabilities(partial),
    );
    assert!(o
        .text
        .contains("      Exclusive Access: 0\n      Write Exclusive: 1\n"));
    assert_eq!(o.json["capabilities"]["type_mask"]["ex_ac"], json!(false));
    let no_mask = Capabilities { tmv: false, ..c };
    let o = out(
        Action::In(InAction::ReportCapabilities),
        &Report::Capabilities(no_mask),
    );
    assert!(!o.text.contains("Type mask:"));
    assert_eq!(o.json["capabilities"]["type_mask"], json!(null));
}

#[test]
fn read_full_status_text_and_json() {
    let f = FullStatus {
        generation: 5,
        additional_length: 0,
        descriptors: vec![
            FullStatusDescriptor {
                key: 0x1234,
                all_tg_pt: false,
                r_holder: true,
                scope: 0,
                pr_type: 5,
                rtpi: 1,
                transport_id: TransportId::iscsi_port("iqn.2026-11.org.ironlun:host", ISID),
            },
            FullStatusDescriptor {
                key: 0x99,
                all_tg_pt: true,
                r_holder: false,
                scope: 0,
                pr_type: 0,
                rtpi: 0,
                transport_id: TransportId::iscsi("iqn.b"),
            },
        ],
    };
    let o = out(Action::In(InAction::ReadFullStatus), &Report::FullStatus(f));
    assert_eq!(
        o.text,
        "  PR generation=0x5\n\
         \x20   Key=0x1234\n\
         \x20     All target ports bit clear\n\
         \x20     Relative port address: 0x1\n\
         \x20     << Reservation holder >>\n\
         \x20     scope: LU_SCOPE,  type: Write Exclusive, registrants only\n\
         \x20     Transport Id of initiator:\n\
         \x20       iSCSI world wide unique port id: iqn.2026-11.org.ironlun:host,i,0x8000494c0001\n\
         \x20   Key=0x99\n\
         \x20     All target ports bit set\n\
         \x20     not reservation holder\n\
         \x20     Transport Id of initiator:\n\
         \x20       iSCSI name: iqn.b\n"
    );
    assert_eq!(
        o.json["descriptors"],
        json!([
            {"key": "0x1234", "all_tg_pt": false, "relative_target_port": 1,
             "reservation_holder": true,
             "reservation": {"scope": 0, "scope_name": "LU_SCOPE", "type": 5,
                             "type_name": "Write Exclusive, registrants only"},
             "transport_id": {"protocol": "iscsi", "format": 1,
                              "name": "iqn.2026-11.org.ironlun:host", "isid": "8000494c0001"}},
            {"key": "0x99", "all_tg_pt": true, "relative_target_port": null,
             "reservation_holder": false, "reservation": null,
             "transport_id": {"protocol": "iscsi", "format": 0, "name": "iqn.b",
                              "isid": null}}
        ])
    );
    assert_eq!(o.json["generation"], json!(5));
    let empty = FullStatus {
        generation: 0,
        additional_length: 0,
        descriptors: vec![],
    };
    assert_eq!(
        out(
            Action::In(InAction::ReadFullStatus),
            &Report::FullStatus(empty)
        )
        .text,
        "  PR generation=0x0\n  No full status descriptors\n"
    );
}

#[test]
fn pr_out_success_text_and_json() {
    let o = out(
        Action::Out(OutAction::Register),
        &Report::Done { rtpi: None },
    );
    assert_eq!(o.text, "PR out (Register): command successful\n");
    assert_eq!(
        o.json,
        json!({"url": URL, "action": "register", "done": true})
    );
    let o = out(
        Action::Out(OutAction::RegisterMove),
        &Report::Done { rtpi: Some(2) },
    );
    assert_eq!(
        o.text,
        "PR out (Register and move): command successful (relative target port 0x2)\n"
    );
    assert_eq!(o.json["relative_target_port"], json!(2));
    assert_eq!(o.json["action"], json!("register-move"));
}

#[test]
fn the_inquiry_header_as_sg_persist_prints_it() {
    let mut inq = vec![0u8; 36];
    inq[8..16].copy_from_slice(b"IRONLUN ");
    inq[16..32].copy_from_slice(b"RAMDISK         ");
    inq[32..36].copy_from_slice(b"0001");
    let o = output(
        URL,
        Action::Out(OutAction::Clear),
        Some(&format::inquiry_header(&inq)),
        &Report::Done { rtpi: None },
    );
    assert_eq!(
        o.text,
        "  IRONLUN   RAMDISK           0001\n  Peripheral device type: disk\n\
         PR out (Clear): command successful\n"
    );
    assert!(o.json.get("inquiry").is_none());
}

#[test]
fn type_names_are_sg_persists() {
    assert_eq!(format::type_name(1), "Write Exclusive");
    assert_eq!(format::type_name(8), "Exclusive Access, all registrants");
    assert_eq!(format::type_name(2), "obsolete [2]");
    assert_eq!(format::type_name(0xb), "obsolete [0xb]");
}
