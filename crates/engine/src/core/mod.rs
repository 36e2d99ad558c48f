//! The engine's core, apart from the command handlers: logical units ([`device`]), target
//! ports with their LUN tables and ACLs ([`port`]), I_T nexuses and the command pipeline
//! ([`nexus`]), the LU task set and task management ([`tmf`], SAM-5 §7, §8), unit attentions
//! ([`ua`], SAM-5 §5.14) and the stripe locks that make COMPARE AND WRITE, ORWRITE and WRITE
//! ATOMIC atomic against every write ([`stripe`]).

pub(crate) mod device;
pub(crate) mod nexus;
pub(crate) mod port;
pub(crate) mod stripe;
pub(crate) mod tmf;
pub(crate) mod ua;
