//! The command handlers, one module per command family (what they are given and return is
//! `crate::handler`; the dispatch from a command kind to its handler is `crate::pipeline`).
//!
//! Families: [`spc`] (INQUIRY, REQUEST SENSE, REPORT LUNS, RSOC, reservations' commands),
//! [`vpd`] (INQUIRY VPD pages), [`mode`] (MODE SENSE/SELECT), [`sbc`] (READ, WRITE, VERIFY,
//! COMPARE AND WRITE, WRITE SAME, SYNCHRONIZE CACHE, READ CAPACITY), [`thin`] (UNMAP, GET LBA
//! STATUS), [`xcopy`] (EXTENDED COPY, RECEIVE COPY RESULTS), [`atomic`] (ORWRITE, WRITE
//! ATOMIC), [`sanitize`], [`defect`] (READ DEFECT DATA), [`media`] (removable medium, START
//! STOP UNIT, PREVENT ALLOW), [`reservation`] (SPC-2 RESERVE/RELEASE state). The opcode table is
//! [`table`], looked up and checked by [`ops`]. PR and ALUA commands live in `crate::pr` and
//! `crate::alua`.

pub(crate) mod atomic;
pub(crate) mod defect;
pub(crate) mod media;
pub(crate) mod mode;
pub(crate) mod ops;
pub(crate) mod sanitize;
pub(crate) mod sbc;
pub(crate) mod spc;
pub(crate) mod table;
pub(crate) mod thin;
pub(crate) mod vpd;
pub(crate) mod xcopy;
