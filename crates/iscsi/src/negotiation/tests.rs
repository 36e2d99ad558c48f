//! Unit tests of negotiation: the catalogue, the responder and the originator sides.

use super::*;

fn k(n: &str) -> &'static KeyDef {
    key(n).unwrap()
}

#[test]
fn catalogue_is_complete_and_defaults_valid() {
    for name in [
        "HeaderDigest",
        "DataDigest",
        "MaxConnections",
        "SendTargets",
        "TargetName",
        "InitiatorName",
        "TargetAlias",
        "InitiatorAlias",
        "TargetAddress",
        "TargetPortalGroupTag",
        "InitialR2T",
        "ImmediateData",
        "MaxRecvDataSegmentLength",
        "MaxBurstLength",
        "FirstBurstLength",
        "DefaultTime2Wait",
        "DefaultTime2Retain",
        "MaxOutstandingR2T",
        "DataPDUInOrder",
        "DataSequenceInOrder",
        "ErrorRecoveryLevel",
        "SessionType",
        "AuthMethod",
        "TaskReporting",
        "iSCSIProtocolLevel",
    ] {
        assert!(key(name).is_some(), "{name}");
    }
    for d in KEYS {
        if !d.default.is_empty() && d.ty != Obsolete {
            assert!(valid_value(d, d.default), "{}", d.name);
        }
    }
    assert!(key("headerdigest").is_none(), "names are case-sensitive");
}

#[test]
fn numbers() {
    assert_eq!(parse_number("8192"), Some(8192));
    assert_eq!(parse_number("0x2000"), Some(8192));
    assert_eq!(parse_number(""), None);
    assert_eq!(parse_number("-1"), None);
    assert_eq!(parse_number("12a"), None);
    assert_eq!(parse_number("99999999999999999999999"), None);
}

#[test]
fn boolean_and_or() {
    assert!(bool_result(BoolFn::And, true, true));
    assert!(!bool_result(BoolFn::And, true, false));
    assert!(!bool_result(BoolFn::And, false, true));
    assert!(bool_result(BoolFn::Or, false, true));
    assert!(!bool_result(BoolFn::Or, false, false));
    assert_eq!(
        respond(k("ImmediateData"), "Yes", "No"),
        Answer::Value("No".into())
    );
    assert_eq!(
        respond(k("ImmediateData"), "Yes", "Yes"),
        Answer::Value("Yes".into())
    );
    assert_eq!(
        respond(k("InitialR2T"), "No", "No"),
        Answer::Value("No".into())
    );
    assert_eq!(
        respond(k("InitialR2T"), "No", "Yes"),
        Answer::Value("Yes".into())
    );
    assert_eq!(respond(k("InitialR2T"), "Maybe", "Yes"), Answer::Reject);
}

#[test]
fn numeric_min_max() {
    assert_eq!(numeric_result(NumFn::Min, 5, 3), 3);
    assert_eq!(numeric_result(NumFn::Max, 5, 3), 5);
    assert_eq!(
        respond(k("MaxBurstLength"), "16776192", "1048576"),
        Answer::Value("1048576".into())
    );
    assert_eq!(
        respond(k("DefaultTime2Wait"), "0", "2"),
        Answer::Value("2".into())
    );
    assert_eq!(
        respond(k("ErrorRecoveryLevel"), "2", "0"),
        Answer::Value("0".into())
    );
    assert_eq!(
        respond(k("MaxBurstLength"), "100", "262144"),
        Answer::Reject
    );
    assert_eq!(
        respond(k("MaxBurstLength"), "16777216", "262144"),
        Answer::Reject
    );
    assert_eq!(respond(k("MaxOutstandingR2T"), "0", "16"), Answer::Reject);
}

#[test]
fn list_first_acceptable() {
    assert_eq!(list_result("CRC32C,None", &["None"]), Some("None"));
    assert_eq!(
        list_result("Foo,CRC32C,None", &["CRC32C", "None"]),
        Some("CRC32C")
    );
    assert_eq!(list_result("CRC32C", &["None"]), None);
    assert_eq!(
        respond(k("HeaderDigest"), "None,CRC32C", "CRC32C,None"),
        Answer::Value("None".into())
    );
    assert_eq!(respond(k("DataDigest"), "CRC32C", "None"), Answer::Reject);
    assert_eq!(
        respond(k("AuthMethod"), "CHAP,None", "CHAP"),
        Answer::Value("CHAP".into())
    );
}

#[test]
fn declarative_and_obsolete() {
    assert_eq!(
        respond(k("MaxRecvDataSegmentLength"), "65536", ""),
        Answer::Accepted
    );
    assert_eq!(
        respond(k("MaxRecvDataSegmentLength"), "100", ""),
        Answer::Reject
    );
    assert_eq!(respond(k("SessionType"), "Discovery", ""), Answer::Accepted);
    assert_eq!(respond(k("SessionType"), "Other", ""), Answer::Reject);
    assert_eq!(respond(k("IFMarkInt"), "2048", ""), Answer::Reject);
    assert_eq!(
        respond(k("IFMarker"), "Yes", "No"),
        Answer::Value("No".into())
    );
    let long = "x".repeat(256);
    assert_eq!(respond(k("InitiatorAlias"), &long, ""), Answer::Reject);
}

#[test]
fn originator_conclusions() {
    assert_eq!(
        conclude(k("MaxBurstLength"), "262144", "65536").unwrap(),
        "65536"
    );
    assert!(conclude(k("MaxBurstLength"), "65536", "262144").is_err());
    assert_eq!(conclude(k("DefaultTime2Wait"), "2", "5").unwrap(), "5");
    assert!(conclude(k("DefaultTime2Wait"), "5", "2").is_err());
    assert_eq!(conclude(k("ImmediateData"), "No", "Yes").unwrap(), "No");
    assert_eq!(conclude(k("InitialR2T"), "Yes", "No").unwrap(), "Yes");
    assert_eq!(conclude(k("InitialR2T"), "No", "Yes").unwrap(), "Yes");
    assert_eq!(
        conclude(k("HeaderDigest"), "CRC32C,None", "None").unwrap(),
        "None"
    );
    assert!(conclude(k("HeaderDigest"), "None", "CRC32C").is_err());
    assert_eq!(
        conclude(k("HeaderDigest"), "CRC32C", "Reject"),
        Err(NegotiationError::Rejected("HeaderDigest"))
    );
    assert_eq!(
        conclude(k("FirstBurstLength"), "65536", "Irrelevant"),
        Err(NegotiationError::Irrelevant("FirstBurstLength"))
    );
}

#[test]
fn params_record_results() {
    let mut p = OperationalParams::default();
    assert!(p.set("HeaderDigest", "CRC32C"));
    assert!(p.set("MaxRecvDataSegmentLength", "65536"));
    assert!(p.set("InitialR2T", "No"));
    assert!(!p.set("Bogus", "1"));
    assert!(!p.set("MaxBurstLength", "lots"));
    assert!(p.header_digest);
    assert_eq!(p.max_xmit_data_segment_length, 65536);
    assert!(!p.initial_r2t);
    assert!(!p.first_burst_irrelevant());
}
