//! The engine's core, knowing no command: logical units ([`device`], with the data of their
//! ALUA groups, persistent reservations, medium and copy results), target ports with their LUN
//! tables and ACLs and the I_T nexuses through them ([`port`]), the LU task set and the marking
//! of aborted tasks ([`tmf`], SAM-5 §7, §8), unit attentions ([`ua`], SAM-5 §5.14), the SPC-2
//! reservation holder ([`reservation`]), the I/O counters of LUs and nexuses ([`stats`]) and the stripe locks that make COMPARE AND WRITE,
//! ORWRITE and WRITE ATOMIC atomic against every write ([`stripe`]).

pub(crate) mod device;
pub(crate) mod port;
pub(crate) mod stats;
pub(crate) mod stripe;
pub(crate) mod tmf;
pub(crate) mod ua;
