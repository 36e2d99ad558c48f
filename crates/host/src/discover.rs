//! `ironlun host discover`: SendTargets=All in a Discovery session (RFC 7143 §11.10, Appendix
//! C), printed like `iscsiadm -m discovery -t st`: one `portal,tpgt target` line per address.

use clap::Args;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::output::Output;
use crate::url::{parse_discovery, Portal};
use crate::{HostError, Result};

#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// [iscsi://][user[%secret]@]host[:port]: the portal to ask (port 3260 by default)
    pub portal: String,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct DiscoveredPortal {
    pub address: String,
    pub port: u16,
    /// The target portal group tag; `None` when the target sent no TargetAddress for this
    /// target (the discovery portal is then the one to use, RFC 7143 Appendix C.1).
    pub tpgt: Option<u16>,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub portals: Vec<DiscoveredPortal>,
}

#[derive(Serialize, Debug)]
pub struct Discovery {
    pub portal: String,
    pub targets: Vec<Target>,
}

/// A TargetAddress value: `host[:port][,tpgt]` (IPv6 in brackets).
pub fn parse_target_address(v: &str) -> Result<DiscoveredPortal> {
    let (hostport, tpgt) = match v.rsplit_once(',') {
        Some((hp, t)) => (
            hp,
            Some(t.parse::<u16>().map_err(|_| {
                HostError::new(format!(
                    "TargetAddress '{v}': portal group tag '{t}' is not 0-65535"
                ))
            })?),
        ),
        None => (v, None),
    };
    let p =
        Portal::parse(hostport).map_err(|e| HostError::new(format!("TargetAddress '{v}': {e}")))?;
    Ok(DiscoveredPortal {
        address: p.host,
        port: p.port,
        tpgt,
    })
}

pub async fn run(ctx: &Ctx, a: &DiscoverArgs) -> Result<Output> {
    let (user, secret, portal) = parse_discovery(&a.portal)?;
    let s = ctx
        .login_discovery(&portal, user.as_deref(), secret.as_deref())
        .await?;
    let found = ctx
        .step(&format!("SendTargets at {portal}"), s.send_targets("All"))
        .await;
    ctx.logout(&s).await;
    let found = found?;
    let mut targets = Vec::new();
    for t in found {
        let mut portals = Vec::new();
        for addr in &t.addresses {
            portals.push(parse_target_address(addr).map_err(|e| {
                HostError::new(format!("SendTargets at {portal}: target {}: {e}", t.name))
            })?);
        }
        if portals.is_empty() {
            portals.push(DiscoveredPortal {
                address: portal.host.clone(),
                port: portal.port,
                tpgt: None,
            });
        }
        targets.push(Target {
            name: t.name,
            portals,
        });
    }
    let mut text = String::new();
    for t in &targets {
        for p in &t.portals {
            let hp = Portal {
                host: p.address.clone(),
                port: p.port,
            };
            let tag = p.tpgt.map_or_else(|| "-1".to_string(), |g| g.to_string());
            text.push_str(&format!("{hp},{tag} {}\n", t.name));
        }
    }
    if targets.is_empty() {
        text.push_str(&format!("no targets at {portal}\n"));
    }
    let d = Discovery {
        portal: portal.to_string(),
        targets,
    };
    Ok(Output::from_serialize(text, &d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_addresses() {
        assert_eq!(
            parse_target_address("10.0.0.1:3261,2").unwrap(),
            DiscoveredPortal {
                address: "10.0.0.1".into(),
                port: 3261,
                tpgt: Some(2)
            }
        );
        assert_eq!(
            parse_target_address("[fe80::1]:3260,1").unwrap(),
            DiscoveredPortal {
                address: "fe80::1".into(),
                port: 3260,
                tpgt: Some(1)
            }
        );
        assert_eq!(parse_target_address("host").unwrap().tpgt, None);
        assert!(parse_target_address("h:1,x").is_err());
        assert!(parse_target_address("h:0,1").is_err());
    }
}
