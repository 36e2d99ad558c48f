#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;
use crate::{Backstore, FileIo, FileIoOptions};

fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn a_new_file_is_created_with_every_block_allocated_and_progress_per_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("thick.img");
    let size = 3 * PREALLOC_CHUNK + (1 << 20);
    let seen = RefCell::new(Vec::new());
    let created =
        preallocate_file(&path, Some(size), &|d, t| seen.borrow_mut().push((d, t))).unwrap();
    assert!(created);
    let md = std::fs::metadata(&path).unwrap();
    assert_eq!(md.len(), size);
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    assert!(
        allocated(&path) >= size,
        "{} of {size} allocated",
        allocated(&path)
    );
    let seen = seen.into_inner();
    assert_eq!(seen.first(), Some(&(0, size)));
    assert_eq!(seen.last(), Some(&(size, size)));
    assert_eq!(seen.len(), 5, "0, three whole chunks, the rest: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
}

#[test]
fn the_zero_writing_fallback_allocates_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zeroes.img");
    let size = PREALLOC_CHUNK + (4 << 20);
    preallocate_file_with(&path, Some(size), &|_, _| {}, Method::Zeroes).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
    assert!(allocated(&path) >= size);
    let data = std::fs::read(&path).unwrap();
    assert!(data.iter().all(|b| *b == 0));
}

#[test]
fn an_existing_sparse_file_keeps_its_data_and_gets_its_holes_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.img");
    let size = 16u64 << 20;
    let f = File::create(&path).unwrap();
    f.set_len(size).unwrap();
    sys::write_full_at(&f, b"keep me", 5 << 20).unwrap();
    drop(f);
    assert!(allocated(&path) < size / 2);
    let created = preallocate_file(&path, None, &|_, _| {}).unwrap();
    assert!(!created);
    assert!(allocated(&path) >= size);
    let data = std::fs::read(&path).unwrap();
    assert_eq!(data.len() as u64, size);
    assert_eq!(&data[5 << 20..(5 << 20) + 7], b"keep me");
    // A size that is not the file's is refused, as when a fileio opens it.
    let e = preallocate_file(&path, Some(size * 2), &|_, _| {}).unwrap_err();
    assert!(matches!(e, CreateError::SizeMismatch { .. }), "{e}");
}

#[test]
fn refusals_name_the_path_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.img");
    let e = preallocate_file(&path, None, &|_, _| {}).unwrap_err();
    assert!(matches!(e, CreateError::SizeRequired { .. }), "{e}");
    let e = preallocate_file(&path, Some(1000), &|_, _| {}).unwrap_err();
    assert!(e.to_string().contains("multiple of the 512-byte"), "{e}");
    assert!(!path.exists());
    let e = preallocate_file(
        &dir.path().join("no/such/dir.img"),
        Some(1 << 20),
        &|_, _| {},
    )
    .unwrap_err();
    assert!(matches!(e, CreateError::MissingParent { .. }), "{e}");
    let e = preallocate_file(Path::new("/dev/null"), None, &|_, _| {}).unwrap_err();
    assert!(
        e.to_string().contains("sparse=0 is for a regular file"),
        "{e}"
    );
}

#[test]
fn a_thick_resize_allocates_the_added_range_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grow.img");
    let old = 8u64 << 20;
    let new = old + PREALLOC_CHUNK + (2 << 20);
    let fio = FileIo::open(&FileIoOptions {
        size: Some(old),
        ..FileIoOptions::new(&path)
    })
    .unwrap();
    fio.write_at(b"first", 0, true).unwrap();
    let seen = RefCell::new(Vec::new());
    assert_eq!(
        fio.resize_thick(new, &|d, t| seen.borrow_mut().push((d, t)))
            .unwrap(),
        new
    );
    assert_eq!(fio.size(), new);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), new);
    // The old part stays sparse; the added part is allocated.
    assert!(allocated(&path) >= new - old, "{}", allocated(&path));
    assert!(allocated(&path) < new);
    let seen = seen.into_inner();
    assert_eq!(seen.last(), Some(&(new - old, new - old)), "{seen:?}");
    let mut buf = [0u8; 5];
    fio.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"first");
    // A refused resize changes nothing, and a shrink allocates nothing.
    assert!(fio.resize_thick(new + 1, &|_, _| {}).is_err());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), new);
    assert_eq!(
        fio.resize_thick(old, &|_, _| panic!("nothing to allocate"))
            .unwrap(),
        old
    );
}

#[test]
fn other_backstores_refuse_a_thick_resize() {
    let rd = crate::RamDisk::new(1 << 20).unwrap();
    let e = rd.resize_thick(2 << 20, &|_, _| {}).unwrap_err();
    assert!(e.to_string().contains("sparse=0 is only for fileio"), "{e}");
    assert_eq!(rd.size(), 1 << 20);
}
