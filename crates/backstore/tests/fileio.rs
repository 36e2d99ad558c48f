//! fileio on regular files: data path, write modes, sizing rules and creation errors. The one
//! test that needs the machine's help (a read-only sysfs attribute, where root ignores file
//! modes) skips with a printed reason where it cannot run, and fails instead under
//! IRONLUN_REQUIRE_LOOP=1 (.ci/run), as the loop device tests in iblock.rs do.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use ironlun_backstore::{Backstore, BackstoreSpec, CreateError, FileIo, FileIoOptions};

const MIB: u64 = 1024 * 1024;

fn opts(path: &std::path::Path, size: Option<u64>, write_back: bool) -> FileIoOptions {
    FileIoOptions {
        path: path.to_path_buf(),
        size,
        write_back,
        readonly: false,
    }
}

#[test]
fn missing_file_is_created_sparse_with_the_given_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lun.img");
    let fio = FileIo::open(&opts(&path, Some(64 * MIB), true)).expect("create");
    assert_eq!(fio.size(), 64 * MIB);
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), 64 * MIB);
    assert_eq!(fio.hw_block_size(), 512);
    common::check_read_after_write(&fio);
    common::check_out_of_range(&fio);
}

#[test]
fn write_back_and_write_through_both_persist_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    for write_back in [true, false] {
        let path = dir.path().join(format!("wb-{write_back}.img"));
        {
            let fio = FileIo::open(&opts(&path, Some(MIB), write_back)).expect("create");
            assert_eq!(fio.write_cache(), write_back);
            fio.write_at(&common::pattern(4096, 1, 1), 4096, true)
                .expect("fua write");
            fio.write_at(&common::pattern(4096, 2, 1), 8192, false)
                .expect("write");
            fio.flush().expect("flush");
            assert!(fio.info().contains(if write_back {
                "write-back"
            } else {
                "write-through"
            }));
        }
        // The data is in the file itself, visible to a fresh open.
        let raw = std::fs::read(&path).expect("read file");
        assert_eq!(&raw[4096..8192], &common::pattern(4096, 1, 1)[..]);
        assert_eq!(&raw[8192..12288], &common::pattern(4096, 2, 1)[..]);
    }
}

#[test]
fn existing_file_size_is_taken_from_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::backing_file(dir.path(), "existing.img", 3 * MIB);
    std::fs::write(&path, vec![0x42u8; 3 * MIB as usize]).expect("fill");
    let fio = FileIo::open(&FileIoOptions::new(&path)).expect("open");
    assert_eq!(fio.size(), 3 * MIB);
    let mut back = [0u8; 512];
    fio.read_at(&mut back, 2 * MIB).expect("read");
    assert_eq!(back, [0x42u8; 512], "existing contents are kept");
    // The same size given explicitly is accepted too.
    drop(fio);
    FileIo::open(&opts(&path, Some(3 * MIB), true)).expect("open with equal size");
}

#[test]
fn concurrent_writers_to_distinct_blocks_all_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fio = FileIo::open(&opts(&dir.path().join("c.img"), Some(8 * MIB), true)).expect("create");
    common::check_concurrent_distinct_writes(Arc::new(fio), 2048);
}

#[test]
fn readonly_open_refuses_writes_but_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::backing_file(dir.path(), "ro.img", MIB);
    let mut o = FileIoOptions::new(&path);
    o.readonly = true;
    let fio = FileIo::open(&o).expect("open readonly");
    assert!(fio.read_only());
    assert!(!fio.write_cache());
    let err = fio
        .write_at(&[1u8; 512], 0, false)
        .expect_err("write to readonly");
    assert_eq!(err.raw_os_error(), Some(libc_erofs()));
    let mut back = [9u8; 512];
    fio.read_at(&mut back, 0).expect("read");
    assert_eq!(back, [0u8; 512]);
}

fn libc_erofs() -> i32 {
    30 // EROFS on Linux
}

#[test]
fn a_file_shortened_behind_our_back_reads_zeroes_past_its_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("short.img");
    let fio = FileIo::open(&opts(&path, Some(MIB), true)).expect("create");
    fio.write_at(&[5u8; 4096], MIB - 4096, false)
        .expect("write");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(MIB / 2)
        .expect("truncate");
    let mut back = [1u8; 4096];
    fio.read_at(&mut back, MIB - 4096).expect("read past EOF");
    assert_eq!(back, [0u8; 4096]);
}

// ---- creation errors ----

#[test]
fn missing_file_without_size_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope.img");
    let err = FileIo::open(&FileIoOptions::new(&path)).expect_err("no size");
    assert!(matches!(err, CreateError::SizeRequired { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: file does not exist and no size was given",
            path.display()
        )
    );
    assert!(!path.exists());
}

#[test]
fn missing_parent_directory_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-such-dir").join("x.img");
    let err = FileIo::open(&opts(&path, Some(MIB), true)).expect_err("no parent");
    assert!(matches!(err, CreateError::MissingParent { .. }), "{err}");
}

#[test]
fn zero_and_unaligned_sizes_are_refused_and_leave_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.img");
    let err = FileIo::open(&opts(&path, Some(0), true)).expect_err("zero");
    assert!(matches!(err, CreateError::ZeroSize { .. }), "{err}");
    let err = FileIo::open(&opts(&path, Some(MIB + 100), true)).expect_err("unaligned");
    assert!(
        matches!(err, CreateError::UnalignedSize { block: 512, .. }),
        "{err}"
    );
    assert!(err.to_string().starts_with(&path.display().to_string()));
    assert!(!path.exists());
}

#[test]
fn failure_after_creating_the_file_removes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.img");
    // A multiple of 512 that no file can have (beyond off_t): set_len fails after creation.
    let size = u64::MAX - 511;
    let err = FileIo::open(&opts(&path, Some(size), true)).expect_err("too big");
    assert!(
        matches!(
            err,
            CreateError::Io {
                op: "set length",
                ..
            }
        ),
        "{err}"
    );
    assert!(!path.exists(), "the half-created file was removed");
}

#[test]
fn existing_empty_or_unaligned_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = common::backing_file(dir.path(), "empty.img", 0);
    let err = FileIo::open(&FileIoOptions::new(&empty)).expect_err("empty");
    assert!(matches!(err, CreateError::ZeroSize { .. }), "{err}");
    let odd = common::backing_file(dir.path(), "odd.img", 1000);
    let err = FileIo::open(&FileIoOptions::new(&odd)).expect_err("odd");
    assert!(
        matches!(err, CreateError::UnalignedSize { size: 1000, .. }),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(&odd).expect("stat").len(),
        1000,
        "file untouched"
    );
}

#[test]
fn existing_file_with_a_different_size_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::backing_file(dir.path(), "two.img", 2 * MIB);
    for size in [MIB, 4 * MIB] {
        let err = FileIo::open(&opts(&path, Some(size), true)).expect_err("mismatch");
        assert!(
            matches!(err, CreateError::SizeMismatch { file_size, .. } if file_size == 2 * MIB),
            "{err}"
        );
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 2 * MIB);
    }
}

#[test]
fn directories_and_character_devices_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = FileIo::open(&opts(dir.path(), Some(MIB), true)).expect_err("directory");
    assert!(
        matches!(err, CreateError::NotFileOrBlockDevice { .. }),
        "{err}"
    );
    let err = FileIo::open(&FileIoOptions::new("/dev/null")).expect_err("char device");
    assert!(
        matches!(err, CreateError::NotFileOrBlockDevice { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "/dev/null: not a regular file or block device"
    );
}

#[test]
fn no_write_permission_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::backing_file(dir.path(), "locked.img", MIB);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    // root bypasses file modes; a read-only sysfs attribute (a regular file) still refuses
    // write access with EACCES.
    let target = if is_root {
        std::path::PathBuf::from("/sys/kernel/uevent_seqnum")
    } else {
        path
    };
    if !target.exists() {
        common::skip_unless_required(&format!("{} is not present", target.display()));
        return;
    }
    let err = FileIo::open(&FileIoOptions::new(&target)).expect_err("no permission");
    assert!(matches!(err, CreateError::PermissionDenied { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("{}: permission denied", target.display())
    );
}

#[test]
fn spec_opens_fileio() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = BackstoreSpec::FileIo(opts(&dir.path().join("s.img"), Some(MIB), false));
    assert_eq!(spec.kind(), "fileio");
    let store = spec.open().expect("open");
    assert_eq!(store.size(), MIB);
    assert!(!store.write_cache());
}
