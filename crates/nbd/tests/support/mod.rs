//! Shared by the NBD integration tests: an in-memory disk, a server on its own runtime
//! (TCP on 127.0.0.1:0 or a Unix socket), a check for the real clients, and a small raw
//! client for the tests that must misbehave.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ironlun_nbd::proto;
use ironlun_nbd::{serve_with, BlockDev, ServerConfig};

pub const DISK_SIZE: usize = 64 << 20;
pub const BLOCK: u32 = 512;
pub const MAX_REQUEST: u32 = 1 << 20;

/// A 64 MiB disk in memory that counts what reached it.
#[derive(Default)]
pub struct MemDisk {
    pub data: Mutex<Vec<u8>>,
    pub writes: AtomicU64,
    pub fua_writes: AtomicU64,
    pub flushes: AtomicU64,
    pub trims: AtomicU64,
    pub zeroes: AtomicU64,
    /// The next read or write fails with this kind (then the disk works again).
    pub fail_next: Mutex<Option<io::ErrorKind>>,
    /// A read at this offset takes 300 ms (to show replies leave in completion order).
    pub slow_read_at: Mutex<Option<u64>>,
}

impl MemDisk {
    pub fn new() -> Arc<Self> {
        Arc::new(MemDisk {
            data: Mutex::new(vec![0u8; DISK_SIZE]),
            ..Default::default()
        })
    }

    pub fn bytes(&self, offset: usize, len: usize) -> Vec<u8> {
        self.data.lock().unwrap()[offset..offset + len].to_vec()
    }

    pub fn fill(&self, offset: usize, len: usize, byte: u8) {
        self.data.lock().unwrap()[offset..offset + len].fill(byte);
    }

    fn range(&self, offset: u64, len: u32) -> io::Result<std::ops::Range<usize>> {
        if let Some(kind) = self.fail_next.lock().unwrap().take() {
            return Err(io::Error::new(kind, "injected failure"));
        }
        let start = offset as usize;
        let end = start + len as usize;
        if end > DISK_SIZE {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        Ok(start..end)
    }
}

impl BlockDev for MemDisk {
    fn size(&self) -> u64 {
        DISK_SIZE as u64
    }
    fn block_size(&self) -> u32 {
        BLOCK
    }
    fn max_request(&self) -> u32 {
        MAX_REQUEST
    }
    fn can_trim(&self) -> bool {
        true
    }
    fn can_write_zeroes(&self) -> bool {
        true
    }
    async fn read(&self, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        let slow = *self.slow_read_at.lock().unwrap() == Some(offset);
        if slow {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        let r = self.range(offset, len)?;
        Ok(self.data.lock().unwrap()[r].to_vec())
    }
    async fn write(&self, offset: u64, data: Vec<u8>, fua: bool) -> io::Result<()> {
        let r = self.range(offset, data.len() as u32)?;
        self.data.lock().unwrap()[r].copy_from_slice(&data);
        self.writes.fetch_add(1, Ordering::Relaxed);
        if fua {
            self.fua_writes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
    async fn flush(&self) -> io::Result<()> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    async fn trim(&self, offset: u64, len: u32) -> io::Result<()> {
        let r = self.range(offset, len)?;
        self.data.lock().unwrap()[r].fill(0);
        self.trims.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    async fn write_zeroes(&self, offset: u64, len: u32, _fua: bool) -> io::Result<()> {
        let r = self.range(offset, len)?;
        self.data.lock().unwrap()[r].fill(0);
        self.zeroes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Where a test server listens.
pub enum Addr {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

/// A server on its own runtime; dropping it shuts the server down.
pub struct Server {
    pub disk: Arc<MemDisk>,
    pub addr: Addr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    rt: Option<tokio::runtime::Runtime>,
    _dir: Option<tempfile::TempDir>,
}

pub const EXPORT: &str = "lun0";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

impl Server {
    pub fn tcp() -> Server {
        Server::tcp_with(ServerConfig::new(EXPORT))
    }

    pub fn tcp_with(config: ServerConfig) -> Server {
        let rt = runtime();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = Addr::Tcp(listener.local_addr().unwrap());
        Server::start(rt, listener, addr, config, None)
    }

    pub fn unix() -> Server {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nbd.sock");
        let listener = {
            let _g = rt.enter();
            tokio::net::UnixListener::bind(&path).unwrap()
        };
        let config = ServerConfig::new(EXPORT);
        Server::start(rt, listener, Addr::Unix(path), config, Some(dir))
    }

    fn start<L: ironlun_nbd::Listener>(
        rt: tokio::runtime::Runtime,
        listener: L,
        addr: Addr,
        config: ServerConfig,
        dir: Option<tempfile::TempDir>,
    ) -> Server {
        let disk = MemDisk::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let d = disk.clone();
        rt.spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            serve_with(listener, d, config, stop).await.unwrap();
        });
        Server {
            disk,
            addr,
            stop: Some(tx),
            rt: Some(rt),
            _dir: dir,
        }
    }

    /// The NBD URI of the export (libnbd and qemu syntax).
    pub fn uri(&self) -> String {
        match &self.addr {
            Addr::Tcp(a) => format!("nbd://{a}/{EXPORT}"),
            Addr::Unix(p) => format!("nbd+unix:///{EXPORT}?socket={}", p.display()),
        }
    }

    pub fn port(&self) -> u16 {
        match &self.addr {
            Addr::Tcp(a) => a.port(),
            Addr::Unix(_) => panic!("not a TCP server"),
        }
    }

    /// A raw client connection (TCP only).
    pub fn connect(&self) -> TcpStream {
        match &self.addr {
            Addr::Tcp(a) => {
                let s = TcpStream::connect(a).unwrap();
                s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                    .unwrap();
                s.set_nodelay(true).unwrap();
                s
            }
            Addr::Unix(_) => panic!("raw clients use TCP"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        }
    }
}

/// Whether a real client is installed. Missing is a printed skip, or a failure when
/// IRONLUN_REQUIRE_NBD_CLIENTS is set.
pub fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        if std::env::var_os("IRONLUN_REQUIRE_NBD_CLIENTS").is_some() {
            panic!("{tool} is not installed and IRONLUN_REQUIRE_NBD_CLIENTS is set");
        }
        eprintln!("note: {tool} not installed; skipping this test");
    }
    found
}

/// Runs a client with a deadline; returns its output (stdout and stderr as text).
pub fn run(program: &str, args: &[&str]) -> (Output, String) {
    let out = Command::new("timeout")
        .arg("60")
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// A raw client that has done the handshake with NBD_OPT_GO (and, if asked, structured
/// replies).
pub struct Raw {
    pub s: TcpStream,
    pub size: u64,
    pub tflags: u16,
}

impl Raw {
    pub fn go(server: &Server, structured: bool) -> Raw {
        let mut s = server.connect();
        let mut greet = [0u8; 18];
        s.read_exact(&mut greet).unwrap();
        assert_eq!(&greet[0..16], b"NBDMAGICIHAVEOPT");
        s.write_all(&3u32.to_be_bytes()).unwrap();
        if structured {
            send_option(&mut s, proto::OPT_STRUCTURED_REPLY, &[]);
            let (_, kind, _) = read_option_reply(&mut s);
            assert_eq!(kind, proto::REP_ACK);
        }
        let mut d = (EXPORT.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(EXPORT.as_bytes());
        d.extend_from_slice(&1u16.to_be_bytes());
        d.extend_from_slice(&proto::INFO_BLOCK_SIZE.to_be_bytes());
        send_option(&mut s, proto::OPT_GO, &d);
        let (mut size, mut tflags) = (0, 0);
        loop {
            let (_, kind, data) = read_option_reply(&mut s);
            match kind {
                proto::REP_INFO if data[0..2] == [0, 0] => {
                    size = u64::from_be_bytes(data[2..10].try_into().unwrap());
                    tflags = u16::from_be_bytes([data[10], data[11]]);
                }
                proto::REP_INFO => {}
                proto::REP_ACK => break,
                other => panic!("GO refused: {other:#x}"),
            }
        }
        Raw { s, size, tflags }
    }

    pub fn request(&mut self, flags: u16, cmd: u16, cookie: u64, offset: u64, len: u32) {
        let r = proto::encode_request(flags, cmd, cookie, offset, len);
        self.s.write_all(&r).unwrap();
    }

    /// A simple reply: (error, cookie).
    pub fn simple_reply(&mut self) -> (u32, u64) {
        let mut b = [0u8; 16];
        self.s.read_exact(&mut b).unwrap();
        assert_eq!(&b[0..4], &proto::SIMPLE_REPLY_MAGIC.to_be_bytes());
        let err = u32::from_be_bytes(b[4..8].try_into().unwrap());
        (err, u64::from_be_bytes(b[8..16].try_into().unwrap()))
    }

    /// One structured chunk: (flags, type, cookie, payload).
    pub fn chunk(&mut self) -> (u16, u16, u64, Vec<u8>) {
        let mut b = [0u8; 20];
        self.s.read_exact(&mut b).unwrap();
        assert_eq!(&b[0..4], &proto::STRUCTURED_REPLY_MAGIC.to_be_bytes());
        let flags = u16::from_be_bytes([b[4], b[5]]);
        let kind = u16::from_be_bytes([b[6], b[7]]);
        let cookie = u64::from_be_bytes(b[8..16].try_into().unwrap());
        let len = u32::from_be_bytes(b[16..20].try_into().unwrap());
        let mut payload = vec![0u8; len as usize];
        self.s.read_exact(&mut payload).unwrap();
        (flags, kind, cookie, payload)
    }
}

pub fn send_option(s: &mut TcpStream, option: u32, data: &[u8]) {
    let mut v = proto::IHAVEOPT.to_be_bytes().to_vec();
    v.extend_from_slice(&option.to_be_bytes());
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    s.write_all(&v).unwrap();
}

/// (option, reply type, data)
pub fn read_option_reply(s: &mut TcpStream) -> (u32, u32, Vec<u8>) {
    let mut h = [0u8; 20];
    s.read_exact(&mut h).unwrap();
    assert_eq!(&h[0..8], &proto::OPT_REPLY_MAGIC.to_be_bytes());
    let option = u32::from_be_bytes(h[8..12].try_into().unwrap());
    let kind = u32::from_be_bytes(h[12..16].try_into().unwrap());
    let len = u32::from_be_bytes(h[16..20].try_into().unwrap());
    let mut data = vec![0u8; len as usize];
    s.read_exact(&mut data).unwrap();
    (option, kind, data)
}

/// Whether the peer has closed the connection (reads EOF or reset within the timeout).
pub fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}
