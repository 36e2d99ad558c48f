use super::Xfer;
use crate::handler::cdb_sense;
use ironlun_scsi::cdb::*;
use ironlun_scsi::Sense;

#[test]
fn a_six_byte_transfer_length_of_zero_is_256_blocks() {
    let x = Xfer::parse(&Read6::default().encode()).expect("decodes");
    assert_eq!((x.n, x.len_field), (256, Read6::TRANSFER_LENGTH));
    let w = Write6 {
        lba: Lba(0x1F_FFFF),
        transfer_length: Blocks(8),
    };
    let x = Xfer::parse(&w.encode()).expect("decodes");
    assert_eq!((x.lba, x.n, x.fua), (0x1F_FFFF, 8, false));
}

#[test]
fn each_form_points_at_its_own_length_field() {
    let r12 = Read12 {
        fua: true,
        lba: Lba(7),
        transfer_length: Blocks(9),
        ..Read12::default()
    };
    let x = Xfer::parse(&r12.encode()).expect("decodes");
    assert_eq!((x.lba, x.n, x.fua), (7, 9, true));
    assert_eq!((x.len_field.byte, x.len_field.bit), (6, 7));
    let x = Xfer::parse(&Write16::default().encode()).expect("decodes");
    assert_eq!((x.len_field.byte, x.len_field.bit), (10, 7));
    let v10 = Verify10 {
        bytchk: 1,
        transfer_length: Blocks(3),
        ..Verify10::default()
    };
    let x = Xfer::parse(&v10.encode()).expect("decodes");
    assert_eq!(x.bytchk, Some((1, Verify10::BYTCHK)));
    assert_eq!(x.len_field, Verify10::TRANSFER_LENGTH);
    let ws = WriteSame16 {
        unmap: true,
        ndob: true,
        number_of_logical_blocks: Blocks(4),
        ..WriteSame16::default()
    };
    let x = Xfer::parse(&ws.encode()).expect("decodes");
    assert!(x.unmap && x.ndob && !x.anchor);
    assert_eq!((x.n, x.len_field.byte), (4, 10));
}

#[test]
fn a_cdb_its_struct_refuses_gets_the_sense_validation_gives() {
    let short = Xfer::parse(&[ironlun_scsi::opcode::READ_10, 0, 0]).map(|x| x.n);
    assert_eq!(
        short.map_err(cdb_sense),
        Err(Sense::invalid_cdb_field(3, None))
    );
}
