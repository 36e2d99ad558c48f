use super::*;
use ironlun_engine::PrReservation;
use std::os::unix::fs::PermissionsExt;

const SERIAL: &str = "5f1c0d2e-8a9b-4c3d-9e0f-112233445566";
const HOST1: &str = "iqn.2026-11.org.example:host1";
const HOST2: &str = "iqn.2026-11.org.example:host2";
const TGT: &str = "iqn.2026-11.org.ironlun:t1";

fn reg(initiator: &str, isid: Option<[u8; 6]>, key: u64, tpgt: u16, all: bool) -> PrRegistration {
    PrRegistration {
        key,
        initiator: initiator.into(),
        isid,
        target: TGT.into(),
        tpgt,
        rtpi: tpgt,
        all_tg_pt: all,
    }
}

/// Two registrations, the first holding a Write Exclusive, Registrants Only reservation.
fn sample() -> PrState {
    PrState {
        generation: 7,
        aptpl: true,
        registrations: vec![
            reg(HOST1, Some([0x23, 0xd0, 0, 0, 0, 1]), 0xabc, 1, false),
            reg(HOST2, None, 0x1122_3344_5566_7788, 2, true),
        ],
        reservation: Some(PrReservation { holder: 0, kind: 5 }),
    }
}

fn view(state: PrState) -> PrView {
    PrView {
        state,
        emulate_pr: true,
        force_aptpl: false,
        spc2_holder: None,
        file: PathBuf::from("/state/pr/aptpl_x"),
        file_present: true,
    }
}

#[test]
fn file_names_keep_plain_serials_and_escape_the_rest() {
    assert_eq!(aptpl_file_name(SERIAL), format!("aptpl_{SERIAL}"));
    assert_eq!(aptpl_file_name("a/b%c d"), "aptpl_a%2Fb%25c%20d");
    assert_eq!(aptpl_file_name(".."), "aptpl_..");
    // Injective: the escaped form of one serial is never another serial's plain form.
    assert_ne!(aptpl_file_name("a%2Fb"), aptpl_file_name("a/b"));
}

#[test]
fn save_creates_the_directory_and_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pr_dir = dir.path().join("pr");
    let f = AptplFile::new(&pr_dir, SERIAL);
    assert_eq!(f.load(), Ok(None), "no file yet");
    assert!(!f.exists());
    f.save(&sample()).expect("save");
    let dmode = fs::metadata(&pr_dir).expect("dir").permissions().mode() & 0o777;
    assert_eq!(dmode, 0o700);
    let fmode = fs::metadata(f.path()).expect("file").permissions().mode() & 0o777;
    assert_eq!(fmode, 0o600);
    assert_eq!(f.path(), pr_dir.join(format!("aptpl_{SERIAL}")));
    assert_eq!(f.load(), Ok(Some(sample())));
    // A second save replaces the content whole and leaves no temp file behind.
    let mut next = sample();
    next.generation = 8;
    next.reservation = None;
    f.save(&next).expect("save again");
    assert_eq!(f.load(), Ok(Some(next)));
    let names: Vec<_> = fs::read_dir(&pr_dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from(format!("aptpl_{SERIAL}"))]
    );
}

#[test]
fn the_file_has_the_documented_shape() {
    let f = AptplFile::new(Path::new("/nonexistent"), SERIAL);
    let v: serde_json::Value = serde_json::from_str(&f.encode(&sample())).expect("json");
    assert_eq!(v["format"], "ironlun-aptpl");
    assert_eq!(v["version"], 1);
    assert_eq!(v["unit_serial"], SERIAL);
    assert_eq!(v["state"]["generation"], 7);
    assert_eq!(v["state"]["aptpl"], true);
    assert_eq!(v["state"]["registrations"][0]["initiator"], HOST1);
    assert_eq!(v["state"]["registrations"][0]["key"], 0xabc);
    assert_eq!(v["state"]["reservation"]["holder"], 0);
    assert_eq!(v["state"]["reservation"]["kind"], 5);
}

#[test]
fn clear_removes_the_file_and_tolerates_its_absence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = AptplFile::new(dir.path(), SERIAL);
    f.save(&sample()).expect("save");
    assert!(f.exists());
    f.clear().expect("clear");
    assert!(!f.exists());
    assert_eq!(f.load(), Ok(None));
    f.clear().expect("clear of nothing");
}

#[test]
fn save_into_an_unwritable_place_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    // `pr` exists as a file, so the directory cannot be created.
    fs::write(dir.path().join("pr"), b"x").expect("block");
    let f = AptplFile::new(&dir.path().join("pr"), SERIAL);
    assert!(f.save(&sample()).is_err());
}

#[test]
fn corrupt_files_are_refused_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = AptplFile::new(dir.path(), SERIAL);
    let good = f.encode(&sample());
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "not valid JSON"),
        (
            "{\"format\": \"ironlun-aptpl\", \"vers".into(),
            "not valid JSON",
        ),
        (
            "No Registrations or Reservations\n".into(),
            "not valid JSON",
        ),
        ("[1, 2]".into(), "expected a JSON object"),
        (good.replace("ironlun-aptpl", "lio"), "format \"lio\""),
        (
            good.replace("\"version\": 1", "\"version\": 2"),
            "format version 2 is not supported",
        ),
        (good.replace("\"version\": 1,", ""), "no format version"),
        (
            good.replace(SERIAL, "other-serial"),
            "unit serial 'other-serial'",
        ),
        (
            good.replace("\"holder\": 0", "\"holder\": 5"),
            "holder 5 is not one of the 2",
        ),
        (
            good.replace("\"kind\": 5", "\"kind\": 4"),
            "type 4 is not a valid PR type",
        ),
        (
            good.replace("\"aptpl\": true", "\"aptpl\": 3"),
            "invalid content",
        ),
        (
            good.replace("\"unit_serial\"", "\"colour\": 1, \"unit_serial\""),
            "unknown field",
        ),
        (
            good.replace(&format!("\"{HOST1}\""), "\"\""),
            "must not be empty",
        ),
    ];
    for (text, needle) in cases {
        fs::write(f.path(), &text).expect("write");
        let e = f.load().expect_err(needle);
        assert!(e.contains(needle), "{needle}: {e}");
        assert!(
            e.contains(&f.path().display().to_string()),
            "names the file: {e}"
        );
        assert!(!e.contains('\n'), "one line: {e}");
    }
    fs::remove_file(f.path()).expect("rm");
    fs::create_dir(f.path()).expect("a directory in its place");
    let e = f.load().expect_err("directory");
    assert!(e.contains("not a regular file"), "{e}");
}

#[test]
fn tree_leaves_use_lio_formats() {
    let exports = vec![(TGT.to_string(), 1u16, 3u64)];
    let leaves: std::collections::BTreeMap<_, _> =
        tree_leaves(&view(sample()), &exports).into_iter().collect();
    let names: Vec<&str> = leaves.keys().copied().collect();
    assert_eq!(names, TREE_LEAVES);
    assert_eq!(leaves["res_aptpl_active"], "APTPL Bit Status: Activated");
    assert_eq!(
        leaves["res_holder"],
        format!("SPC-3 Reservation: iSCSI Initiator: {HOST1},i,0x23d000000001")
    );
    assert_eq!(
        leaves["res_pr_all_tgt_pts"],
        "SPC-3 Reservation: Single Target Port registration"
    );
    assert_eq!(leaves["res_pr_generation"], "0x00000007");
    assert_eq!(
        leaves["res_pr_holder_tg_port"],
        format!("SPC-3 Reservation: iSCSI Target Node Endpoint: {TGT}\nSPC-3 Reservation: Relative Port Identifier Tag: 1 iSCSI Portal Group Tag: 1 iSCSI Logical Unit: 3")
    );
    assert_eq!(
        leaves["res_pr_registered_i_pts"],
        format!(
            "SPC-3 PR Registrations:\n\
             iSCSI Node: {HOST1},i,0x23d000000001 Key: 0x0000000000000abc Target Port: {TGT},t,0x0001 RTPI: 1\n\
             iSCSI Node: {HOST2} Key: 0x1122334455667788 Target Port: {TGT},t,0x0002 RTPI: 2 All Target Ports"
        )
    );
    assert_eq!(
        leaves["res_pr_type"],
        "SPC-3 Reservation Type: Write Exclusive Access, Registrants Only"
    );
    assert_eq!(leaves["res_type"], "SPC3_PERSISTENT_RESERVATIONS");
}

#[test]
fn tree_leaves_without_state_or_with_spc2_or_disabled() {
    let empty: std::collections::BTreeMap<_, _> = tree_leaves(&view(PrState::default()), &[])
        .into_iter()
        .collect();
    assert_eq!(empty["res_aptpl_active"], "APTPL Bit Status: Disabled");
    assert_eq!(empty["res_holder"], "No SPC-3 Reservation holder");
    assert_eq!(empty["res_pr_all_tgt_pts"], "No SPC-3 Reservation holder");
    assert_eq!(
        empty["res_pr_holder_tg_port"],
        "No SPC-3 Reservation holder"
    );
    assert_eq!(empty["res_pr_type"], "No SPC-3 Reservation holder");
    assert_eq!(empty["res_pr_generation"], "0x00000000");
    assert_eq!(
        empty["res_pr_registered_i_pts"],
        "SPC-3 PR Registrations:\nNone"
    );

    let mut v = view(PrState::default());
    v.spc2_holder = Some(HOST1.into());
    let spc2: std::collections::BTreeMap<_, _> = tree_leaves(&v, &[]).into_iter().collect();
    assert_eq!(spc2["res_type"], "SPC2_RESERVATIONS");
    assert_eq!(
        spc2["res_holder"],
        format!("SPC-2 Reservation: iSCSI Initiator: {HOST1}")
    );

    let mut v = view(sample());
    v.emulate_pr = false;
    let off: std::collections::BTreeMap<_, _> = tree_leaves(&v, &[]).into_iter().collect();
    assert_eq!(off["res_type"], "SPC_RESERVATIONS_DISABLED");
    assert_eq!(off["res_holder"], "SPC_RESERVATIONS_DISABLED");
}

#[test]
fn report_lists_everything_an_admin_needs() {
    let key = DevKey::parse("core/rd_mcp_0/r0").expect("key");
    let text = report(&key, SERIAL, &view(sample()), &[(TGT.to_string(), 1, 0)]);
    for needle in [
        format!("core/rd_mcp_0/r0 (unit serial {SERIAL})"),
        "APTPL:          activated".to_string(),
        "APTPL file:     /state/pr/aptpl_x (present)".to_string(),
        "PRgeneration:   0x00000007".to_string(),
        format!("Reservation:    Write Exclusive Access, Registrants Only (type 5), scope LU, held by {HOST1},i,0x23d000000001"),
        "Registrations:  2".to_string(),
        "#1  [reservation holder]".to_string(),
        "key:            0x0000000000000abc".to_string(),
        format!("initiator port: {HOST1},i,0x23d000000001"),
        format!("target port:    {TGT},t,0x0001 (RTPI 1, LUN 0)"),
        format!("initiator port: {HOST2}\n"),
        format!("target port:    {TGT},t,0x0002 (RTPI 2)"),
        "all_tg_pt:      1".to_string(),
    ] {
        assert!(text.contains(&needle), "missing {needle:?} in\n{text}");
    }
    assert!(!text.contains("#2  [reservation holder]"), "{text}");

    // All-registrants types: every registrant is a holder.
    let mut ar = sample();
    ar.reservation = Some(PrReservation { holder: 1, kind: 8 });
    let text = report(&key, SERIAL, &view(ar), &[]);
    assert!(text.contains("#1  [reservation holder]"), "{text}");
    assert!(text.contains("#2  [reservation holder]"), "{text}");
    assert!(
        text.contains(&format!(
            "held by every registrant (established by {HOST2})"
        )),
        "{text}"
    );

    let text = report(&key, SERIAL, &view(PrState::default()), &[]);
    assert!(text.contains("Reservation:    none"), "{text}");
    assert!(text.contains("Registrations:  0"), "{text}");
    assert!(text.contains("APTPL:          not activated"), "{text}");
}

#[test]
fn cleared_text_and_summary_name_what_was_dropped() {
    let key = DevKey::parse("core/rd_mcp_0/r0").expect("key");
    let t = cleared_text(&key, &sample());
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 3, "{t}");
    assert!(lines[0].starts_with("cleared core/rd_mcp_0/r0: dropped PRgeneration 0x00000007, APTPL on, reservation Write Exclusive Access, Registrants Only (type 5)"), "{t}");
    assert_eq!(
        lines[1],
        format!("  {HOST1},i,0x23d000000001 via {TGT},t,0x0001 key 0x0000000000000abc")
    );
    assert!(
        lines[2].ends_with("key 0x1122334455667788 all_tg_pt"),
        "{t}"
    );
    let s = summary(&sample());
    assert!(!s.contains('\n'));
    assert!(s.contains("2 registration(s): "), "{s}");
    assert_eq!(
        summary(&PrState::default()),
        "PRgeneration 0x00000000, APTPL off, no reservation, 0 registration(s)"
    );
}
