use super::*;
use crate::opcode::{self as op, mi, rcr, sanitize};
use proptest::prelude::*;

#[test]
fn group_codes_give_cdb_lengths() {
    assert_eq!(cdb_len(0x12), Some(6));
    assert_eq!(cdb_len(0x28), Some(10));
    assert_eq!(cdb_len(0x5A), Some(10));
    assert_eq!(cdb_len(0x88), Some(16));
    assert_eq!(cdb_len(0xA8), Some(12));
    assert_eq!(cdb_len(0x7F), None);
    assert_eq!(cdb_len(0xC0), None);
}

#[test]
fn readers_treat_missing_bytes_as_zero() {
    assert_eq!(be32(&[1, 2], 0), 0x0102_0000);
    assert_eq!(be16(&[], 5), 0);
    let mut out = [0u8; 3];
    put_be(&mut out, 1, 4, 0xAABB_CCDD);
    assert_eq!(out, [0, 0xAA, 0xBB]);
}

#[test]
fn a_field_straddling_bytes_reads_and_writes_only_its_bits() {
    // READ(6) LOGICAL BLOCK ADDRESS: byte 1 bits 4..0, then bytes 2 and 3.
    let f = Field::bits(1, 4, 21);
    assert_eq!(f.get(&[0x08, 0xFF, 0x12, 0x34, 0x55]), 0x1F_1234);
    let mut out = [0xFFu8; 5];
    f.set(&mut out, 0x01_0203);
    assert_eq!(out, [0xFF, 0xE1, 0x02, 0x03, 0xFF]);
    // A field past the end of a short buffer neither panics nor writes.
    let mut short = [0u8; 2];
    f.set(&mut short, u64::MAX);
    assert_eq!(short, [0, 0x1F]);
    assert_eq!(f.get(&[0x08]), 0);
}

#[test]
fn parse_checks_length_opcode_and_service_action() {
    assert_eq!(
        Read10::parse(&[]),
        Err(CdbError::Short { need: 10, got: 0 })
    );
    assert_eq!(
        Read10::parse(&[op::READ_10, 0, 0]),
        Err(CdbError::Short { need: 10, got: 3 })
    );
    assert_eq!(
        Read10::parse(&[op::WRITE_10; 10]),
        Err(CdbError::Opcode {
            want: op::READ_10,
            got: op::WRITE_10
        })
    );
    let mut rc16 = ReadCapacity16::default().encode();
    rc16[1] = 0xE0 | 0x12;
    assert_eq!(
        ReadCapacity16::parse(&rc16),
        Err(CdbError::ServiceAction {
            want: 0x10,
            got: 0x12
        })
    );
    assert_eq!(
        GetLbaStatus::parse(&rc16).map(|c| c.lba),
        Ok(Lba(0)),
        "bits above the service action are not part of it"
    );
}

#[test]
fn a_padded_cdb_parses_and_its_padding_is_ignored() {
    let mut padded = [0xEEu8; 16];
    padded[..6].copy_from_slice(&[op::INQUIRY, 1, 0x83, 0x12, 0x34, 0]);
    assert_eq!(
        Inquiry::parse(&padded),
        Ok(Inquiry {
            evpd: true,
            page_code: 0x83,
            allocation_length: 0x1234
        })
    );
}

#[test]
fn fields_decode_where_the_standards_put_them() {
    let r6 = Read6::parse(&[op::READ_6, 0xE1, 0x02, 0x03, 0, 0]);
    assert_eq!(
        r6,
        Ok(Read6 {
            lba: Lba(0x01_0203),
            transfer_length: Blocks(0)
        })
    );
    let ms = ModeSense6::parse(&[op::MODE_SENSE_6, 0x08, 0x7F, 0xFF, 252, 0]);
    assert_eq!(
        ms,
        Ok(ModeSense6 {
            dbd: true,
            pc: 1,
            page_code: 0x3F,
            subpage_code: 0xFF,
            allocation_length: 252
        })
    );
    let rtpg = ReportTargetPortGroups::parse(&[0xA3, 0x2A, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(
        rtpg,
        Ok(ReportTargetPortGroups {
            parameter_data_format: 1,
            allocation_length: 256
        })
    );
    let pr = PersistentReserveOut::parse(&[0x5F, 1, 0x05, 0, 0, 0, 0, 0, 24, 0]);
    assert_eq!(
        pr.map(|p| (p.service_action, p.scope, p.kind, p.parameter_list_length)),
        Ok((1, 0, 5, 24))
    );
}

#[test]
fn encode_gives_the_initiators_wire_bytes() {
    let w = Write16 {
        fua: true,
        lba: Lba(0x0102_0304_0506_0708),
        transfer_length: Blocks(9),
        ..Write16::default()
    };
    assert_eq!(
        w.encode(),
        [0x8A, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9, 0, 0]
    );
    let rc = ReadCapacity16 {
        allocation_length: 32,
        ..ReadCapacity16::default()
    };
    assert_eq!(
        rc.encode(),
        [0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]
    );
    let ms = ModeSelect10 {
        pf: true,
        sp: false,
        parameter_list_length: 0x0102,
    };
    assert_eq!(ms.encode(), [0x55, 0x10, 0, 0, 0, 0, 0, 1, 2, 0]);
}

#[test]
fn every_struct_has_the_length_of_its_group_code() {
    macro_rules! lens {
        ($($t:ident),*) => {$(
            assert_eq!(cdb_len($t::OPCODE), Some($t::LEN), stringify!($t));
        )*};
    }
    all_cdbs!(lens);
}

/// Invokes `$m!` with every CDB struct.
macro_rules! all_cdbs {
    ($m:ident) => {
        $m! {
            TestUnitReady, RequestSense, Inquiry, ModeSelect6, ModeSelect10, ModeSense6,
            ModeSense10, ReportLuns, ReportSupportedOpcodes, ReportSupportedTmfs, Read6, Write6,
            Read10, Write10, Read12, Write12, Read16, Write16, WriteAndVerify10, Verify10,
            WriteAndVerify12, Verify12, WriteAndVerify16, Verify16, OrWrite16, CompareAndWrite,
            WriteAtomic16, PreFetch10, PreFetch16, SynchronizeCache10, SynchronizeCache16,
            ReadCapacity10, ReadCapacity16, WriteSame10, WriteSame16, Unmap, GetLbaStatus,
            StartStopUnit, PreventAllowMediumRemoval, Sanitize, ReadDefectData10,
            ReadDefectData12, PersistentReserveIn, PersistentReserveOut, Reserve6, Release6,
            Reserve10, Release10, ReportTargetPortGroups, SetTargetPortGroups, ExtendedCopy,
            ReceiveCopyResults
        }
    };
}
use all_cdbs;

/// One test per CDB: its usage data equals, byte for byte, what the engine's opcode table
/// (crates/engine/src/ops.rs) reports today.
macro_rules! usage_matches_ops_table {
    ($($test:ident: $usage:expr => [$($b:expr),* $(,)?];)*) => {$(
        #[test]
        fn $test() {
            assert_eq!($usage, [$($b),*]);
        }
    )*};
}

const FF: u8 = 0xFF;

usage_matches_ops_table! {
    test_unit_ready: TestUnitReady::USAGE => [0x00, 0, 0, 0, 0, 0];
    request_sense: RequestSense::USAGE => [0x03, 0x01, 0, 0, FF, 0];
    read_6: Read6::USAGE => [0x08, 0x1F, FF, FF, FF, 0];
    write_6: Write6::USAGE => [0x0A, 0x1F, FF, FF, FF, 0];
    inquiry: Inquiry::USAGE => [0x12, 0x01, FF, FF, FF, 0];
    mode_select_6: ModeSelect6::USAGE => [0x15, 0x11, 0, 0, FF, 0];
    reserve_6: Reserve6::USAGE => [0x16, 0, 0, 0, 0, 0];
    release_6: Release6::USAGE => [0x17, 0, 0, 0, 0, 0];
    mode_sense_6: ModeSense6::USAGE => [0x1A, 0x08, FF, FF, FF, 0];
    start_stop_unit: StartStopUnit::USAGE => [0x1B, 0x01, 0, 0x0F, 0xF7, 0];
    prevent_allow: PreventAllowMediumRemoval::USAGE => [0x1E, 0, 0, 0, 0x03, 0];
    read_capacity_10: ReadCapacity10::USAGE => [0x25, 0, FF, FF, FF, FF, 0, 0, 0x01, 0];
    read_10: Read10::USAGE => [0x28, 0x1A, FF, FF, FF, FF, 0x1F, FF, FF, 0];
    write_10: Write10::USAGE => [0x2A, 0x1A, FF, FF, FF, FF, 0x1F, FF, FF, 0];
    write_and_verify_10: WriteAndVerify10::USAGE => [0x2E, 0x16, FF, FF, FF, FF, 0x1F, FF, FF, 0];
    verify_10: Verify10::USAGE => [0x2F, 0x16, FF, FF, FF, FF, 0x1F, FF, FF, 0];
    pre_fetch_10: PreFetch10::USAGE => [0x34, 0x02, FF, FF, FF, FF, 0x1F, FF, FF, 0];
    synchronize_cache_10: SynchronizeCache10::USAGE =>
        [0x35, 0x06, FF, FF, FF, FF, 0x1F, FF, FF, 0];
    read_defect_data_10: ReadDefectData10::USAGE => [0x37, 0, 0x1F, 0, 0, 0, 0, FF, FF, 0];
    write_same_10: WriteSame10::USAGE => [0x41, 0x18, FF, FF, FF, FF, 0x1F, FF, FF, 0];
    unmap: Unmap::USAGE => [0x42, 0x01, 0, 0, 0, 0, 0x1F, FF, FF, 0];
    sanitize_overwrite: Sanitize::usage(sanitize::OVERWRITE) =>
        [0x48, 0xA1, 0, 0, 0, 0, 0, FF, FF, 0];
    sanitize_block_erase: Sanitize::usage(sanitize::BLOCK_ERASE) =>
        [0x48, 0xA2, 0, 0, 0, 0, 0, FF, FF, 0];
    sanitize_exit_failure_mode: Sanitize::usage(sanitize::EXIT_FAILURE_MODE) =>
        [0x48, 0xBF, 0, 0, 0, 0, 0, FF, FF, 0];
    mode_select_10: ModeSelect10::USAGE => [0x55, 0x11, 0, 0, 0, 0, 0, FF, FF, 0];
    reserve_10: Reserve10::USAGE => [0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    release_10: Release10::USAGE => [0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    mode_sense_10: ModeSense10::USAGE => [0x5A, 0x18, FF, FF, 0, 0, 0, FF, FF, 0];
    persistent_reserve_in_0: PersistentReserveIn::usage(0) => [0x5E, 0, 0, 0, 0, 0, 0, FF, FF, 0];
    persistent_reserve_in_1: PersistentReserveIn::usage(1) => [0x5E, 1, 0, 0, 0, 0, 0, FF, FF, 0];
    persistent_reserve_in_2: PersistentReserveIn::usage(2) => [0x5E, 2, 0, 0, 0, 0, 0, FF, FF, 0];
    persistent_reserve_in_3: PersistentReserveIn::usage(3) => [0x5E, 3, 0, 0, 0, 0, 0, FF, FF, 0];
    persistent_reserve_out_0: PersistentReserveOut::usage(0) =>
        [0x5F, 0, FF, 0, 0, FF, FF, FF, FF, 0];
    persistent_reserve_out_1: PersistentReserveOut::usage(1) =>
        [0x5F, 1, FF, 0, 0, FF, FF, FF, FF, 0];
    persistent_reserve_out_2: PersistentReserveOut::usage(2) =>
        [0x5F, 2, FF, 0, 0, FF, FF, FF, FF, 0];
    persistent_reserve_out_3: PersistentReserveOut::usage(3) =>
        [0x5F, 3, FF, 0, 0, FF, FF, FF, FF, 0];
    persistent_reserve_out_4: PersistentReserveOut::usage(4) =>
        [0x5F, 4, FF, 0, 0, FF, FF, FF, FF, 0];
    persistent_reserve_out_5: PersistentReserveOut::usage(5) =>
        [0x5F, 5, FF, 0, 0, FF, FF, FF, FF, 0];
    persistent_reserve_out_6: PersistentReserveOut::usage(6) =>
        [0x5F, 6, FF, 0, 0, FF, FF, FF, FF, 0];
    persistent_reserve_out_7: PersistentReserveOut::usage(7) =>
        [0x5F, 7, FF, 0, 0, FF, FF, FF, FF, 0];
    extended_copy: ExtendedCopy::USAGE =>
        [0x83, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0, 0];
    receive_copy_status: ReceiveCopyResults::usage(rcr::COPY_STATUS) =>
        [0x84, 0x00, FF, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0, 0];
    receive_copy_operating_parameters: ReceiveCopyResults::usage(rcr::OPERATING_PARAMETERS) =>
        [0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0, 0];
    receive_copy_failed_segment_details: ReceiveCopyResults::usage(rcr::FAILED_SEGMENT_DETAILS) =>
        [0x84, 0x04, FF, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0, 0];
    read_16: Read16::USAGE => [0x88, 0x1A, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1F, 0];
    compare_and_write: CompareAndWrite::USAGE =>
        [0x89, 0x18, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0, 0, FF, 0x1F, 0];
    write_16: Write16::USAGE =>
        [0x8A, 0x1A, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1F, 0];
    orwrite_16: OrWrite16::USAGE =>
        [0x8B, 0x18, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1F, 0];
    write_and_verify_16: WriteAndVerify16::USAGE =>
        [0x8E, 0x16, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1F, 0];
    verify_16: Verify16::USAGE =>
        [0x8F, 0x16, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1F, 0];
    pre_fetch_16: PreFetch16::USAGE =>
        [0x90, 0x02, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1F, 0];
    synchronize_cache_16: SynchronizeCache16::USAGE =>
        [0x91, 0x06, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1F, 0];
    write_same_16: WriteSame16::USAGE =>
        [0x93, 0x19, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1F, 0];
    write_atomic_16: WriteAtomic16::USAGE =>
        [0x9C, 0x18, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1F, 0];
    read_capacity_16: ReadCapacity16::USAGE =>
        [0x9E, 0x10, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x01, 0];
    get_lba_status: GetLbaStatus::USAGE =>
        [0x9E, 0x12, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0];
    report_luns: ReportLuns::USAGE => [0xA0, 0, FF, 0, 0, 0, FF, FF, FF, FF, 0, 0];
    report_target_port_groups: ReportTargetPortGroups::USAGE =>
        [0xA3, 0xE0 | 0x0A, 0, 0, 0, 0, FF, FF, FF, FF, 0, 0];
    report_supported_opcodes: ReportSupportedOpcodes::USAGE =>
        [0xA3, 0x0C, 0x87, FF, FF, FF, FF, FF, FF, FF, 0, 0];
    report_supported_tmfs: ReportSupportedTmfs::USAGE =>
        [0xA3, 0x0D, 0x80, 0, 0, 0, FF, FF, FF, FF, 0, 0];
    set_target_port_groups: SetTargetPortGroups::USAGE =>
        [0xA4, 0x0A, 0, 0, 0, 0, FF, FF, FF, FF, 0, 0];
    read_12: Read12::USAGE => [0xA8, 0x1A, FF, FF, FF, FF, FF, FF, FF, FF, 0x1F, 0];
    write_12: Write12::USAGE => [0xAA, 0x1A, FF, FF, FF, FF, FF, FF, FF, FF, 0x1F, 0];
    write_and_verify_12: WriteAndVerify12::USAGE =>
        [0xAE, 0x16, FF, FF, FF, FF, FF, FF, FF, FF, 0x1F, 0];
    verify_12: Verify12::USAGE => [0xAF, 0x16, FF, FF, FF, FF, FF, FF, FF, FF, 0x1F, 0];
    read_defect_data_12: ReadDefectData12::USAGE =>
        [0xB7, 0x1F, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0];
}

#[test]
fn report_supported_opcodes_is_a_maintenance_in_service_action() {
    assert_eq!(ReportSupportedOpcodes::OPCODE, op::MAINTENANCE_IN);
    assert_eq!(
        ReportSupportedOpcodes::SA,
        Some(mi::REPORT_SUPPORTED_OPERATION_CODES)
    );
}

/// Every CDB's bytes with its operation code and fixed service action in place, the rest
/// arbitrary (and sometimes too short).
fn shaped(op: u8, sa: Option<u8>, mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some(b) = bytes.first_mut() {
        *b = op;
    }
    if let (Some(sa), Some(b)) = (sa, bytes.get_mut(1)) {
        *b = (*b & 0xE0) | sa;
    }
    bytes
}

macro_rules! properties {
    ($($t:ident),*) => {
        proptest! {
            #[test]
            fn parse_of_arbitrary_bytes_never_panics(
                b in proptest::collection::vec(any::<u8>(), 0..24)
            ) {
                $( let _ = $t::parse(&b); )*
            }

            #[test]
            fn encode_then_parse_is_the_identity(
                b in proptest::collection::vec(any::<u8>(), 16..=16)
            ) {
                $(
                    // `parse` reaches every value of every field, so this covers every struct.
                    let b = shaped($t::OPCODE, $t::SA, b.clone());
                    let c = $t::parse(&b);
                    prop_assert!(c.is_ok(), "{}: {:?}", stringify!($t), c);
                    if let Ok(c) = c {
                        prop_assert_eq!($t::parse(&c.encode()), Ok(c));
                        // …and the bits it decodes are exactly the usage data.
                        let masked: Vec<u8> =
                            b.iter().zip($t::USAGE.iter()).map(|(x, u)| x & u).collect();
                        prop_assert_eq!(c.encode().to_vec(), masked, "{}", stringify!($t));
                    }
                )*
            }

            #[test]
            fn parse_of_shaped_bytes_never_panics(
                b in proptest::collection::vec(any::<u8>(), 0..20)
            ) {
                $( let _ = $t::parse(&shaped($t::OPCODE, $t::SA, b.clone())); )*
            }
        }
    };
}
all_cdbs!(properties);
