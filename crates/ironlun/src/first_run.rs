//! The built-in default config of a first run without `--config`: a RAM disk in demo mode,
//! open on loopback, behind generated CHAP credentials elsewhere (docs/cli.md).

use std::net::SocketAddr;

use ironlun_control::model::Config;
use ironlun_control::tree::{self, Op};

use crate::DEFAULT_TARGET;

/// How the built-in default config is made on a first run without --config.
#[derive(Clone, Copy)]
pub(crate) struct FirstRun {
    pub(crate) portal: SocketAddr,
    pub(crate) insecure_demo: bool,
}

/// The CHAP user of the built-in default when its portal is off loopback.
pub(crate) const DEFAULT_CHAP_USER: &str = "ironlun";

/// A CHAP secret of 20 letters and digits (about 119 bits) from the kernel's random source.
pub(crate) fn generated_secret() -> Result<String, String> {
    use std::io::Read;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut urandom = std::fs::File::open("/dev/urandom")
        .map_err(|e| format!("cannot open /dev/urandom for a CHAP secret: {e}"))?;
    let mut out = String::with_capacity(20);
    let mut byte = [0u8; 1];
    while out.len() < 20 {
        urandom
            .read_exact(&mut byte)
            .map_err(|e| format!("cannot read /dev/urandom for a CHAP secret: {e}"))?;
        // 248 = 4 * 62: the bytes above it would favour the first letters.
        if byte[0] < 248 {
            out.push(char::from(ALPHABET[usize::from(byte[0]) % ALPHABET.len()]));
        }
    }
    Ok(out)
}

/// The embedded first-run config: a 1 GiB RAM disk as LUN 0 of the default target, demo mode,
/// read-write, on `portal`; with `chap` (user, secret) every initiator must log in with those
/// TPG credentials, else no authentication. Built through the tree so it obeys its rules.
pub(crate) fn default_config(
    insp: &dyn tree::Inspect,
    portal: SocketAddr,
    chap: Option<(&str, &str)>,
) -> Result<Config, String> {
    let tpg = format!("iscsi/{DEFAULT_TARGET}/tpgt_1");
    let create = |path: String, args: &[&str]| Op::Create {
        path,
        args: args.iter().map(|s| s.to_string()).collect(),
    };
    let set = |leaf: &str, value: &str| Op::Set {
        path: format!("{tpg}/{leaf}"),
        value: value.to_string(),
    };
    let mut ops = vec![
        create("core/rd_mcp_0/ramdisk0".into(), &["size=1G"]),
        create(tpg.clone(), &[]),
        create(format!("{tpg}/np/{portal}"), &[]),
        create(format!("{tpg}/lun/lun_0"), &["dev=core/rd_mcp_0/ramdisk0"]),
    ];
    match chap {
        Some((user, secret)) => ops.extend([
            set("auth/userid", user),
            set("auth/password", secret),
            set("attrib/authentication", "1"),
        ]),
        None => ops.push(set("attrib/authentication", "0")),
    }
    ops.extend([
        set("attrib/generate_node_acls", "1"),
        set("attrib/demo_mode_write_protect", "0"),
        set("enable", "1"),
    ]);
    let mut cfg = Config::default();
    for op in &ops {
        cfg = tree::mutate(&cfg, insp, op)
            .map_err(|e| format!("default config: {e}"))?
            .0;
    }
    Ok(cfg)
}
