//! The etcd rig of the cluster tests (support::etcd) on its own: a 3-member cluster comes
//! up, elects a leader, elects another within 5 s when the leader is killed, serves writes
//! (etcdctl) and reads (the JSON gateway) on two members, takes the killed member back, and
//! keeps going while a member is paused. Ports 4100-4112.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::etcd::{b64, etcd_or_skip, unb64, EtcdCluster};

#[test]
fn base64_round_trip() {
    for (raw, enc) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
    ] {
        assert_eq!(b64(raw.as_bytes()), enc);
        assert_eq!(unb64(enc), raw.as_bytes());
    }
}

fn etcdctl(c: &EtcdCluster, args: &[&str]) -> String {
    let o = Command::new("etcdctl")
        .arg(format!("--endpoints={}", c.endpoints()))
        .arg("--command-timeout=5s")
        .args(args)
        .env("ETCDCTL_API", "3")
        .output()
        .expect("run etcdctl");
    assert!(
        o.status.success(),
        "etcdctl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn leader_failover_restart_pause() {
    if !etcd_or_skip() {
        return;
    }
    let mut c = EtcdCluster::start(4100);
    assert_eq!(
        c.endpoints(),
        "http://127.0.0.1:4100,http://127.0.0.1:4101,http://127.0.0.1:4102"
    );
    let old = c.leader();
    eprintln!("leader: m{old}");

    let killed = Instant::now();
    c.kill(old);
    assert!(!c.alive(old));
    let new = c.leader();
    let took = killed.elapsed();
    eprintln!("new leader: m{new} after {took:?}");
    assert_ne!(new, old, "the killed member cannot lead");
    assert!(took < Duration::from_secs(5), "re-election took {took:?}");

    etcdctl(&c, &["put", "/ironlun-test/a", "one"]);
    c.put("/ironlun-test/b", "two");
    c.put("/ironlun-tesu", "outside the prefix");
    let want = vec![
        ("/ironlun-test/a".to_string(), "one".to_string()),
        ("/ironlun-test/b".to_string(), "two".to_string()),
    ];
    assert_eq!(c.get_prefix("/ironlun-test/"), want);
    assert!(etcdctl(&c, &["get", "/ironlun-test/b"]).contains("two"));

    c.restart(old);
    assert!(c.alive(old));
    // The restarted member caught up: it answers the range itself.
    let v = c
        .post(
            old,
            "/v3/kv/range",
            &format!(r#"{{"key":"{}"}}"#, b64(b"/ironlun-test/a")),
        )
        .expect("range on the restarted member");
    assert_eq!(v["count"].as_str(), Some("1"), "{v}");

    // A paused follower: the other two still have a leader and take writes.
    let leader = c.leader();
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    c.pause(follower);
    assert_eq!(c.leader(), leader);
    c.put("/ironlun-test/c", "three");
    c.resume(follower);
    assert_eq!(c.get_prefix("/ironlun-test/").len(), 3);
    assert!(c.alive(follower));
    assert!(!c.log_tail(follower, 5).is_empty());
}
