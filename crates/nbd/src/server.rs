//! The listening side: accepts clients on TCP or a Unix socket, runs the handshake and the
//! transmission phase for each on its own task (NetworkBlockDevice/nbd doc/proto.md,
//! "Protocol phases"), and keeps one bad client from disturbing the others: a handshake
//! deadline, a cap on connections (beyond it a new client is closed at once), and per-connection
//! bounds on requests in flight.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::handshake::{self, Export, Outcome};
use crate::transmit::{self, End, Limits};
use crate::BlockDev;

/// How the server runs; [`ServerConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The export's name (the empty name also selects it, as the default export).
    pub export_name: String,
    /// Connections served at once; one more is closed right after accept (and logged).
    pub max_connections: usize,
    /// Requests one connection may have in flight; further requests wait to be read.
    pub max_in_flight: usize,
    /// Payload bytes (READ and WRITE) one connection may have in flight.
    pub max_in_flight_bytes: u32,
    /// Payload bytes all the connections of this listener may have in flight together beyond
    /// each one's guaranteed share: with it, what bounds the server's memory when many clients
    /// stop reading their replies (at most connections × share + this).
    pub max_total_in_flight_bytes: u32,
    /// Payload bytes in flight each connection may have whatever the others hold, so that
    /// clients that stall cannot starve one that does not.
    pub guaranteed_in_flight_bytes: u32,
    /// Time a client has from connect to the end of the handshake.
    pub handshake_timeout: Duration,
    /// How long a client may stall its connection in the middle of a transfer: replies ready
    /// and none of them read, or a WRITE's payload begun and not finished. Past it the client
    /// is dropped (it would otherwise hold its in-flight requests, and its place, forever).
    pub stall_timeout: Duration,
}

impl ServerConfig {
    pub fn new(export_name: impl Into<String>) -> Self {
        ServerConfig {
            export_name: export_name.into(),
            max_connections: 128,
            max_in_flight: 64,
            max_in_flight_bytes: 16 << 20,
            max_total_in_flight_bytes: 64 << 20,
            guaranteed_in_flight_bytes: 1 << 20,
            handshake_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(60),
        }
    }
}

/// A socket the server accepts clients on: a [`TcpListener`] or a [`UnixListener`].
pub trait Listener: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next client and a description of it for the log.
    fn accept_client(&self) -> impl Future<Output = io::Result<(Self::Stream, String)>> + Send;
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    async fn accept_client(&self) -> io::Result<(TcpStream, String)> {
        let (s, peer) = self.accept().await?;
        // Replies are whole messages; do not hold them back.
        let _ = s.set_nodelay(true);
        Ok((s, peer.to_string()))
    }
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    async fn accept_client(&self) -> io::Result<(UnixStream, String)> {
        let (s, peer) = self.accept().await?;
        let name = match peer.as_pathname() {
            Some(p) => format!("unix:{}", p.display()),
            None => "unix client".to_owned(),
        };
        Ok((s, name))
    }
}

/// Serves `dev` as the export `export_name` on `listener` with the default limits until
/// `shutdown` completes.
pub async fn serve<L, D>(
    listener: L,
    dev: Arc<D>,
    export_name: &str,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()>
where
    L: Listener,
    D: BlockDev,
{
    serve_with(listener, dev, ServerConfig::new(export_name), shutdown).await
}

/// [`serve`] with explicit limits. When `shutdown` completes the server stops accepting and
/// drops its connections.
pub async fn serve_with<L, D>(
    listener: L,
    dev: Arc<D>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()>
where
    L: Listener,
    D: BlockDev,
{
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let total_cap = config.max_total_in_flight_bytes.max(1);
    let total = Arc::new(Semaphore::new(total_cap as usize));
    let mut conns = JoinSet::new();
    let mut refused: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept_client() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors or a connection reset before accept: wait, go on.
                tracing::warn!("nbd: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Logged at 1, 2, 4, 8… refusals so that a flood does not flood the log.
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    "nbd: refusing {peer}: already {} connections (the maximum); \
                     {refused} refused so far",
                    config.max_connections
                );
            }
            drop(stream);
            continue;
        };
        let (dev, config, total) = (dev.clone(), config.clone(), total.clone());
        conns.spawn(async move {
            connection(stream, &peer, dev, &config, total).await;
            drop(slot);
        });
    }
    conns.shutdown().await;
    Ok(())
}

/// One client from accept to close.
async fn connection<S, D>(
    stream: S,
    peer: &str,
    dev: Arc<D>,
    config: &ServerConfig,
    total: Arc<Semaphore>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    D: BlockDev,
{
    let (r, w) = tokio::io::split(stream);
    let mut r = BufReader::with_capacity(64 << 10, r);
    let mut w = BufWriter::with_capacity(64 << 10, w);
    let export = Export {
        dev: &*dev,
        name: &config.export_name,
    };
    let hs = handshake::negotiate(&mut r, &mut w, &export);
    let structured = match tokio::time::timeout(config.handshake_timeout, hs).await {
        Err(_) => {
            tracing::info!("nbd: {peer}: handshake timed out");
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!("nbd: {peer}: left during the handshake: {e}");
            return;
        }
        Ok(Ok(Outcome::Closed { why })) => {
            tracing::info!("nbd: {peer}: closed in the handshake: {why}");
            return;
        }
        Ok(Ok(Outcome::Transmission { structured })) => structured,
    };
    tracing::info!("nbd: {peer}: connected (structured replies: {structured})");
    let limits = Limits {
        max_in_flight: config.max_in_flight,
        max_in_flight_bytes: config.max_in_flight_bytes,
        stall_timeout: config.stall_timeout,
        total,
        total_cap: config.max_total_in_flight_bytes.max(1),
        guaranteed: config.guaranteed_in_flight_bytes,
    };
    match transmit::run(&mut r, w, dev.clone(), structured, limits, peer).await {
        Ok(End::Disconnect) => tracing::info!("nbd: {peer}: disconnected"),
        Ok(End::Eof) => tracing::info!("nbd: {peer}: went away"),
        Ok(End::Protocol(why)) => tracing::warn!("nbd: {peer}: closed: {why}"),
        Err(e) => tracing::info!("nbd: {peer}: connection error: {e}"),
    }
}
