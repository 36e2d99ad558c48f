//! CDBs (SPC-4 §4.2): big-endian field readers that never panic, and one typed struct per CDB
//! the engine supports, decoded once by `parse` and built by `encode`.
//!
//! A CDB struct's layout is written once, as [`Field`] constants that name each field's byte and
//! most significant bit (the numbers an INVALID FIELD IN CDB field pointer carries, SPC-4
//! §4.5.2.4.2). `parse`, `encode` and the struct's `USAGE` — the CDB usage data REPORT
//! SUPPORTED OPERATION CODES returns (SPC-4 §6.35.3): the operation code, a fixed service action
//! and every bit of every field — all come from that one list. `parse` checks only what is
//! structural (the length, the operation code, a fixed service action) and never panics;
//! whether a field's value is acceptable is the device server's decision. Where the SERVICE
//! ACTION is itself a field (PERSISTENT RESERVE IN / OUT, SANITIZE, RECEIVE COPY RESULTS),
//! `usage(sa)` gives the usage data of one service action.
//!
//! What lives where:
//! * this file — [`cdb_len`], the readers ([`byte`], [`be16`] … [`be64`], [`put_be`]),
//!   [`Field`], the value types [`Lba`] and [`Blocks`], [`CdbError`] and the
//!   `cdb!` macro that declares CDB structs.
//! * [`spc`] — SPC-4 TEST UNIT READY, REQUEST SENSE, INQUIRY, MODE SENSE / MODE SELECT (6) and
//!   (10), REPORT LUNS, REPORT SUPPORTED OPERATION CODES / TASK MANAGEMENT FUNCTIONS.
//! * [`rw`] — SBC-3 transfers: READ, WRITE, WRITE AND VERIFY, VERIFY, ORWRITE(16), COMPARE AND
//!   WRITE, WRITE ATOMIC(16).
//! * [`sbc`] — SBC-3 PRE-FETCH, SYNCHRONIZE CACHE and READ CAPACITY (10)/(16).
//! * [`thin`] — logical block provisioning (SBC-3 §4.7): WRITE SAME (10)/(16), UNMAP, GET LBA
//!   STATUS.
//! * [`media`] — START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL, SANITIZE, READ DEFECT DATA.
//! * [`pr`] — PERSISTENT RESERVE IN / OUT (SPC-4 §6.15, §6.16) and SPC-2 RESERVE / RELEASE.
//! * [`alua`] — REPORT / SET TARGET PORT GROUPS (SPC-4 §6.37, §6.46).
//! * [`xcopy`] — EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 §6.3, §6.18).
//! * `tests.rs` — each CDB's usage data against the engine's opcode table
//!   (crates/engine/src/cmd/table.rs), decoding examples and the property tests.

/// Declares CDB structs: one or more `Name = opcode` heads sharing a length, a fixed service
/// action (`None` or `Some(sa)`) and a field list `CONST field: Type = Field::…;`. Each struct
/// gets the `Field` constants, `OPCODE`, `SA`, `LEN`, `USAGE`, `parse` and `encode`.
macro_rules! cdb {
    (
        $( $(#[$meta:meta])* $name:ident = $op:expr ),+ ;
        [$len:literal] sa $sa:expr ;
        $fields:tt
    ) => {
        $( cdb!(@one $(#[$meta])* $name = $op; [$len] sa $sa; $fields); )+
    };
    (
        @one $(#[$meta:meta])* $name:ident = $op:expr; [$len:literal] sa $sa:expr;
        { $( $(#[$fmeta:meta])* $konst:ident $field:ident : $ty:ty = $at:expr ; )* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $name {
            pub const OPCODE: u8 = $op;
            /// The service action this struct stands for (byte 1 bits 4..0), if fixed.
            pub const SA: Option<u8> = $sa;
            pub const LEN: usize = $len;
            $( $(#[$fmeta])* pub const $konst: $crate::cdb::Field = $at; )*
            /// CDB usage data (SPC-4 §6.35.3): every bit this struct decodes.
            pub const USAGE: [u8; $len] =
                $crate::cdb::usage(Self::OPCODE, Self::SA, &[$(Self::$konst),*]);

            /// Decode, checking only the length, operation code and fixed service action; bytes
            /// after the CDB's length (a padded CDB field) are ignored.
            pub fn parse(cdb: &[u8]) -> Result<Self, $crate::cdb::CdbError> {
                $crate::cdb::check(cdb, Self::OPCODE, Self::SA, $len)?;
                Ok(Self {
                    $( $field: $crate::cdb::Value::from_raw(Self::$konst.get(cdb)), )*
                })
            }

            /// Encode; bits of a value beyond its field's width are dropped.
            pub fn encode(&self) -> [u8; $len] {
                $crate::cdb::build(
                    Self::OPCODE,
                    Self::SA,
                    &[$( (Self::$konst, $crate::cdb::Value::to_raw(self.$field)) ),*],
                )
            }
        }
    };
}

pub mod alua;
pub mod media;
pub mod pr;
pub mod rw;
pub mod sbc;
pub mod spc;
pub mod thin;
pub mod xcopy;

#[cfg(test)]
mod tests;

pub use alua::*;
pub use media::*;
pub use pr::*;
pub use rw::*;
pub use sbc::*;
pub use spc::*;
pub use thin::*;
pub use xcopy::*;

/// The CDB length implied by the operation code's group code (SPC-4 §4.2.5.1), or `None` for
/// reserved / vendor-specific groups and the variable-length opcode 0x7F.
pub fn cdb_len(opcode: u8) -> Option<usize> {
    match opcode >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}

/// Byte `i` of `b`, zero beyond the end.
pub fn byte(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// Big-endian unsigned integer of `n` (≤ 8) bytes starting at `at`.
pub fn be(b: &[u8], at: usize, n: usize) -> u64 {
    (0..n.min(8)).fold(0u64, |acc, i| (acc << 8) | u64::from(byte(b, at + i)))
}

pub fn be16(b: &[u8], at: usize) -> u16 {
    be(b, at, 2) as u16
}

pub fn be24(b: &[u8], at: usize) -> u32 {
    be(b, at, 3) as u32
}

pub fn be32(b: &[u8], at: usize) -> u32 {
    be(b, at, 4) as u32
}

pub fn be64(b: &[u8], at: usize) -> u64 {
    be(b, at, 8)
}

/// Write `v` big-endian into `out[at..at + n]`, ignoring bytes past the end of `out`.
pub fn put_be(out: &mut [u8], at: usize, n: usize, v: u64) {
    for i in 0..n {
        let shift = 8 * (n - 1 - i);
        if let Some(slot) = out.get_mut(at + i) {
            *slot = if shift >= 64 { 0 } else { (v >> shift) as u8 };
        }
    }
}

/// Where a CDB field lies: the byte holding its most significant bit, that bit (7 = the
/// byte's most significant; the BIT POINTER of a field pointer, SPC-4 §4.5.2.4.2) and its
/// width in bits. The field runs big-endian from there into the following bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub byte: u16,
    pub bit: u8,
    pub width: u8,
}

/// The SERVICE ACTION field of a service-action CDB (SPC-4 §4.2.5.2): byte 1 bits 4..0.
pub const SERVICE_ACTION: Field = Field::bits(1, 4, 5);

impl Field {
    /// A one-bit flag.
    pub const fn flag(byte: u16, bit: u8) -> Field {
        Field::bits(byte, bit, 1)
    }

    /// `width` bits whose most significant is `bit` of `byte`.
    pub const fn bits(byte: u16, bit: u8, width: u8) -> Field {
        Field { byte, bit, width }
    }

    /// `n` whole bytes from `byte`.
    pub const fn bytes(byte: u16, n: u8) -> Field {
        Field::bits(byte, 7, 8 * n)
    }

    /// The largest value the field holds.
    pub const fn mask(self) -> u64 {
        if self.width >= 64 {
            u64::MAX
        } else {
            (1u64 << self.width) - 1
        }
    }

    /// The bytes the field spans and the shift of its least significant bit within them.
    const fn span(self) -> (usize, u32) {
        let first = self.bit as u32 + 1;
        let width = self.width as u32;
        if width <= first {
            (1, first - width)
        } else {
            let rest = (width - first).div_ceil(8);
            (1 + rest as usize, 8 * rest - (width - first))
        }
    }

    /// The field's value in `cdb` (bytes beyond its end read as zero).
    pub fn get(self, cdb: &[u8]) -> u64 {
        let (n, shift) = self.span();
        (be(cdb, usize::from(self.byte), n) >> shift) & self.mask()
    }

    /// Store `v` (cut to the field's width) into `out`, leaving the other bits alone and
    /// ignoring bytes past the end of `out`.
    pub const fn set(self, out: &mut [u8], v: u64) {
        let (n, shift) = self.span();
        let m = self.mask() << shift;
        let v = (v & self.mask()) << shift;
        let mut i = 0;
        while i < n {
            let at = self.byte as usize + i;
            let s = 8 * (n - 1 - i) as u32;
            if at < out.len() {
                let bm = (m >> s) as u8;
                out[at] = (out[at] & !bm) | ((v >> s) as u8 & bm);
            }
            i += 1;
        }
    }
}

/// A LOGICAL BLOCK ADDRESS field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lba(pub u64);

/// A field counting logical blocks (TRANSFER LENGTH, NUMBER OF LOGICAL BLOCKS …), as on the
/// wire: what a zero means is the command's own rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Blocks(pub u32);

/// A type a CDB field decodes into.
pub(crate) trait Value: Copy {
    fn from_raw(raw: u64) -> Self;
    fn to_raw(self) -> u64;
}

impl Value for bool {
    fn from_raw(raw: u64) -> bool {
        raw != 0
    }
    fn to_raw(self) -> u64 {
        u64::from(self)
    }
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn from_raw(raw: u64) -> $t {
                raw as $t
            }
            fn to_raw(self) -> u64 {
                u64::from(self)
            }
        }
    )*};
}
int_value!(u8, u16, u32, u64);

impl Value for Lba {
    fn from_raw(raw: u64) -> Lba {
        Lba(raw)
    }
    fn to_raw(self) -> u64 {
        self.0
    }
}

impl Value for Blocks {
    fn from_raw(raw: u64) -> Blocks {
        Blocks(raw as u32)
    }
    fn to_raw(self) -> u64 {
        u64::from(self.0)
    }
}

/// Why bytes are not the CDB a struct stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CdbError {
    #[error("CDB of {got} bytes, its operation code needs {need}")]
    Short { need: usize, got: usize },
    #[error("operation code {got:#04x}, expected {want:#04x}")]
    Opcode { want: u8, got: u8 },
    #[error("service action {got:#04x}, expected {want:#04x}")]
    ServiceAction { want: u8, got: u8 },
}

/// The structural checks of every `parse`.
pub(crate) fn check(cdb: &[u8], op: u8, sa: Option<u8>, len: usize) -> Result<(), CdbError> {
    match cdb.first() {
        None => return Err(CdbError::Short { need: len, got: 0 }),
        Some(&got) if got != op => return Err(CdbError::Opcode { want: op, got }),
        Some(_) => {}
    }
    if cdb.len() < len {
        return Err(CdbError::Short {
            need: len,
            got: cdb.len(),
        });
    }
    match sa {
        Some(want) if SERVICE_ACTION.get(cdb) != u64::from(want) => Err(CdbError::ServiceAction {
            want,
            got: SERVICE_ACTION.get(cdb) as u8,
        }),
        _ => Ok(()),
    }
}

/// The operation code and a fixed service action, nothing else set.
const fn header<const N: usize>(op: u8, sa: Option<u8>) -> [u8; N] {
    let mut out = [0u8; N];
    out[0] = op;
    if let Some(sa) = sa {
        SERVICE_ACTION.set(&mut out, sa as u64);
    }
    out
}

/// A CDB from its header and field values.
pub(crate) fn build<const N: usize>(op: u8, sa: Option<u8>, fields: &[(Field, u64)]) -> [u8; N] {
    let mut out = header(op, sa);
    for &(f, v) in fields {
        f.set(&mut out, v);
    }
    out
}

/// CDB usage data: the header with every bit of every field set.
pub(crate) const fn usage<const N: usize>(op: u8, sa: Option<u8>, fields: &[Field]) -> [u8; N] {
    let mut out = header(op, sa);
    let mut i = 0;
    while i < fields.len() {
        fields[i].set(&mut out, u64::MAX);
        i += 1;
    }
    out
}

/// The usage data of a CDB whose SERVICE ACTION is a field, for one service action.
pub(crate) const fn with_service_action<const N: usize>(mut usage: [u8; N], sa: u8) -> [u8; N] {
    SERVICE_ACTION.set(&mut usage, sa as u64);
    usage
}
