//! End to end: the TPG keep-alive attributes (LIO's `nopin_timeout` /
//! `nopin_response_timeout`). A silent connection is pinged with a NOP-In after
//! `nopin_timeout` seconds and dropped `nopin_response_timeout` seconds later; with
//! `nopin_timeout=0` it is never pinged and stays up. Ports 3780-3789.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use ironlun_initiator::iscsi::pdu::{Bhs, RESERVED_TAG};
use ironlun_initiator::Error;
use support::raw::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_pinged_then_dropped_unless_pings_are_off() {
    let d = Daemon::start_in(3780..3790);
    d.cli(&["set", &format!("{TPG}/attrib/nopin_timeout"), "3"]);
    d.cli(&["set", &format!("{TPG}/attrib/nopin_response_timeout"), "3"]);
    let mut raw = Raw::login(d.addr(), &normal("nopin")).await;
    let start = Instant::now();
    // Read without answering: the first PDU is the target's ping, then the connection ends.
    let p = guard("NOP-In", raw.conn.recv_pdu()).await.expect("NOP-In");
    let pinged = start.elapsed();
    match &p.bhs {
        Bhs::NopIn(n) => assert!(n.itt == RESERVED_TAG && n.ttt != RESERVED_TAG, "{n:?}"),
        other => panic!("expected a NOP-In ping, got {other:?}"),
    }
    assert!(
        pinged >= Duration::from_millis(2500),
        "pinged after {pinged:?}"
    );
    match guard("close", raw.conn.recv_pdu()).await {
        Err(Error::ConnectionClosed) | Err(Error::Io(_)) => {}
        other => panic!("expected the unanswered ping to end the connection, got {other:?}"),
    }
    let dropped = start.elapsed() - pinged;
    assert!(
        dropped >= Duration::from_millis(2500),
        "dropped {dropped:?} after the ping"
    );

    // Pings off: 8 s of silence, no PDU, and the connection still answers.
    d.cli(&["set", &format!("{TPG}/attrib/nopin_timeout"), "0"]);
    let mut raw = Raw::login(d.addr(), &normal("nopin-off")).await;
    let quiet = tokio::time::timeout(Duration::from_secs(8), raw.conn.recv_pdu()).await;
    assert!(
        quiet.is_err(),
        "a PDU arrived on a silent connection: {quiet:?}"
    );
    raw.ping().await;
    raw.tur_good().await;
}
