//! A small iSCSI initiator.
