//! End to end: data transfer flows against the real daemon — R2T-solicited writes with
//! several outstanding R2Ts, immediate and unsolicited data, many commands outstanding,
//! two initiators writing and verifying each other's data concurrently, NOP pings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ironlun_initiator::scsi::cdb;
use ironlun_initiator::session::DataOutPolicy;
use ironlun_initiator::{Bytes, CommandOptions};
use support::*;

const MIB: usize = 1 << 20;

/// ImmediateData=No, InitialR2T=Yes, MaxBurstLength=8192, MaxOutstandingR2T=4: a 1 MiB
/// write takes exactly 128 R2Ts of 8192 bytes, and the target keeps 4 outstanding at once.
#[tokio::test]
async fn r2t_writes_with_several_outstanding() {
    let d = Daemon::start();
    let cfg = normal("r2t")
        .offer("ImmediateData", "No")
        .offer("InitialR2T", "Yes")
        .offer("MaxBurstLength", "8192")
        .offer("MaxOutstandingR2T", "4");
    let s = login(&d, cfg).await;
    assert_eq!(s.params().max_outstanding_r2t, 4);
    assert_eq!(s.params().max_burst_length, 8192);
    let data = Bytes::from(pattern(10, MIB));
    let opts = CommandOptions {
        data_out: DataOutPolicy::Batch(4),
        ..CommandOptions::default()
    };
    // Batch(4) answers R2Ts only once 4 are outstanding: a target that never has 4
    // outstanding leaves the write hanging (the guard reports it).
    let p = guard(
        "write start",
        s.start_command(
            0,
            &cdb::write16(0, (MIB as u32) / BLOCK, false),
            Some(data.clone()),
            0,
            opts,
        ),
    )
    .await
    .unwrap();
    let r = guard("1 MiB write with 4 R2Ts outstanding", p.wait())
        .await
        .unwrap();
    assert_eq!(r.status, 0, "{r:?}");
    let st = s.stats();
    assert_eq!(st.r2ts, 128);
    assert_eq!(st.max_r2t_length, 8192);
    assert_eq!(st.max_outstanding_r2t, 4);
    assert_eq!(st.immediate_bytes + st.unsolicited_bytes, 0);
    assert_eq!(st.solicited_bytes, MIB as u64);
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    let back = good(
        guard("read", s.read16(0, 0, (MIB as u32) / BLOCK, BLOCK)).await,
        "read",
    );
    assert_eq!(back, data);

    // Several 1 MiB writes at once, R2Ts answered promptly, then verified.
    let mut pending = Vec::new();
    for i in 0..4u32 {
        let data = Bytes::from(pattern(20 + i, MIB));
        let lba = u64::from(4096 + i * 2048);
        let p = s
            .start_command(
                0,
                &cdb::write16(lba, (MIB as u32) / BLOCK, false),
                Some(data.clone()),
                0,
                CommandOptions::default(),
            )
            .await
            .unwrap();
        pending.push((p, lba, data));
    }
    for (p, lba, data) in pending {
        let r = guard("concurrent write", p.wait()).await.unwrap();
        assert_eq!(r.status, 0, "{r:?}");
        let back = good(
            guard("read", s.read16(0, lba, (MIB as u32) / BLOCK, BLOCK)).await,
            "read",
        );
        assert_eq!(back, data);
    }
    let st = s.stats();
    assert_eq!(st.r2ts, 5 * 128);
    assert!(st.violations.is_empty(), "{:?}", st.violations);
}

/// Immediate data up to FirstBurstLength and the target's MaxRecvDataSegmentLength, the
/// rest by R2T; unsolicited Data-Out when InitialR2T=No.
#[tokio::test]
async fn immediate_and_unsolicited_data() {
    let d = Daemon::start();
    let cfg = normal("unsol1")
        .offer("ImmediateData", "Yes")
        .offer("InitialR2T", "Yes")
        .offer("FirstBurstLength", "65536");
    let s = login(&d, cfg).await;
    let data = pattern(30, MIB);
    good(
        guard("write", s.write16(0, 0, data.clone(), BLOCK, false)).await,
        "write",
    );
    let st = s.stats();
    assert_eq!(st.immediate_bytes, 65536);
    assert_eq!(st.unsolicited_bytes, 0);
    assert_eq!(st.solicited_bytes, (MIB - 65536) as u64);
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    let back = good(
        guard("read", s.read16(0, 0, (MIB as u32) / BLOCK, BLOCK)).await,
        "read",
    );
    assert_eq!(&back[..], &data[..]);

    let cfg = normal("unsol2")
        .offer("ImmediateData", "No")
        .offer("InitialR2T", "No")
        .offer("FirstBurstLength", "65536")
        .offer("MaxBurstLength", "131072");
    let s = login(&d, cfg).await;
    assert!(!s.params().initial_r2t);
    let data = pattern(31, MIB);
    good(
        guard("write", s.write16(0, 8192, data.clone(), BLOCK, true)).await,
        "write",
    );
    let st = s.stats();
    assert_eq!(st.immediate_bytes, 0);
    assert_eq!(st.unsolicited_bytes, 65536);
    assert_eq!(st.solicited_bytes, (MIB - 65536) as u64);
    assert_eq!(st.r2ts, ((MIB - 65536) / 131_072 + 1) as u64);
    assert!(st.max_r2t_length <= 131_072);
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    let back = good(
        guard("read", s.read16(0, 8192, (MIB as u32) / BLOCK, BLOCK)).await,
        "read",
    );
    assert_eq!(&back[..], &data[..]);

    // A write that fits in the immediate data completes without any R2T.
    let before = s.stats().r2ts;
    let cfg = normal("unsol3").offer("ImmediateData", "Yes");
    let s3 = login(&d, cfg).await;
    good(
        guard(
            "small write",
            s3.write16(0, 9, pattern(32, 4096), BLOCK, false),
        )
        .await,
        "w",
    );
    assert_eq!(s3.stats().r2ts, 0);
    assert_eq!(s.stats().r2ts, before);
}

/// Many commands in flight at once on one session: all complete, data intact.
#[tokio::test]
async fn many_outstanding_commands() {
    let d = Daemon::start();
    let s = login(&d, normal("many")).await;
    let mut tasks = Vec::new();
    for i in 0..64u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let lba = u64::from(i) * 64;
            let data = pattern(100 + i, 64 * BLOCK as usize);
            good(s.write16(0, lba, data.clone(), BLOCK, false).await, "write");
            let back = good(s.read16(0, lba, 64, BLOCK).await, "read");
            assert_eq!(&back[..], &data[..], "lba {lba}");
        }));
    }
    for t in tasks {
        guard("64 concurrent commands", t).await.unwrap();
    }
    let c = s.counters();
    // TUR + 128 commands consumed CmdSNs; the target's window kept up.
    assert!(ironlun_initiator::iscsi::serial::sn_le(
        c.cmd_sn,
        c.max_cmd_sn.wrapping_add(1)
    ));
    assert!(s.stats().violations.is_empty());
}

/// Two initiators at once, each writing its own region with its own data, then each
/// verifying the other's writes.
#[tokio::test]
async fn two_initiators_verify_each_other() {
    let d = Daemon::start();
    let a = login(&d, normal("alice")).await;
    let b = login(
        &d,
        normal("bob")
            .offer("ImmediateData", "No")
            .offer("MaxBurstLength", "16384"),
    )
    .await;
    const CHUNKS: u32 = 16;
    const LEN: usize = 256 * 1024;
    const BLOCKS: u32 = (LEN as u32) / BLOCK;
    fn region(who: u32, i: u32) -> u64 {
        u64::from((who * CHUNKS + i) * BLOCKS)
    }
    let blocks = BLOCKS;
    let writer = |s: ironlun_initiator::Session, who: u32| async move {
        let mut set = Vec::new();
        for i in 0..CHUNKS {
            let s = s.clone();
            set.push(tokio::spawn(async move {
                let data = pattern(who * 1000 + i, LEN);
                good(
                    s.write16(0, region(who, i), data, BLOCK, false).await,
                    "write",
                );
            }));
        }
        for t in set {
            t.await.unwrap();
        }
    };
    let (ra, rb) = guard("concurrent writers", async {
        tokio::join!(
            tokio::spawn(writer(a.clone(), 0)),
            tokio::spawn(writer(b.clone(), 1))
        )
    })
    .await;
    ra.unwrap();
    rb.unwrap();
    // Each reads the other's regions.
    for (reader, other) in [(&a, 1u32), (&b, 0u32)] {
        for i in 0..CHUNKS {
            let back = good(
                guard("read", reader.read16(0, region(other, i), blocks, BLOCK)).await,
                "read other's data",
            );
            assert_eq!(
                &back[..],
                &pattern(other * 1000 + i, LEN)[..],
                "region {other}/{i}"
            );
        }
    }
    assert!(a.stats().violations.is_empty() && b.stats().violations.is_empty());
}

#[tokio::test]
async fn nop_ping_echoes_data() {
    let d = Daemon::start();
    let s = login(&d, normal("nop")).await;
    let payload = pattern(7, 3000);
    let echo = guard("ping", s.ping(payload.clone())).await.unwrap();
    assert_eq!(&echo[..], &payload[..]);
    assert!(guard("empty ping", s.ping(Vec::new()))
        .await
        .unwrap()
        .is_empty());
}

/// READ CAPACITY, INQUIRY and REPORT LUNS through the helpers agree with the default LU.
#[tokio::test]
async fn basic_commands() {
    let d = Daemon::start();
    let s = login(&d, normal("basic")).await;
    let cap = guard("READ CAPACITY(16)", s.read_capacity16(0))
        .await
        .unwrap();
    assert_eq!(cap.block_size, BLOCK);
    assert_eq!(cap.blocks(), (1u64 << 30) / u64::from(BLOCK));
    let inq = good(
        guard("INQUIRY", s.inquiry(0, false, 0, 96)).await,
        "inquiry",
    );
    assert_eq!(inq[0] & 0x1f, 0);
    assert_eq!(&inq[8..16], b"IRONLUN ");
    assert_eq!(
        guard("REPORT LUNS", s.report_luns(0)).await.unwrap(),
        vec![0]
    );
    good(guard("SYNC CACHE", s.sync_cache(0)).await, "sync cache");
    // Reading past the end: ILLEGAL REQUEST / LBA OUT OF RANGE.
    let r = guard("read past end", s.read16(0, cap.blocks(), 1, BLOCK))
        .await
        .unwrap();
    assert_eq!(r.status, ironlun_scsi::status::CHECK_CONDITION);
    assert_eq!(r.sense_triple(), Some((0x05, 0x21, 0x00)));
}
