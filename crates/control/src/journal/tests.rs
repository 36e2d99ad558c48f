use std::io::Write;

use super::*;
use crate::tree::tests::Fake;
use crate::tree::{mutate_in_place, Op};

fn op(c: &mut Config, op: Op) -> Touched {
    let (_, touched, _) = mutate_in_place(c, &Fake, &op).expect("change");
    touched
}
fn create(path: &str, args: &[&str]) -> Op {
    Op::Create {
        path: path.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

const T: &str = "iscsi/iqn.2026-12.org.ironlun:j";

/// A target with one TPG, folded: the base the records follow.
fn base(dir: &Path) -> (Store, Config) {
    let mut c = Config::default();
    op(&mut c, create(&format!("{T}/tpgt_1"), &[]));
    let mut s = Store::new(dir);
    s.fold(&c).expect("fold");
    (s, c)
}

/// Changes of every kind the journal records, each recorded as the service does.
fn changes(s: &mut Store, c: &mut Config) {
    let ops = [
        create("core/rd_mcp_1/a", &["size=1M"]),
        create("core/rd_mcp_1/b", &["size=1M"]),
        create(&format!("{T}/tpgt_1/lun/lun_0"), &["dev=core/rd_mcp_1/a"]),
        create(&format!("{T}/tpgt_1/lun/lun_300"), &["dev=core/rd_mcp_1/b"]),
        create(&format!("{T}/tpgt_1/np/127.0.0.1:3999"), &[]),
        create(&format!("{T}/tpgt_1/acls/iqn.2026-12.org.ironlun:h"), &[]),
        create(
            &format!("{T}/tpgt_1/acls/iqn.2026-12.org.ironlun:h/lun_0"),
            &["tpg_lun=300"],
        ),
        Op::Set {
            path: "core/rd_mcp_1/a/attrib/emulate_tpu".into(),
            value: "1".into(),
        },
        Op::Set {
            path: format!("{T}/tpgt_1/enable"),
            value: "1".into(),
        },
        // A LUN delete takes the mapped LUN with it; a device delete its LUN.
        Op::Delete {
            path: format!("{T}/tpgt_1/lun/lun_300"),
        },
        Op::Delete {
            path: "core/rd_mcp_1/a".into(),
        },
        create("core/rd_mcp_1/c", &["size=2M"]),
    ];
    for o in ops {
        let t = op(c, o.clone());
        assert!(!t.whole, "{o:?} should not need a whole save");
        s.record(c, &t).expect("record");
    }
}

#[test]
fn every_recorded_change_is_replayed_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, mut c) = base(dir.path());
    let folded = std::fs::read(dir.path().join("config.json")).expect("config");
    changes(&mut s, &mut c);
    // config.json was not rewritten: the changes are in the journal only.
    assert_eq!(
        std::fs::read(dir.path().join("config.json")).expect("config"),
        folded
    );
    assert_eq!(load(dir.path(), &Fake).expect("load"), c);
    assert!(c
        .device(&DevKey::parse("core/rd_mcp_1/a").expect("key"))
        .is_none());
}

#[test]
fn a_torn_last_record_is_ignored_and_the_ones_before_it_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, mut c) = base(dir.path());
    changes(&mut s, &mut c);
    let path = dir.path().join(JOURNAL_FILE);
    let whole = std::fs::read(&path).expect("journal");
    // A record cut anywhere (the crash came before its fdatasync returned: never answered).
    let mut more = c.clone();
    let t = op(&mut more, create("core/rd_mcp_1/torn", &["size=1M"]));
    let rec = frame(&serde_json::to_vec(&entries(&more, &t).expect("entries")).expect("json"));
    for cut in [1, 4, 8, rec.len() / 2, rec.len() - 1] {
        let mut data = whole.clone();
        data.extend_from_slice(&rec[..cut]);
        std::fs::write(&path, &data).expect("write");
        assert_eq!(load(dir.path(), &Fake).expect("load"), c, "cut at {cut}");
    }
    // Whole, it counts.
    let mut data = whole.clone();
    data.extend_from_slice(&rec);
    std::fs::write(&path, &data).expect("write");
    assert_eq!(load(dir.path(), &Fake).expect("load"), more);
    // A flipped byte in its payload: its CRC fails, it is not applied.
    let last = data.len() - 3;
    data[last] ^= 0x20;
    std::fs::write(&path, &data).expect("write");
    assert_eq!(load(dir.path(), &Fake).expect("load"), c);
}

#[test]
fn a_journal_left_from_before_the_last_fold_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, mut c) = base(dir.path());
    changes(&mut s, &mut c);
    let old = std::fs::read(dir.path().join(JOURNAL_FILE)).expect("journal");
    // A change after which config.json is written whole, then a crash before the new
    // journal: the old journal's records are in config.json already and one of them would
    // bring back a device that is gone.
    op(
        &mut c,
        Op::Delete {
            path: "core/rd_mcp_1/b".into(),
        },
    );
    persist::save(&dir.path().join("config.json"), &c).expect("save");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(dir.path().join(JOURNAL_FILE))
        .expect("open");
    f.write_all(&old).expect("write");
    assert_eq!(load(dir.path(), &Fake).expect("load"), c);
}

#[test]
fn the_journal_is_folded_into_config_json_once_it_has_grown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, mut c) = base(dir.path());
    let mut folds = 0;
    let mut last = std::fs::metadata(dir.path().join(JOURNAL_FILE))
        .expect("meta")
        .len();
    for i in 0..5000 {
        let t = op(&mut c, create(&format!("core/rd_mcp_1/d{i}"), &["size=1M"]));
        s.record(&c, &t).expect("record");
        let now = std::fs::metadata(dir.path().join(JOURNAL_FILE))
            .expect("meta")
            .len();
        if now < last {
            folds += 1;
        }
        last = now;
        assert!(
            now <= FOLD_MIN.max(s.base_len) + 4096,
            "journal of {now} bytes not folded"
        );
    }
    assert!(folds >= 1, "never folded");
    assert_eq!(load(dir.path(), &Fake).expect("load"), c);
}

#[test]
fn whole_changes_fold_and_their_journal_starts_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, mut c) = base(dir.path());
    changes(&mut s, &mut c);
    let t = op(&mut c, create("iscsi/iqn.2026-12.org.ironlun:other", &[]));
    assert!(t.whole);
    s.record(&c, &t).expect("record");
    let data = std::fs::read(dir.path().join(JOURNAL_FILE)).expect("journal");
    assert_eq!(records(&data).0.len(), 1, "only the header");
    assert_eq!(
        persist::load(&dir.path().join("config.json"), &Fake).expect("config"),
        c
    );
    assert_eq!(load(dir.path(), &Fake).expect("load"), c);
}
