//! TPG `param/` keys (LIO naming) and the target-side negotiation policy they give
//! (RFC 7143 §13). Values are the target's offers / limits; the initiator's offers meet them
//! through the result functions of `ironlun_iscsi::negotiation`.

use std::collections::BTreeMap;

use ironlun_iscsi::negotiation::{parse_bool, parse_number};

/// Names and defaults in display order. Defaults differ from LIO where a faster RFC-legal
/// value exists: MaxRecvDataSegmentLength 262144, MaxBurstLength 16776192, FirstBurstLength
/// 262144, InitialR2T No, MaxOutstandingR2T 16, MaxConnections 8.
pub(crate) const PARAMS: &[(&str, &str)] = &[
    ("AuthMethod", "CHAP,None"),
    ("HeaderDigest", "CRC32C,None"),
    ("DataDigest", "CRC32C,None"),
    ("MaxConnections", "8"),
    ("TargetAlias", "ironlun target"),
    ("InitialR2T", "No"),
    ("ImmediateData", "Yes"),
    ("MaxRecvDataSegmentLength", "262144"),
    ("MaxXmitDataSegmentLength", "262144"),
    ("MaxBurstLength", "16776192"),
    ("FirstBurstLength", "262144"),
    ("DefaultTime2Wait", "2"),
    ("DefaultTime2Retain", "20"),
    ("MaxOutstandingR2T", "16"),
    ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"),
    ("ErrorRecoveryLevel", "0"),
    ("IFMarker", "No"),
    ("OFMarker", "No"),
    ("IFMarkInt", "Reject"),
    ("OFMarkInt", "Reject"),
];

/// The words a key's value is made of, where they are a fixed set (a comma list of them for
/// AuthMethod and the digests, one of them for the others); `None` for numbers and text.
pub(crate) fn words(key: &str) -> Option<&'static [&'static str]> {
    Some(match key {
        "AuthMethod" => &["CHAP", "None"],
        "HeaderDigest" | "DataDigest" => &["CRC32C", "None"],
        "InitialR2T" | "ImmediateData" | "DataPDUInOrder" | "DataSequenceInOrder" => &["Yes", "No"],
        "IFMarker" | "OFMarker" => &["No"],
        "IFMarkInt" | "OFMarkInt" => &["Reject"],
        "ErrorRecoveryLevel" => &["0"],
        _ => return None,
    })
}

pub(crate) fn validate(key: &str, value: &str) -> Result<(), String> {
    let Some(_) = PARAMS.iter().find(|(k, _)| *k == key) else {
        let names: Vec<&str> = PARAMS.iter().map(|(k, _)| *k).collect();
        return Err(format!(
            "unknown parameter {key}; valid: {}",
            names.join(", ")
        ));
    };
    let allowed = words(key).unwrap_or_default();
    let list_ok = || !value.is_empty() && value.split(',').all(|v| allowed.contains(&v));
    let num = |min: u64, max: u64| parse_number(value).is_some_and(|n| (min..=max).contains(&n));
    let ok = match key {
        "AuthMethod" | "HeaderDigest" | "DataDigest" => list_ok(),
        "MaxConnections" => num(1, 65535),
        "TargetAlias" => value.len() <= 255 && !value.contains('\0'),
        "InitialR2T" | "ImmediateData" | "DataPDUInOrder" | "DataSequenceInOrder" => {
            parse_bool(value).is_some()
        }
        "IFMarker" | "OFMarker" | "IFMarkInt" | "OFMarkInt" => allowed.contains(&value),
        "MaxRecvDataSegmentLength"
        | "MaxXmitDataSegmentLength"
        | "MaxBurstLength"
        | "FirstBurstLength" => num(512, 16_777_215),
        "DefaultTime2Wait" | "DefaultTime2Retain" => num(0, 3600),
        "MaxOutstandingR2T" => num(1, 65535),
        // ERL 1 and 2 are not implemented: only 0 can be offered.
        "ErrorRecoveryLevel" => allowed.contains(&value),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid value {value:?} for {key}: {}", hint(key)))
    }
}

fn hint(key: &str) -> &'static str {
    match key {
        "AuthMethod" => "comma list of CHAP, None",
        "HeaderDigest" | "DataDigest" => "comma list of CRC32C, None",
        "MaxConnections" | "MaxOutstandingR2T" => "1..65535",
        "TargetAlias" => "up to 255 bytes",
        "InitialR2T" | "ImmediateData" | "DataPDUInOrder" | "DataSequenceInOrder" => "Yes or No",
        "IFMarker" | "OFMarker" => "No (markers are obsolete, RFC 7143 §13.26)",
        "IFMarkInt" | "OFMarkInt" => "Reject (obsolete, RFC 7143 §13.26)",
        "DefaultTime2Wait" | "DefaultTime2Retain" => "0..3600",
        "ErrorRecoveryLevel" => "0 (only ErrorRecoveryLevel 0 is supported)",
        _ => "512..16777215",
    }
}

/// The effective target-side values of one TPG: defaults overlaid with its `param/` map
/// (invalid overrides are ignored; the control plane validates them with `validate_param`).
#[derive(Clone, Debug)]
pub(crate) struct TpgParams {
    map: BTreeMap<&'static str, String>,
}

impl TpgParams {
    pub(crate) fn new(overrides: &BTreeMap<String, String>) -> TpgParams {
        let mut map = BTreeMap::new();
        for (k, v) in PARAMS {
            let val = match overrides.get(*k) {
                Some(o) if validate(k, o).is_ok() => o.clone(),
                _ => (*v).to_string(),
            };
            map.insert(*k, val);
        }
        TpgParams { map }
    }
    pub(crate) fn get(&self, key: &str) -> &str {
        self.map.get(key).map(String::as_str).unwrap_or("")
    }
    pub(crate) fn num(&self, key: &str) -> u32 {
        parse_number(self.get(key))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    }
    /// Our own value / limit / acceptable list for a negotiated key (what `respond` wants).
    pub(crate) fn ours(&self, key: &str) -> String {
        match key {
            "TaskReporting" => "RFC3720".to_string(),
            "iSCSIProtocolLevel" => "1".to_string(),
            _ => self.get(key).to_string(),
        }
    }
    /// The MaxRecvDataSegmentLength we declare.
    pub(crate) fn max_recv(&self) -> u32 {
        self.num("MaxRecvDataSegmentLength").max(512)
    }
    /// Cap on what we send regardless of the initiator's declaration (LIO's
    /// MaxXmitDataSegmentLength).
    pub(crate) fn max_xmit_cap(&self) -> u32 {
        self.num("MaxXmitDataSegmentLength").max(512)
    }
}

/// The policy for a discovery session (no TPG): defaults, no auth decisions here.
pub(crate) fn discovery_params() -> TpgParams {
    TpgParams::new(&BTreeMap::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        for (k, v) in PARAMS {
            assert_eq!(validate(k, v), Ok(()), "{k}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = validate("MaxBurstLength", "100").unwrap_err();
        assert!(e.contains("MaxBurstLength") && e.contains("512"));
        assert!(validate("HeaderDigest", "CRC32C,MD5").is_err());
        assert!(validate("ErrorRecoveryLevel", "2").is_err());
        assert!(validate("Bogus", "1").unwrap_err().contains("unknown"));
    }

    #[test]
    fn overrides_apply() {
        let mut o = BTreeMap::new();
        o.insert("MaxRecvDataSegmentLength".to_string(), "65536".to_string());
        o.insert("MaxBurstLength".to_string(), "junk".to_string());
        let p = TpgParams::new(&o);
        assert_eq!(p.max_recv(), 65536);
        assert_eq!(p.get("MaxBurstLength"), "16776192");
    }
}
