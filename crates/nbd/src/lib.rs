//! An NBD server (the NBD protocol, newstyle fixed handshake) over any [`BlockDev`]: how
//! `ironlun host serve-nbd` exports a multipath logical unit to qemu, nbdinfo, fio and
//! Linux's nbd-client.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::future::Future;
use std::io;

mod handshake;
pub mod proto;
mod server;
mod transmit;

pub use server::{serve, serve_with, Listener, ServerConfig};

/// What the server exports: a disk of `size()` bytes addressed in bytes. Each method is one
/// request; errors are reported to the client (EIO unless the kind says otherwise:
/// `InvalidInput` → EINVAL, `StorageFull` → ENOSPC, `Unsupported` → ENOTSUP).
pub trait BlockDev: Send + Sync + 'static {
    /// Size in bytes (a multiple of `block_size`).
    fn size(&self) -> u64;
    /// The logical block size: the minimum and preferred request alignment.
    fn block_size(&self) -> u32;
    /// The largest request the device takes in one go (the NBD maximum block size).
    fn max_request(&self) -> u32;
    /// Whether TRIM and WRITE_ZEROES are offered.
    fn can_trim(&self) -> bool;
    fn can_write_zeroes(&self) -> bool;
    fn read(&self, offset: u64, len: u32) -> impl Future<Output = io::Result<Vec<u8>>> + Send;
    /// `fua`: the data is durable when this completes.
    fn write(
        &self,
        offset: u64,
        data: Vec<u8>,
        fua: bool,
    ) -> impl Future<Output = io::Result<()>> + Send;
    fn flush(&self) -> impl Future<Output = io::Result<()>> + Send;
    fn trim(&self, offset: u64, len: u32) -> impl Future<Output = io::Result<()>> + Send;
    fn write_zeroes(
        &self,
        offset: u64,
        len: u32,
        fua: bool,
    ) -> impl Future<Output = io::Result<()>> + Send;
}
