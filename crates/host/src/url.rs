//! Where a target is: libiscsi's URL syntax `iscsi://[user[%secret]@]host[:port]/iqn/lun`
//! (IPv6 hosts in brackets, port 3260 by default) and bare portals `host[:port]`.

use std::fmt;

use crate::{HostError, Result};

/// The iSCSI port IANA assigned (RFC 7143 §14).
pub const DEFAULT_PORT: u16 = 3260;

/// A network portal: a host name or address and a TCP port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Portal {
    /// Host name, IPv4 address or IPv6 address (without brackets).
    pub host: String,
    pub port: u16,
}

impl Portal {
    /// `host`, `host:port`, `[v6]`, `[v6]:port`, or the same behind `iscsi://` (a trailing
    /// `/` allowed).
    pub fn parse(s: &str) -> Result<Portal> {
        let rest = s.strip_prefix("iscsi://").unwrap_or(s);
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('@') {
            return Err(HostError::new(format!(
                "portal '{s}': expected host[:port] (IPv6 as [addr][:port])"
            )));
        }
        parse_hostport(rest).map_err(|why| HostError::new(format!("portal '{s}': {why}")))
    }

    /// What `ToSocketAddrs` takes: `host:port`, IPv6 in brackets.
    pub fn socket_addr_text(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Portal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// An `iscsi://` URL naming one logical unit.
#[derive(Clone, PartialEq, Eq)]
pub struct IscsiUrl {
    /// CHAP user name, if the URL has one.
    pub user: Option<String>,
    /// CHAP secret, if the URL has one (`user%secret@`); prefer the environment.
    pub secret: Option<String>,
    pub portal: Portal,
    pub target: String,
    pub lun: u64,
}

impl fmt::Debug for IscsiUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "IscsiUrl({self})")
    }
}

impl fmt::Display for IscsiUrl {
    /// The URL without its secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("iscsi://")?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}/{}/{}", self.portal, self.target, self.lun)
    }
}

impl IscsiUrl {
    pub fn parse(s: &str) -> Result<IscsiUrl> {
        let bad = |why: &str| {
            HostError::new(format!(
                "URL '{}': {why} (expected iscsi://[user[%secret]@]host[:port]/target-iqn/lun)",
                redact(s)
            ))
        };
        let rest = s
            .strip_prefix("iscsi://")
            .ok_or_else(|| bad("does not start with iscsi://"))?;
        if rest.contains('?') || rest.contains('#') {
            return Err(bad("query and fragment parts are not supported"));
        }
        let (auth, rest) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (user, secret) = match auth {
            None => (None, None),
            Some(a) => {
                let (u, p) = match a.split_once('%') {
                    Some((u, p)) => (u, Some(p.to_string())),
                    None => (a, None),
                };
                if u.is_empty() {
                    return Err(bad("empty user name before '@'"));
                }
                (Some(u.to_string()), p)
            }
        };
        let mut parts = rest.splitn(3, '/');
        let hostport = parts.next().unwrap_or_default();
        let target = parts.next().ok_or_else(|| bad("no target name"))?;
        let lun = parts.next().ok_or_else(|| bad("no LUN"))?;
        let portal = parse_hostport(hostport).map_err(|why| bad(&why))?;
        if target.is_empty() {
            return Err(bad("empty target name"));
        }
        let lun = lun.strip_suffix('/').unwrap_or(lun);
        let lun: u64 = lun
            .parse()
            .map_err(|_| bad(&format!("LUN '{lun}' is not a number")))?;
        if lun > ironlun_scsi::lun::MAX_LUN {
            return Err(bad(&format!(
                "LUN {lun} is out of range 0-{}",
                ironlun_scsi::lun::MAX_LUN
            )));
        }
        Ok(IscsiUrl {
            user,
            secret,
            portal,
            target: target.to_string(),
            lun,
        })
    }
}

/// A discovery portal with optional credentials: `[iscsi://][user[%secret]@]host[:port][/]`.
/// Returns (user, secret, portal).
pub fn parse_discovery(s: &str) -> Result<(Option<String>, Option<String>, Portal)> {
    let rest = s.strip_prefix("iscsi://").unwrap_or(s);
    let (auth, hostport) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let portal =
        Portal::parse(hostport).map_err(|e| HostError::new(e.0.replace(hostport, &redact(s))))?;
    let (user, secret) = match auth {
        None => (None, None),
        Some(a) => match a.split_once('%') {
            Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
            None => (Some(a.to_string()), None),
        },
    };
    if user.as_deref() == Some("") {
        return Err(HostError::new(format!(
            "portal '{}': empty user name before '@'",
            redact(s)
        )));
    }
    Ok((user, secret, portal))
}

/// `s` with any `%secret` before `@` replaced, for error messages.
fn redact(s: &str) -> String {
    let start = s.find("://").map_or(0, |i| i + 3);
    match s.rfind('@') {
        Some(at) if at >= start => {
            let auth = &s[start..at];
            match auth.split_once('%') {
                Some((u, _)) => format!("{}{u}%***{}", &s[..start], &s[at..]),
                None => s.to_string(),
            }
        }
        _ => s.to_string(),
    }
}

fn parse_hostport(s: &str) -> std::result::Result<Portal, String> {
    if s.is_empty() {
        return Err("no host".into());
    }
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| "IPv6 address without ']'".to_string())?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("'{h}' is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected '{p}' after the IPv6 address"))?,
            ),
        };
        (h, port)
    } else {
        match s.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            Some(_) => {
                return Err("an IPv6 address must be written in brackets: [addr]:port".into())
            }
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("port '{p}' is not in 1-65535")),
        },
    };
    Ok(Portal {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_url_with_credentials() {
        let u = IscsiUrl::parse("iscsi://alice%s3cret@10.0.0.1:3261/iqn.2026-11.x:t/7").unwrap();
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.secret.as_deref(), Some("s3cret"));
        assert_eq!(
            u.portal,
            Portal {
                host: "10.0.0.1".into(),
                port: 3261
            }
        );
        assert_eq!(u.target, "iqn.2026-11.x:t");
        assert_eq!(u.lun, 7);
        assert_eq!(
            u.to_string(),
            "iscsi://alice@10.0.0.1:3261/iqn.2026-11.x:t/7"
        );
        assert!(!format!("{u:?}").contains("s3cret"));
    }

    #[test]
    fn ipv6_and_default_port() {
        let u = IscsiUrl::parse("iscsi://[::1]/iqn.a:b/0").unwrap();
        assert_eq!(
            u.portal,
            Portal {
                host: "::1".into(),
                port: 3260
            }
        );
        assert_eq!(u.portal.to_string(), "[::1]:3260");
        let u = IscsiUrl::parse("iscsi://[fe80::2]:3262/iqn.a:b/3/").unwrap();
        assert_eq!(u.portal.port, 3262);
        assert_eq!(u.lun, 3);
        assert_eq!(Portal::parse("[::1]:99").unwrap().port, 99);
        assert_eq!(
            Portal::parse("iscsi://host").unwrap().to_string(),
            "host:3260"
        );
    }

    #[test]
    fn refusals_name_the_part_and_hide_the_secret() {
        for (s, why) in [
            ("http://h/iqn.a:b/0", "does not start with iscsi://"),
            ("iscsi://h/iqn.a:b", "no LUN"),
            ("iscsi://h", "no target name"),
            ("iscsi://h//0", "empty target name"),
            ("iscsi://h/iqn.a:b/x", "LUN 'x' is not a number"),
            ("iscsi://h/iqn.a:b/16384", "out of range"),
            ("iscsi://h:0/iqn.a:b/1", "port '0'"),
            ("iscsi://h:99999/iqn.a:b/1", "port '99999'"),
            ("iscsi://::1/iqn.a:b/1", "brackets"),
            ("iscsi://[zz]/iqn.a:b/1", "not an IPv6 address"),
            ("iscsi://u%pw@/iqn.a:b/1", "no host"),
            ("iscsi://%pw@h/iqn.a:b/1", "empty user name"),
            ("iscsi://h/iqn.a:b/1?x=y", "query"),
        ] {
            let e = IscsiUrl::parse(s).unwrap_err().0;
            assert!(e.contains(why), "{s}: {e}");
            assert!(!e.contains("pw@"), "{s}: secret shown: {e}");
        }
        assert!(Portal::parse("h/x").is_err());
        let (u, p, portal) = parse_discovery("iscsi://bob%pw@[::1]:3262").unwrap();
        assert_eq!((u.as_deref(), p.as_deref()), (Some("bob"), Some("pw")));
        assert_eq!(portal.to_string(), "[::1]:3262");
        let (u, p, portal) = parse_discovery("10.1.1.1").unwrap();
        assert_eq!((u, p, portal.port), (None, None, 3260));
        let e = parse_discovery("bob%pw@h:0").unwrap_err().0;
        assert!(e.contains("port") && !e.contains("pw@"), "{e}");
        assert!(Portal::parse("").is_err());
    }
}
