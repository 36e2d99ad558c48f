//! `ironlun host` against targets that misbehave (issue 9, acceptance point 3): a scripted
//! fake target on loopback (tests/host_fake) serves one kind of bad behaviour per test: at
//! login (RFC 7143 §11.12-13: no answer, rejections, redirect loops, garbage, a closed
//! connection), in SendTargets (Appendix C), in a command's answer (§11.4, §11.7, §11.17:
//! silence, Reject, Data-In out of bounds, a sense length beyond its segment) or in the data
//! (SPC-4 §6.6.2 standard INQUIRY, §7.8 VPD pages, §6.36 REPORT TARGET PORT GROUPS). The
//! real binary must then fail with exit status 2, exactly one line on stderr beginning
//! `ironlun host: ` that names the problem, no panic, and within a bound derived from its
//! `--timeout`.
//!
//! The positive tests check the REPORT TARGET PORT GROUPS procedure of Linux's scsi_dh_alua
//! that the host follows: the extended header refused (ILLEGAL REQUEST, any ASC) is asked
//! again without it, data longer than the first 128-byte allocation is asked again with the
//! length returned, one UNIT ATTENTION and one NOT READY 04h/0Ah (transitioning) are retried.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod host_fake;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use host_fake::*;
use ironlun_initiator::alua::AccessState;
use ironlun_initiator::iscsi::pdu::login_status;

const BIN: &str = env!("CARGO_BIN_EXE_ironlun");
/// The `--timeout` most tests run with (seconds).
const T: u64 = 1;
/// A run still going after this long is killed (a hang is a failure, not a stuck suite).
const HARD_LIMIT: Duration = Duration::from_secs(15);

/// What one run of `ironlun host …` did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Run `ironlun host --timeout SECS ARGS…` on a blocking thread (the fake keeps serving on
/// the test's runtime meanwhile).
async fn host_t(timeout_s: u64, args: &[&str]) -> Run {
    let mut all = vec![
        "host".to_string(),
        "--timeout".to_string(),
        timeout_s.to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || run_blocking(&all))
        .await
        .unwrap()
}

async fn host(args: &[&str]) -> Run {
    host_t(T, args).await
}

fn run_blocking(args: &[String]) -> Run {
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("IRONLUN_CHAP_USER")
        .env_remove("IRONLUN_CHAP_SECRET")
        .env_remove("LIBISCSI_CHAP_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ironlun");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > HARD_LIMIT {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    Run {
        code: status.code(),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
        elapsed,
    }
}

/// `n` timeouts of `secs` plus two seconds of slack for process start and teardown.
fn within(n: u64, secs: u64) -> Duration {
    Duration::from_secs(n * secs + 2)
}

/// The run failed the way every host failure must: status 2, one `ironlun host: ` line on
/// stderr naming the problem (each of `words`, case-insensitively), nothing on stdout, no
/// panic, in time. Returns the message.
#[track_caller]
fn failed(r: &Run, words: &[&str], bound: Duration) -> String {
    let show = format!("{r:#?}");
    assert_eq!(r.code, Some(2), "exit status: {show}");
    assert!(!r.stderr.contains("panicked"), "a panic: {show}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr must be exactly one line: {show}");
    let line = lines[0];
    let msg = line
        .strip_prefix("ironlun host: ")
        .unwrap_or_else(|| panic!("stderr must start with 'ironlun host: ': {show}"));
    let lower = msg.to_lowercase();
    for w in words {
        assert!(
            lower.contains(&w.to_lowercase()),
            "the message should name '{w}': {show}"
        );
    }
    assert!(r.stdout.is_empty(), "no output on failure: {show}");
    assert!(
        r.elapsed < bound,
        "took {:?}, bound {bound:?}: {show}",
        r.elapsed
    );
    let test = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!("[{test}] {:>5} ms: {line}", r.elapsed.as_millis());
    msg.to_string()
}

/// The run succeeded: status 0, nothing on stderr.
#[track_caller]
fn succeeded(r: &Run) {
    assert_eq!(r.code, Some(0), "exit status: {r:#?}");
    assert!(r.stderr.is_empty(), "stderr: {r:#?}");
    assert!(r.elapsed < HARD_LIMIT, "{r:#?}");
}

/// Spawn a fake serving `script` and run `ironlun host CMD URL-or-PORTAL`.
async fn against(script: Script, cmd: &str) -> (Fake, Run) {
    let f = Fake::spawn(script).await;
    let target = if cmd == "discover" {
        f.portal()
    } else {
        f.url(0)
    };
    let r = host(&[cmd, &target]).await;
    (f, r)
}

/// Run `inq` and `rtpg` (each against its own fake serving `script`, concurrently): both must
/// fail naming `words` within `bound`. For what every command meets first: the login and the
/// standard INQUIRY that checks the LUN.
async fn both_fail(script: Script, words: &[&str], bound: Duration) {
    let (a, b) = tokio::join!(against(script.clone(), "inq"), against(script, "rtpg"));
    failed(&b.1, words, bound);
    failed(&a.1, words, bound);
}

// ---------------------------------------------------------------------------------------
// Connecting and logging in (RFC 7143 §11.12-13)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn nothing_listening() {
    let portal = closed_portal();
    let r = host(&["discover", &portal]).await;
    failed(&r, &["connect", "refused"], within(1, T));
    let url = format!("iscsi://{portal}/{TARGET}/0");
    let (a, b) = (["inq", url.as_str()], ["rtpg", url.as_str()]);
    let (inq, rtpg) = tokio::join!(host(&a), host(&b));
    failed(&rtpg, &["connect", "refused"], within(1, T));
    failed(&inq, &["connect", "refused"], within(1, T));
}

#[tokio::test]
async fn login_never_answered() {
    let (_, r) = against(Script::login(Login::Silent), "discover").await;
    failed(&r, &["login", "no answer within 1 s"], within(2, T));
    both_fail(
        Script::login(Login::Silent),
        &["login", "no answer within 1 s"],
        within(2, T),
    )
    .await;
}

#[tokio::test]
async fn login_authorization_failure() {
    let s = Script::login(Login::Reject(login_status::AUTHORIZATION_FAILURE));
    both_fail(
        s,
        &["login", "initiator error", "authorization failure"],
        within(1, T),
    )
    .await;
}

#[tokio::test]
async fn login_service_unavailable() {
    let s = Script::login(Login::Reject(login_status::SERVICE_UNAVAILABLE));
    let (_, r) = against(s, "discover").await;
    failed(&r, &["target error", "service unavailable"], within(1, T));
}

#[tokio::test]
async fn login_redirect_loop() {
    let (f, r) = against(Script::login(Login::RedirectToSelf), "inq").await;
    failed(&r, &["redirect", "loop"], within(2, T));
    // Bounded: the first login and a handful of hops, not forever.
    let n = f.connections();
    assert!((2..=10).contains(&n), "{n} connections for a redirect loop");
}

#[tokio::test]
async fn login_redirect_without_address() {
    let (f, r) = against(Script::login(Login::Redirect(None)), "discover").await;
    failed(&r, &["redirect", "TargetAddress"], within(1, T));
    assert_eq!(f.connections(), 1);
}

#[tokio::test]
async fn login_redirect_to_unusable_address() {
    let s = Script::login(Login::Redirect(Some("[::1:99999,1".into())));
    let (_, r) = against(s, "discover").await;
    failed(
        &r,
        &["redirect", "TargetAddress", "[::1:99999,1"],
        within(1, T),
    );
}

#[tokio::test]
async fn login_answered_with_http() {
    // A web server on the iSCSI port: its reply read as a BHS has a 3 MB DataSegmentLength.
    let http = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let (_, r) = against(Script::login(Login::Garbage(http.to_vec())), "discover").await;
    failed(&r, &["login", "DataSegmentLength"], within(2, T));
}

#[tokio::test]
async fn login_answered_with_zeros() {
    // 48 zero bytes parse as a NOP-Out: an initiator opcode where a Login Response belongs.
    both_fail(
        Script::login(Login::Garbage(vec![0; 48])),
        &["login", "Login Response"],
        within(2, T),
    )
    .await;
}

#[tokio::test]
async fn connection_closed_mid_login() {
    let (_, r) = against(Script::login(Login::CloseMidway), "discover").await;
    failed(&r, &["login", "closed"], within(1, T));
}

#[tokio::test]
async fn connection_closed_right_after_login() {
    both_fail(
        Script::login(Login::CloseOnceLoggedIn),
        &["INQUIRY", "closed"],
        within(2, T),
    )
    .await;
    let (_, r) = against(Script::login(Login::CloseOnceLoggedIn), "discover").await;
    failed(&r, &["SendTargets", "closed"], within(2, T));
}

// ---------------------------------------------------------------------------------------
// SendTargets (RFC 7143 Appendix C)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn send_targets_not_key_value_text() {
    let s = Script {
        send_targets: Some(b"this is not key=value text\0garbage\0".to_vec()),
        ..Script::default()
    };
    let (_, r) = against(s, "discover").await;
    failed(&r, &["SendTargets"], within(2, T));
}

#[tokio::test]
async fn send_targets_unparsable_address() {
    let s = Script {
        send_targets: Some(
            b"TargetName=iqn.2026-11.test:x\0TargetAddress=10.0.0.1:notaport,1\0".to_vec(),
        ),
        ..Script::default()
    };
    let (_, r) = against(s, "discover").await;
    failed(
        &r,
        &["SendTargets", "TargetAddress", "10.0.0.1:notaport,1"],
        within(2, T),
    );
}

// ---------------------------------------------------------------------------------------
// A command's answer (RFC 7143 §11.4, §11.7, §11.17)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn stops_answering_mid_command() {
    both_fail(
        Script::always(Kind::Inquiry, Reply::Silent),
        &["INQUIRY", "no answer within 1 s"],
        within(3, T),
    )
    .await;
}

#[tokio::test]
async fn stops_answering_rtpg() {
    let (f, r) = against(Script::always(Kind::Rtpg, Reply::Silent), "rtpg").await;
    failed(&r, &["no answer within 1 s"], within(3, T));
    assert_eq!(f.commands_of(Kind::Rtpg).len(), 1);
}

#[tokio::test]
async fn answer_under_another_task_tag() {
    both_fail(
        Script::always(Kind::Inquiry, Reply::WrongTag),
        &["INQUIRY", "no answer within 1 s"],
        within(3, T),
    )
    .await;
}

#[tokio::test]
async fn reject_pdu_answers_a_command() {
    let s = Script::always(Kind::Inquiry, Reply::Reject(0x09));
    both_fail(s, &["INQUIRY", "rejected"], within(2, T)).await;
}

#[tokio::test]
async fn data_in_beyond_expected_length() {
    // 300 bytes of standard INQUIRY data for an allocation length of at most 255.
    let mut d = standard_inquiry(1);
    d.resize(300, 0x20);
    both_fail(
        Script::always(Kind::Inquiry, Reply::DataUncut(d)),
        &["INQUIRY", "Data-In"],
        within(2, T),
    )
    .await;
}

#[tokio::test]
async fn data_in_at_bad_buffer_offset() {
    let s = Script::always(
        Kind::Inquiry,
        Reply::DataAt {
            offset: 4096,
            data: standard_inquiry(1),
        },
    );
    both_fail(s, &["INQUIRY", "offset"], within(2, T)).await;
}

#[tokio::test]
async fn sense_length_beyond_segment() {
    // SenseLength 200, but only 18 bytes of sense follow.
    let mut segment = vec![0, 200];
    segment.extend(fixed_sense(ILLEGAL_REQUEST, 0x24, 0));
    let s = Script::always(
        Kind::Inquiry,
        Reply::Raw {
            status: 2,
            response: 0,
            segment,
        },
    );
    both_fail(s, &["INQUIRY", "SenseLength"], within(2, T)).await;
}

#[tokio::test]
async fn iscsi_response_target_failure() {
    // Response 01h (target failure, §11.4.3): the status byte is not valid and no data came.
    let s = Script::always(
        Kind::Inquiry,
        Reply::Raw {
            status: 0,
            response: 1,
            segment: Vec::new(),
        },
    );
    both_fail(s, &["INQUIRY", "target failure"], within(2, T)).await;
}

#[tokio::test]
async fn busy_forever() {
    both_fail(
        Script::always(Kind::Inquiry, Reply::Status(0x08)),
        &["INQUIRY", "BUSY"],
        within(2, T),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Standard INQUIRY and VPD (SPC-4 §6.6.2, §7.8)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn lun_not_supported() {
    let s = Script::always(Kind::Inquiry, check(ILLEGAL_REQUEST, 0x25, 0x00));
    both_fail(s, &["LUN 0", "does not exist"], within(2, T)).await;
}

#[tokio::test]
async fn peripheral_qualifier_011b() {
    // The fake answers INQUIRY for a LUN it has not with peripheral qualifier 011b.
    let f = Fake::spawn(Script::default()).await;
    let r = host(&["inq", &f.url(7)]).await;
    failed(&r, &["LUN 7", "does not exist"], within(2, T));
    let r = host(&["rtpg", &f.url(7)]).await;
    failed(&r, &["LUN 7", "does not exist"], within(2, T));
}

#[tokio::test]
async fn standard_inquiry_too_short() {
    let short = standard_inquiry(1)[..20].to_vec();
    both_fail(
        Script::always(Kind::Inquiry, Reply::Data(short)),
        &["INQUIRY", "20 bytes", "36"],
        within(2, T),
    )
    .await;
}

/// VPD 0x83 with one extra descriptor appended.
fn vpd83_with(extra: &[u8]) -> Reply {
    let mut body = designators(&Lu::default());
    body.extend_from_slice(extra);
    Reply::Data(vpd_page(0x83, &body))
}

#[tokio::test]
async fn designator_overruns_the_page() {
    // A descriptor header saying 40 bytes with only 4 left in the page.
    let s = Script::always(
        Kind::Vpd(0x83),
        vpd83_with(&[0x01, 0x03, 0, 40, 1, 2, 3, 4]),
    );
    let (_, r) = against(s.clone(), "inq").await;
    failed(&r, &["0x83", "overruns"], within(2, T));
    let (_, r) = against(s, "rtpg").await;
    failed(&r, &["0x83", "overruns"], within(2, T));
}

#[tokio::test]
async fn naa_designator_of_wrong_length() {
    // NAA 6 (registered extended) must be 16 bytes; this one has 8.
    let s = Script::always(
        Kind::Vpd(0x83),
        vpd83_with(&designation(1, 0, 3, &NAA[..8])),
    );
    let (_, r) = against(s, "inq").await;
    failed(&r, &["0x83", "NAA"], within(2, T));
}

#[tokio::test]
async fn relative_port_designator_of_wrong_length() {
    let s = Script::always(
        Kind::Vpd(0x83),
        Reply::Data(vpd_page(0x83, &designation(1, 1, 4, &[0, 1]))),
    );
    let (_, r) = against(s, "rtpg").await;
    failed(&r, &["0x83", "relative target port"], within(2, T));
}

#[tokio::test]
async fn vpd_page_with_wrong_page_code() {
    // Asked for 0x83, answered with a page that says it is 0x80.
    let s = Script::always(
        Kind::Vpd(0x83),
        Reply::Data(vpd_page(0x80, &designators(&Lu::default()))),
    );
    let (_, r) = against(s, "inq").await;
    failed(&r, &["0x83", "0x80"], within(2, T));
}

#[tokio::test]
async fn vpd_page_length_beyond_the_data() {
    // VPD 0x00 claiming 40 page codes and sending 6, whatever the allocation length.
    let mut d = vpd_page(0x00, &[0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
    d[3] = 40;
    let (_, r) = against(Script::always(Kind::Vpd(0x00), Reply::Data(d)), "inq").await;
    failed(&r, &["0x00", "PAGE LENGTH"], within(2, T));
}

#[tokio::test]
async fn vpd_b0_page_length_beyond_the_data() {
    // Block Limits with PAGE LENGTH 3Ch, cut after 20 bytes whatever the allocation length.
    let mut d = vpd(&Lu::default(), 0xb0).unwrap();
    d.truncate(20);
    let (_, r) = against(Script::always(Kind::Vpd(0xb0), Reply::Data(d)), "inq").await;
    failed(&r, &["0xb0", "PAGE LENGTH"], within(2, T));
}

/// VPD page `code` whose PAGE LENGTH always says one byte more than the allocation length
/// lets through.
fn growing_page(c: &Cmd, code: u8) -> Reply {
    let n = c.alloc() as usize;
    let mut body = designators(&Lu::default());
    body.resize(n.saturating_sub(3), 0);
    let mut d = vpd_page(code, &body);
    d.truncate(n);
    Reply::Data(d)
}

#[tokio::test]
async fn vpd_page_length_growing_forever() {
    // Like the RTPG case below: asking again must stop after a few rounds, in time.
    let s = Script::on(|c| match c.kind {
        Kind::Vpd(0x80) => growing_page(c, 0x80),
        _ => Reply::Normal,
    });
    let (f, r) = against(s, "inq").await;
    let rounds = f.commands_of(Kind::Vpd(0x80)).len();
    eprintln!("inq: {rounds} INQUIRYs for VPD 0x80 in {:?}", r.elapsed);
    failed(&r, &["0x80"], within(3, T));
    assert!(rounds <= 5, "{rounds} INQUIRYs for VPD 0x80");
}

#[tokio::test]
async fn vpd_0x83_length_growing_forever_under_rtpg() {
    let s = Script::on(|c| match c.kind {
        Kind::Vpd(0x83) => growing_page(c, 0x83),
        _ => Reply::Normal,
    });
    let (f, r) = against(s, "rtpg").await;
    let rounds = f.commands_of(Kind::Vpd(0x83)).len();
    eprintln!("rtpg: {rounds} INQUIRYs for VPD 0x83 in {:?}", r.elapsed);
    failed(&r, &["0x83"], within(3, T));
    assert!(rounds <= 5, "{rounds} INQUIRYs for VPD 0x83");
}

#[tokio::test]
async fn vpd_page_never_answered() {
    let (_, r) = against(Script::always(Kind::Vpd(0xb1), Reply::Silent), "inq").await;
    failed(&r, &["0xb1", "no answer within 1 s"], within(3, T));
}

// ---------------------------------------------------------------------------------------
// REPORT TARGET PORT GROUPS (SPC-4 §6.36) the way scsi_dh_alua asks
// ---------------------------------------------------------------------------------------

/// RTPG data whose RETURN DATA LENGTH claims `grow` bytes more than the allocation length
/// each time, so that no allocation ever suffices.
fn always_more(c: &Cmd) -> Reply {
    let mut d = rtpg_data(c.rtpg_extended(), &Lu::default().groups);
    set_return_length(&mut d, c.alloc() + 100);
    Reply::DataUncut(d[..d.len().min(c.alloc() as usize)].to_vec())
}

#[tokio::test]
async fn rtpg_truncated_forever() {
    let s = Script::on(|c| {
        if c.kind == Kind::Rtpg {
            always_more(c)
        } else {
            Reply::Normal
        }
    });
    let (f, r) = against(s, "rtpg").await;
    failed(&r, &["still truncated"], within(3, T));
    let n = f.commands_of(Kind::Rtpg).len();
    assert!((2..=5).contains(&n), "{n} RTPG commands");
}

#[tokio::test]
async fn rtpg_shorter_than_its_return_data_length() {
    // RETURN DATA LENGTH 60 fits the 128-byte allocation, but only 20 bytes come.
    let s = Script::on(|c| {
        if c.kind == Kind::Rtpg {
            let mut d = rtpg_data(c.rtpg_extended(), &Lu::default().groups);
            set_return_length(&mut d, 60);
            d.truncate(20);
            Reply::DataUncut(d)
        } else {
            Reply::Normal
        }
    });
    let (_, r) = against(s, "rtpg").await;
    failed(&r, &["truncated"], within(2, T));
}

#[tokio::test]
async fn rtpg_descriptor_overruns_return_data_length() {
    // One descriptor header claiming 3 ports, RETURN DATA LENGTH covering the header only.
    let s = Script::on(|c| {
        if c.kind == Kind::Rtpg {
            let mut d = rtpg_data(
                c.rtpg_extended(),
                &[group(1, true, AccessState::ActiveOptimized, &[1])],
            );
            let hdr = if c.rtpg_extended() { 8 } else { 4 };
            d[hdr + 7] = 3;
            let rdl = (d.len() - 4) as u32;
            set_return_length(&mut d, rdl);
            d.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 3]);
            Reply::DataUncut(d)
        } else {
            Reply::Normal
        }
    });
    let (_, r) = against(s, "rtpg").await;
    failed(&r, &["overruns"], within(2, T));
}

#[tokio::test]
async fn rtpg_reserved_format_type() {
    // Asked for the extended header, answered with FORMAT TYPE 010b (reserved).
    let s = Script::on(|c| {
        if c.kind == Kind::Rtpg {
            let mut d = rtpg_data(true, &Lu::default().groups);
            d[4] = 0x20;
            Reply::Data(d)
        } else {
            Reply::Normal
        }
    });
    let (_, r) = against(s, "rtpg").await;
    failed(&r, &["FORMAT TYPE", "reserved"], within(2, T));
}

#[tokio::test]
async fn rtpg_refused_with_and_without_extended_header() {
    let s = Script::always(Kind::Rtpg, check(ILLEGAL_REQUEST, 0x24, 0x00));
    let (f, r) = against(s, "rtpg").await;
    failed(&r, &["ILLEGAL REQUEST"], within(3, T));
    let seen = f.commands_of(Kind::Rtpg);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].rtpg_extended() && !seen[1].rtpg_extended());
}

#[tokio::test]
async fn rtpg_transitioning_forever() {
    let s = Script::always(Kind::Rtpg, check(NOT_READY, 0x04, 0x0a));
    let f = Fake::spawn(s).await;
    let r = host_t(2, &["rtpg", &f.url(0)]).await;
    failed(&r, &["transitioning"], within(2, 2));
    assert!(
        r.elapsed >= Duration::from_secs(1),
        "gave up after {:?}, long before the 2 s timeout",
        r.elapsed
    );
    // Retried about every half second, not in a busy loop.
    let n = f.commands_of(Kind::Rtpg).len();
    assert!((2..=12).contains(&n), "{n} RTPG commands in 2 s");
}

#[tokio::test]
async fn rtpg_unit_attention_forever() {
    let s = Script::always(Kind::Rtpg, check(UNIT_ATTENTION, 0x29, 0x00));
    let (f, r) = against(s, "rtpg").await;
    failed(&r, &["UNIT ATTENTION"], within(3, T));
    let n = f.commands_of(Kind::Rtpg).len();
    assert!((2..=10).contains(&n), "{n} RTPG commands");
}

#[tokio::test]
async fn rtpg_lun_not_supported() {
    let s = Script::always(Kind::Rtpg, check(ILLEGAL_REQUEST, 0x25, 0x00));
    let (_, r) = against(s, "rtpg").await;
    failed(&r, &["ILLEGAL REQUEST"], within(3, T));
}

// --- what must succeed ---

#[tokio::test]
async fn a_conforming_fake_passes() {
    let f = Fake::spawn(Script::default()).await;
    let r = host(&["discover", &f.portal()]).await;
    succeeded(&r);
    assert!(r.stdout.contains(TARGET), "{r:#?}");
    let r = host(&["inq", &f.url(0)]).await;
    succeeded(&r);
    let r = host(&["rtpg", &f.url(0)]).await;
    succeeded(&r);
    let first = &f.commands_of(Kind::Rtpg)[0];
    assert!(first.rtpg_extended(), "{first:?}");
    assert_eq!(first.alloc(), 128);
}

#[tokio::test]
async fn inq_reports_a_listed_page_the_target_refuses() {
    // inq's semantics: a listed page refused with a status is reported for that page and
    // the command succeeds.
    let s = Script::always(Kind::Vpd(0xb2), check(ILLEGAL_REQUEST, 0x24, 0x00));
    let (f, r) = against(s, "inq").await;
    succeeded(&r);
    assert!(r.stdout.contains("refused"), "{r:#?}");
    assert_eq!(f.commands_of(Kind::Vpd(0xb2)).len(), 1);
    assert!(r.stdout.contains(&WWID[1..]), "{r:#?}");
}

/// Refuse the first (extended) RTPG with this sense; answer the rest.
async fn refused_extended_then_ok(asc: u8) {
    let s = Script::on(move |c| match c.kind {
        Kind::Rtpg if c.rtpg_extended() => check(ILLEGAL_REQUEST, asc, 0),
        _ => Reply::Normal,
    });
    let (f, r) = against(s, "rtpg").await;
    succeeded(&r);
    let seen = f.commands_of(Kind::Rtpg);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].rtpg_extended() && !seen[1].rtpg_extended());
}

#[tokio::test]
async fn rtpg_extended_header_refused_24h_is_asked_again_without() {
    refused_extended_then_ok(0x24).await;
}

#[tokio::test]
async fn rtpg_extended_header_refused_asc_00h_is_asked_again_without() {
    refused_extended_then_ok(0x00).await;
}

#[tokio::test]
async fn rtpg_longer_than_128_bytes_is_asked_again_with_its_length() {
    // 20 groups of one port: 8 + 20 * 12 = 248 bytes.
    let groups: Vec<_> = (1..=20u16)
        .map(|g| group(g, g == 1, AccessState::Standby, &[g]))
        .collect();
    let lu = Lu {
        groups,
        ..Lu::default()
    };
    let s = Script {
        lu,
        ..Script::default()
    };
    let (f, r) = against(s, "rtpg").await;
    succeeded(&r);
    let seen = f.commands_of(Kind::Rtpg);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].alloc(), 128);
    assert!(seen[1].alloc() >= 248, "{seen:?}");
    assert!(r.stdout.contains("20"), "{r:#?}");
}

#[tokio::test]
async fn rtpg_one_unit_attention_then_the_report() {
    let s = Script::on(|c| match c.kind {
        Kind::Rtpg if c.nth == 0 => check(UNIT_ATTENTION, 0x2a, 0x06),
        _ => Reply::Normal,
    });
    let (f, r) = against(s, "rtpg").await;
    succeeded(&r);
    assert_eq!(f.commands_of(Kind::Rtpg).len(), 2);
}

#[tokio::test]
async fn rtpg_transitioning_once_then_the_report() {
    let s = Script::on(|c| match c.kind {
        Kind::Rtpg if c.nth == 0 => check(NOT_READY, 0x04, 0x0a),
        _ => Reply::Normal,
    });
    let (f, r) = against(s, "rtpg").await;
    succeeded(&r);
    assert_eq!(f.commands_of(Kind::Rtpg).len(), 2);
}

// ---------------------------------------------------------------------------------------
// paths: one good path, one bad
// ---------------------------------------------------------------------------------------

/// The fake of a second path to the same LU: relative port 2 in group 2.
fn second_path(reply: impl Fn(&Cmd) -> Reply + Send + Sync + 'static) -> Script {
    Script {
        lu: Lu {
            rel_port: 2,
            group: 2,
            ..Lu::default()
        },
        reply: std::sync::Arc::new(reply),
        ..Script::default()
    }
}

#[tokio::test]
async fn paths_with_one_misbehaving_path() {
    // The lead's semantics: the map shows the paths that could be examined; each that could
    // not is one `ironlun host: path URL: why` line on stderr, and the status is 2.
    let good = Fake::spawn(Script::default()).await;
    let bad = Fake::spawn(second_path(|c| match c.kind {
        Kind::Rtpg => Reply::Silent,
        _ => Reply::Normal,
    }))
    .await;
    let r = host(&["paths", &good.url(0), &bad.url(0)]).await;
    let show = format!("{r:#?}");
    assert_eq!(r.code, Some(2), "{show}");
    assert!(!r.stderr.contains("panicked"), "{show}");
    assert!(r.elapsed < within(3, T), "{show}");
    // The good path is shown under the LU's WWID ...
    assert!(r.stdout.contains(WWID), "{show}");
    assert!(r.stdout.contains(&good.url(0)), "{show}");
    assert!(!r.stdout.contains(&bad.url(0)), "{show}");
    // ... and the bad one reported on one line with why.
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{show}");
    let want = format!("ironlun host: path {}: ", bad.url(0));
    assert!(lines[0].starts_with(&want), "{show}");
    assert!(lines[0].contains("no answer within 1 s"), "{show}");
    eprintln!(
        "[paths_with_one_misbehaving_path] {:>5} ms: {}",
        r.elapsed.as_millis(),
        lines[0]
    );
}

#[tokio::test]
async fn paths_with_every_path_misbehaving() {
    // One path's target closes the connection at INQUIRY, the other garbles VPD 0x83.
    let a = Fake::spawn(Script::always(Kind::Inquiry, Reply::Close)).await;
    let b = Fake::spawn(second_path(|c| match c.kind {
        Kind::Vpd(0x83) => Reply::Data(vpd_page(0x83, &designation(1, 0, 3, &NAA[..3]))),
        _ => Reply::Normal,
    }))
    .await;
    let r = host(&["paths", &a.url(0), &b.url(0)]).await;
    let show = format!("{r:#?}");
    assert_eq!(r.code, Some(2), "{show}");
    assert!(!r.stderr.contains("panicked"), "{show}");
    assert!(r.elapsed < within(2, T), "{show}");
    assert!(!r.stdout.contains(WWID), "{show}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{show}");
    assert!(
        lines[0].starts_with(&format!("ironlun host: path {}: ", a.url(0))),
        "{show}"
    );
    assert!(lines[0].contains("closed"), "{show}");
    assert!(
        lines[1].starts_with(&format!("ironlun host: path {}: ", b.url(0))),
        "{show}"
    );
    assert!(lines[1].contains("NAA"), "{show}");
    for l in lines {
        eprintln!(
            "[paths_with_every_path_misbehaving] {:>5} ms: {l}",
            r.elapsed.as_millis()
        );
    }
}

#[tokio::test]
async fn paths_with_two_good_paths() {
    let a = Fake::spawn(Script::default()).await;
    let b = Fake::spawn(second_path(|_| Reply::Normal)).await;
    let r = host(&["paths", &a.url(0), &b.url(0)]).await;
    succeeded(&r);
    assert_eq!(r.stdout.matches(WWID).count(), 1, "one map: {r:#?}");
    assert!(
        r.stdout.contains(&a.url(0)) && r.stdout.contains(&b.url(0)),
        "{r:#?}"
    );
}
