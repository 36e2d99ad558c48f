use super::*;

#[test]
fn request_round_trips_through_the_wire_layout() {
    let wire = encode_request(CMD_FLAG_FUA, 1, 0x0102_0304_0506_0708, 4096, 512);
    assert_eq!(wire.len(), REQUEST_LEN);
    assert_eq!(&wire[0..4], &[0x25, 0x60, 0x95, 0x13]);
    let b: [u8; REQUEST_LEN] = wire.try_into().unwrap();
    let req = Request::decode(&b).unwrap();
    assert_eq!(req.command, Command::Write);
    assert!(req.fua());
    assert_eq!(req.cookie, 0x0102_0304_0506_0708);
    assert_eq!((req.offset, req.length), (4096, 512));
}

#[test]
fn request_with_bad_magic_is_refused() {
    let mut b = [0u8; REQUEST_LEN];
    b[0..4].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
    assert_eq!(
        Request::decode(&b),
        Err(RequestError::BadMagic(0xdead_beef))
    );
}

#[test]
fn commands_map_from_their_numbers() {
    let cases = [
        (0, Command::Read),
        (1, Command::Write),
        (2, Command::Disc),
        (3, Command::Flush),
        (4, Command::Trim),
        (5, Command::Other(5)),
        (6, Command::WriteZeroes),
        (99, Command::Other(99)),
    ];
    for (n, c) in cases {
        assert_eq!(Command::from_wire(n), c, "command {n}");
    }
}

#[test]
fn greeting_is_nbdmagic_ihaveopt_and_flags() {
    let g = server_greeting();
    assert_eq!(&g[0..8], b"NBDMAGIC");
    assert_eq!(&g[8..16], b"IHAVEOPT");
    assert_eq!(&g[16..18], &[0, 3]);
}

#[test]
fn option_reply_layout() {
    let r = option_reply(OPT_GO, REP_ERR_UNSUP, b"no");
    assert_eq!(&r[0..8], &OPT_REPLY_MAGIC.to_be_bytes());
    assert_eq!(&r[8..12], &7u32.to_be_bytes());
    assert_eq!(&r[12..16], &0x8000_0001u32.to_be_bytes());
    assert_eq!(&r[16..20], &2u32.to_be_bytes());
    assert_eq!(&r[20..], b"no");
}

#[test]
fn info_payloads_have_the_spec_lengths() {
    let e = info_export(64 << 20, 0x0165);
    assert_eq!(e.len(), 12);
    assert_eq!(&e[0..2], &[0, 0]);
    assert_eq!(&e[2..10], &(64u64 << 20).to_be_bytes());
    assert_eq!(&e[10..12], &[0x01, 0x65]);
    let b = info_block_size(512, 4096, 1 << 20);
    assert_eq!(b.len(), 14);
    assert_eq!(&b[0..2], &[0, 3]);
    assert_eq!(&b[2..6], &512u32.to_be_bytes());
    assert_eq!(&b[10..14], &(1u32 << 20).to_be_bytes());
}

#[test]
fn export_name_reply_pads_unless_no_zeroes() {
    assert_eq!(export_name_reply(1024, 1, false).len(), 134);
    assert_eq!(export_name_reply(1024, 1, true).len(), 10);
}

#[test]
fn info_request_decodes_name_and_list() {
    let mut d = 3u32.to_be_bytes().to_vec();
    d.extend_from_slice(b"lun");
    d.extend_from_slice(&2u16.to_be_bytes());
    d.extend_from_slice(&3u16.to_be_bytes());
    d.extend_from_slice(&1u16.to_be_bytes());
    let r = InfoRequest::decode(&d).unwrap();
    assert_eq!(r.name, b"lun");
    assert_eq!(r.infos, vec![3, 1]);
}

#[test]
fn info_request_with_lengths_that_do_not_add_up_is_refused() {
    // Name length past the end.
    let mut d = 100u32.to_be_bytes().to_vec();
    d.extend_from_slice(b"lun\0\0");
    assert_eq!(InfoRequest::decode(&d), None);
    // Count says two, one given.
    let mut d = 0u32.to_be_bytes().to_vec();
    d.extend_from_slice(&2u16.to_be_bytes());
    d.extend_from_slice(&3u16.to_be_bytes());
    assert_eq!(InfoRequest::decode(&d), None);
    // Too short for anything.
    assert_eq!(InfoRequest::decode(&[0, 0]), None);
    assert_eq!(InfoRequest::decode(&[0xff, 0xff, 0xff, 0xff, 0, 0]), None);
}

#[test]
fn replies_have_the_spec_layout() {
    let s = simple_reply(7, EINVAL);
    assert_eq!(&s[0..4], &SIMPLE_REPLY_MAGIC.to_be_bytes());
    assert_eq!(&s[4..8], &22u32.to_be_bytes());
    assert_eq!(&s[8..16], &7u64.to_be_bytes());

    let d = offset_data_header(9, 4096, 512);
    assert_eq!(&d[0..4], &STRUCTURED_REPLY_MAGIC.to_be_bytes());
    assert_eq!(&d[4..6], &1u16.to_be_bytes(), "DONE flag");
    assert_eq!(&d[6..8], &1u16.to_be_bytes(), "OFFSET_DATA");
    assert_eq!(&d[8..16], &9u64.to_be_bytes());
    assert_eq!(&d[16..20], &520u32.to_be_bytes());
    assert_eq!(&d[20..28], &4096u64.to_be_bytes());

    let e = error_chunk(3, ENOSPC, "full");
    assert_eq!(&e[6..8], &0x8001u16.to_be_bytes());
    assert_eq!(&e[16..20], &10u32.to_be_bytes());
    assert_eq!(&e[20..24], &28u32.to_be_bytes());
    assert_eq!(&e[24..26], &4u16.to_be_bytes());
    assert_eq!(&e[26..], b"full");
}

#[test]
fn device_errors_map_to_nbd_error_values() {
    use std::io::{Error, ErrorKind};
    assert_eq!(errno_of(&Error::from(ErrorKind::InvalidInput)), EINVAL);
    assert_eq!(errno_of(&Error::from(ErrorKind::StorageFull)), ENOSPC);
    assert_eq!(errno_of(&Error::from(ErrorKind::Unsupported)), ENOTSUP);
    assert_eq!(errno_of(&Error::other("path lost")), EIO);
    assert_eq!(errno_of(&Error::from(ErrorKind::TimedOut)), EIO);
}
