#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// A sysfs tree with SCSI disk `sdq` at 3:0:1:2 whose generic node is `sg7`.
fn sysfs() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let dev = t.path().join("devices/host3/target3:0:1/3:0:1:2");
    std::fs::create_dir_all(dev.join("scsi_generic/sg7")).unwrap();
    std::fs::create_dir_all(t.path().join("class/scsi_device/3:0:1:2")).unwrap();
    std::fs::create_dir_all(t.path().join("block/sdq")).unwrap();
    std::os::unix::fs::symlink(&dev, t.path().join("class/scsi_device/3:0:1:2/device")).unwrap();
    std::os::unix::fs::symlink(&dev, t.path().join("block/sdq/device")).unwrap();
    t
}

#[test]
fn h_c_t_l_names_the_generic_node_of_that_device() {
    let sys = sysfs();
    assert_eq!(
        resolve("3:0:1:2", sys.path()).unwrap(),
        Path::new("/dev/sg7")
    );
    assert_eq!(
        resolve("03:0:01:2", sys.path()).unwrap(),
        Path::new("/dev/sg7")
    );
    let e = resolve("3:0:1:9", sys.path()).unwrap_err();
    assert_eq!(e.to_string(), "SCSI device 3:0:1:9: no such file or device");
}

#[test]
fn what_is_not_a_scsi_device_is_refused_with_what_to_give() {
    let sys = sysfs();
    for dev in ["/dev/null", "relative/sg0", "1:2:3", "/"] {
        let e = resolve(dev, sys.path()).unwrap_err().to_string();
        assert!(
            e.contains("not a SCSI generic node (give /dev/sgN, a SCSI disk /dev/sdX or H:C:T:L)"),
            "{dev}: {e}"
        );
    }
    let e = resolve("/dev/no-such-disk", sys.path()).unwrap_err();
    assert!(matches!(e, CreateError::MissingPath { .. }), "{e}");
    // A block device that sysfs does not list as a whole SCSI disk (here: any loop or virtio
    // disk of this machine under the fake root).
    if let Some(bd) = ["/dev/vda", "/dev/loop0", "/dev/sda"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    {
        let e = resolve(bd, sys.path()).unwrap_err().to_string();
        assert!(
            e.contains("give the whole SCSI disk or its /dev/sgN"),
            "{e}"
        );
    }
}

#[test]
fn sense_keys_of_both_formats() {
    assert_eq!(sense_key(&[0x70, 0, 0x05, 0, 0, 0, 0, 10]), Some(5));
    assert_eq!(sense_key(&[0xf1, 0, 0x03]), Some(3));
    assert_eq!(sense_key(&[0x72, 0x06, 0x29, 0]), Some(6));
    assert_eq!(sense_key(&[]), None);
    assert_eq!(sense_key(&[0x7f, 1, 2]), None);
}
