//! rd_mcp: data path, lazy allocation and creation errors.
mod common;

use std::sync::Arc;

use ironlun_backstore::{Backstore, BackstoreSpec, CreateError, RamDisk, RAMDISK_CHUNK};

const MIB: u64 = 1024 * 1024;

#[test]
fn read_after_write_returns_written_data_and_zeroes_elsewhere() {
    let rd = RamDisk::new(4 * MIB).expect("ramdisk");
    common::check_read_after_write(&rd);
}

#[test]
fn io_spanning_chunk_boundaries_round_trips() {
    let rd = RamDisk::new(4 * MIB).expect("ramdisk");
    let off = RAMDISK_CHUNK as u64 - 1024;
    let data = common::pattern(3 * RAMDISK_CHUNK, 9, 3);
    rd.write_at(&data, off, false).expect("write");
    let mut back = vec![0u8; data.len() + 2048];
    rd.read_at(&mut back, off - 1024).expect("read");
    assert!(back[..1024].iter().all(|b| *b == 0));
    assert_eq!(&back[1024..1024 + data.len()], &data[..]);
    assert!(back[1024 + data.len()..].iter().all(|b| *b == 0));
}

#[test]
fn memory_is_taken_only_for_written_chunks() {
    let rd = RamDisk::new(1024 * MIB).expect("1 GiB ramdisk");
    assert_eq!(rd.allocated_bytes(), 0);
    rd.write_at(&[7u8; 4096], 512 * MIB, false).expect("write");
    assert_eq!(rd.allocated_bytes(), RAMDISK_CHUNK as u64);
    rd.write_at(&[8u8; 4096], 512 * MIB + 4096, false)
        .expect("write same chunk");
    assert_eq!(rd.allocated_bytes(), RAMDISK_CHUNK as u64);
    let mut back = [0u8; 8192];
    rd.read_at(&mut back, 512 * MIB).expect("read");
    assert!(back[..4096].iter().all(|b| *b == 7) && back[4096..].iter().all(|b| *b == 8));
}

#[test]
fn writing_zeroes_to_unwritten_space_allocates_nothing() {
    let rd = RamDisk::new(64 * MIB).expect("ramdisk");
    rd.write_at(&vec![0u8; 4 * MIB as usize], 0, false)
        .expect("write zeroes");
    assert_eq!(rd.allocated_bytes(), 0);
    // Zeroes over written data must still overwrite it.
    rd.write_at(&[9u8; 512], 0, false).expect("write");
    rd.write_at(&[0u8; 512], 0, false).expect("write zeroes");
    let mut back = [1u8; 512];
    rd.read_at(&mut back, 0).expect("read");
    assert!(back.iter().all(|b| *b == 0));
}

#[test]
fn one_nonzero_byte_anywhere_in_a_write_is_kept() {
    // Every position of a 4 KiB + 40 byte write (whole words, and the tail after them).
    let rd = RamDisk::new(64 * MIB).expect("ramdisk");
    let len = 4096 + 40;
    for (i, pos) in [0, 1, 7, 8, 63, 64, 2047, 4095, 4096, 4100, len - 1]
        .into_iter()
        .enumerate()
    {
        let mut data = vec![0u8; len];
        data[pos] = 0x5a;
        // Each in its own never-written chunk.
        let off = (i as u64 + 1) * RAMDISK_CHUNK as u64;
        rd.write_at(&data, off, false).expect("write");
        let mut back = vec![1u8; len];
        rd.read_at(&mut back, off).expect("read");
        assert_eq!(back, data, "nonzero byte at {pos} lost");
    }
}

#[test]
fn read_append_reads_what_read_at_reads() {
    let rd = RamDisk::new(8 * MIB).expect("ramdisk");
    let chunk = RAMDISK_CHUNK as u64;
    // Written data straddling a chunk boundary, with never-written chunks around it.
    let data = common::pattern(2 * RAMDISK_CHUNK, 4, 11);
    rd.write_at(&data, 2 * chunk - 4096, false).expect("write");
    for (off, len) in [
        (0, 4096),
        (2 * chunk - 8192, 3 * RAMDISK_CHUNK),
        (3 * chunk, 512),
        (8 * MIB - 4096, 4096),
    ] {
        let mut want = vec![0u8; len];
        rd.read_at(&mut want, off).expect("read_at");
        let mut got = b"head".to_vec();
        rd.read_append(&mut got, len, off).expect("read_append");
        assert_eq!(&got[..4], b"head");
        assert_eq!(&got[4..], &want[..], "at {off} len {len}");
    }
    // Past the end: an error, and the buffer as it was.
    let mut got = b"head".to_vec();
    assert!(rd.read_append(&mut got, 8192, 8 * MIB - 4096).is_err());
    assert_eq!(got, b"head");
}

#[test]
fn last_partial_chunk_is_usable() {
    // 1 MiB + 512: the final chunk is mostly beyond the capacity.
    let size = MIB + 512;
    let rd = RamDisk::new(size).expect("ramdisk");
    rd.write_at(&[3u8; 512], size - 512, true)
        .expect("write last block");
    let mut back = [0u8; 512];
    rd.read_at(&mut back, size - 512).expect("read last block");
    assert_eq!(back, [3u8; 512]);
    common::check_out_of_range(&rd);
}

#[test]
fn concurrent_writers_to_distinct_blocks_all_land() {
    let rd: Arc<dyn Backstore> = Arc::new(RamDisk::new(16 * MIB).expect("ramdisk"));
    common::check_concurrent_distinct_writes(rd, 4096);
}

#[test]
fn reports_ramdisk_properties() {
    let rd = BackstoreSpec::RamDisk { size: 8 * MIB }
        .open()
        .expect("open");
    assert_eq!(rd.size(), 8 * MIB);
    assert_eq!(rd.hw_block_size(), 512);
    assert!(!rd.write_cache());
    assert!(!rd.read_only());
    rd.flush().expect("flush");
    assert!(rd.info().starts_with("rd_mcp"));
}

#[test]
fn zero_size_is_refused() {
    let err = RamDisk::new(0).expect_err("zero size");
    assert!(matches!(err, CreateError::ZeroSize { .. }), "{err}");
    assert_eq!(err.to_string(), "ramdisk: size must not be zero");
}

#[test]
fn size_not_a_multiple_of_512_is_refused() {
    let err = RamDisk::new(1000).expect_err("unaligned");
    assert!(
        matches!(
            err,
            CreateError::UnalignedSize {
                size: 1000,
                block: 512,
                ..
            }
        ),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("not a multiple of the 512-byte block size"));
}
