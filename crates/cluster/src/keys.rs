//! Where the cluster keeps what in etcd (all under [`ROOT`]):
//!
//! | key | value | lease |
//! |---|---|---|
//! | `members/<node>` | the gateway's pid | yes: the gateway is live while it exists |
//! | `lu/<serial>/pr` | the last [`ironlun_engine::pr::PrChange`] (JSON); its mod revision is the PR state's revision | no |
//! | `lu/<serial>/ack/<node>` | the revision of `pr` the gateway has applied (20 digits) | yes |
//! | `lu/<serial>/ports/<node>` | the gateway's target ports of the LU with their groups (JSON) | no: kept after the gateway died, so that its group can be shown Unavailable |
//! | `lu/<serial>/alua/<group id>` | the group's access state code (decimal) | no |
//! | `config/<node>` | the gateway's clustered objects: a `config.json` fragment it applies | no |
//! | `config-status/<node>` | what became of the fragment there: `applied <rev>` or `refused <rev>: why` | no |
//!
//! An LU is known by its `wwn/vpd_unit_serial`, which the gateways of one LU share (it is also
//! what makes its NAA designator, the WWID multipath groups paths by).

/// The prefix of every key.
pub const ROOT: &str = "/ironlun/";

pub fn members() -> String {
    format!("{ROOT}members/")
}

pub fn member(node: &str) -> String {
    format!("{ROOT}members/{node}")
}

pub fn lu(serial: &str) -> String {
    format!("{ROOT}lu/{serial}/")
}

pub fn pr(serial: &str) -> String {
    format!("{ROOT}lu/{serial}/pr")
}

pub fn acks(serial: &str) -> String {
    format!("{ROOT}lu/{serial}/ack/")
}

pub fn ack(serial: &str, node: &str) -> String {
    format!("{ROOT}lu/{serial}/ack/{node}")
}

pub fn ports(serial: &str) -> String {
    format!("{ROOT}lu/{serial}/ports/")
}

pub fn port(serial: &str, node: &str) -> String {
    format!("{ROOT}lu/{serial}/ports/{node}")
}

pub fn config(node: &str) -> String {
    format!("{ROOT}config/{node}")
}

pub fn config_status(node: &str) -> String {
    format!("{ROOT}config-status/{node}")
}

pub fn group(serial: &str, id: u16) -> String {
    format!("{ROOT}lu/{serial}/alua/{id}")
}

/// What a key under [`ROOT`] names.
#[derive(Debug, PartialEq, Eq)]
pub enum Key<'a> {
    Member(&'a str),
    Pr(&'a str),
    Ack(&'a str, &'a str),
    Ports(&'a str, &'a str),
    Group(&'a str, u16),
    Config(&'a str),
    ConfigStatus(&'a str),
    Other,
}

pub fn parse(key: &str) -> Key<'_> {
    let Some(rest) = key.strip_prefix(ROOT) else {
        return Key::Other;
    };
    if let Some(node) = rest.strip_prefix("members/") {
        return Key::Member(node);
    }
    if let Some(node) = rest.strip_prefix("config/") {
        return Key::Config(node);
    }
    if let Some(node) = rest.strip_prefix("config-status/") {
        return Key::ConfigStatus(node);
    }
    let Some(rest) = rest.strip_prefix("lu/") else {
        return Key::Other;
    };
    let Some((serial, what)) = rest.split_once('/') else {
        return Key::Other;
    };
    match what.split_once('/') {
        None if what == "pr" => Key::Pr(serial),
        Some(("ack", node)) => Key::Ack(serial, node),
        Some(("ports", node)) => Key::Ports(serial, node),
        Some(("alua", id)) => id.parse().map_or(Key::Other, |id| Key::Group(serial, id)),
        _ => Key::Other,
    }
}

/// An ack's value: fixed width, so that etcd's byte order is the numbers' order.
pub fn rev_value(rev: u64) -> String {
    format!("{rev:020}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_back_to_what_made_it() {
        assert_eq!(parse(&member("gw1")), Key::Member("gw1"));
        assert_eq!(parse(&pr("abc-1")), Key::Pr("abc-1"));
        assert_eq!(parse(&ack("abc", "gw2")), Key::Ack("abc", "gw2"));
        assert_eq!(parse(&port("abc", "gw3")), Key::Ports("abc", "gw3"));
        assert_eq!(parse(&group("abc", 7)), Key::Group("abc", 7));
        assert_eq!(parse(&config("gw1")), Key::Config("gw1"));
        assert_eq!(parse(&config_status("gw1")), Key::ConfigStatus("gw1"));
        assert_eq!(parse("/ironlun/lu/abc/alua/x"), Key::Other);
        assert_eq!(parse("/other/members/gw1"), Key::Other);
        assert!(rev_value(9) < rev_value(10));
    }
}
