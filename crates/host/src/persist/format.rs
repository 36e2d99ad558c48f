//! The decoded PERSISTENT RESERVE IN reports (SPC-4 §6.15.2 READ KEYS, §6.15.3 READ
//! RESERVATION, §6.15.4 REPORT CAPABILITIES, §6.15.5 READ FULL STATUS) and PR OUT outcomes as
//! text in sg_persist's vocabulary and as JSON with the same facts.

use ironlun_initiator::pr::{
    isid_hex, Capabilities, FullStatus, FullStatusDescriptor, PrType, ReadKeys, ReadReservation,
    TransportId,
};
use serde_json::{json, Value};

use super::options::{Action, OutAction};
use crate::output::Output;

/// What a service action brought back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    Keys(ReadKeys),
    Reservation(ReadReservation),
    Capabilities(Capabilities),
    FullStatus(FullStatus),
    /// A PR OUT service action ended GOOD; REGISTER AND MOVE says which target port it named.
    Done {
        rtpi: Option<u16>,
    },
}

/// sg_persist's names of the TYPE codes (SPC-4 Table 168; the others are obsolete).
pub fn type_name(code: u8) -> String {
    match PrType::from_code(code) {
        Some(PrType::WriteExclusive) => "Write Exclusive".into(),
        Some(PrType::ExclusiveAccess) => "Exclusive Access".into(),
        Some(PrType::WriteExclusiveRegistrantsOnly) => "Write Exclusive, registrants only".into(),
        Some(PrType::ExclusiveAccessRegistrantsOnly) => "Exclusive Access, registrants only".into(),
        Some(PrType::WriteExclusiveAllRegistrants) => "Write Exclusive, all registrants".into(),
        Some(PrType::ExclusiveAccessAllRegistrants) => "Exclusive Access, all registrants".into(),
        None if code < 10 => format!("obsolete [{code}]"),
        None => format!("obsolete [{code:#x}]"),
    }
}

/// The SCOPE field (SPC-4 §6.15.3.3: only LU_SCOPE, 0h, is defined).
pub fn scope_name(scope: u8) -> String {
    if scope == 0 {
        "LU_SCOPE".into()
    } else {
        format!("{scope}")
    }
}

/// `scope: LU_SCOPE,  type: Write Exclusive` as sg_persist spaces it.
fn scope_type_line(scope: u8, pr_type: u8) -> String {
    let scope = if scope == 0 {
        "LU_SCOPE, ".to_string()
    } else {
        format!("{scope} ")
    };
    format!("scope: {scope} type: {}", type_name(pr_type))
}

/// A reservation key as sg_persist prints it (and as JSON carries it: a u64 is no JSON
/// number).
pub fn key_hex(k: u64) -> String {
    format!("{k:#x}")
}

/// sg_persist's first lines: vendor, product and revision from standard INQUIRY (at least
/// 36 bytes, as `Ctx::open` checked), and the peripheral device type.
pub fn inquiry_header(inq: &[u8]) -> String {
    let field = |r: std::ops::Range<usize>| {
        inq.get(r)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let pdt = inq.first().map_or(0x1f, |b| b & 0x1f);
    let kind = crate::inquiry::names::device_type(pdt);
    format!(
        "  {}  {}  {}\n  Peripheral device type: {kind}\n",
        field(8..16),
        field(16..32),
        field(32..36)
    )
}

fn keys_text(r: &ReadKeys) -> String {
    let mut s = format!("  PR generation={:#x}, ", r.generation);
    match r.keys.len() {
        0 => s.push_str("there are NO registered reservation keys\n"),
        1 => s.push_str("1 registered reservation key follows:\n"),
        n => s.push_str(&format!("{n} registered reservation keys follow:\n")),
    }
    for k in &r.keys {
        s.push_str(&format!("    {}\n", key_hex(*k)));
    }
    let sent = r.additional_length / 8;
    if sent as usize > r.keys.len() {
        s.push_str(&format!(
            "  ({sent} registered; the allocation length held {})\n",
            r.keys.len()
        ));
    }
    s
}

fn reservation_text(r: &ReadReservation) -> String {
    let mut s = format!("  PR generation={:#x}, ", r.generation);
    match &r.reservation {
        None => s.push_str("there is NO reservation held\n"),
        Some(res) => {
            s.push_str("Reservation follows:\n");
            s.push_str(&format!("    Key={}\n", key_hex(res.key)));
            s.push_str(&format!(
                "    {}\n",
                scope_type_line(res.scope, res.pr_type)
            ));
        }
    }
    s
}

/// REPORT CAPABILITIES' type mask in sg_persist's order (SPC-4 Table 169) with JSON names.
fn mask_rows() -> [(PrType, &'static str); 6] {
    [
        (PrType::WriteExclusiveAllRegistrants, "wr_ex_ar"),
        (PrType::ExclusiveAccessRegistrantsOnly, "ex_ac_ro"),
        (PrType::WriteExclusiveRegistrantsOnly, "wr_ex_ro"),
        (PrType::ExclusiveAccess, "ex_ac"),
        (PrType::WriteExclusive, "wr_ex"),
        (PrType::ExclusiveAccessAllRegistrants, "ex_ac_ar"),
    ]
}

fn capabilities_text(c: &Capabilities) -> String {
    let b = u8::from;
    let mut s = String::from("Report capabilities response:\n");
    let rows = [
        ("Replace Lost Reservation Capable(RLR_C)", b(c.rlr_c)),
        ("Compatible Reservation Handling(CRH)", b(c.crh)),
        ("Specify Initiator Ports Capable(SIP_C)", b(c.sip_c)),
        ("All Target Ports Capable(ATP_C)", b(c.atp_c)),
        ("Persist Through Power Loss Capable(PTPL_C)", b(c.ptpl_c)),
        ("Type Mask Valid(TMV)", b(c.tmv)),
        ("Allow Commands", c.allow_commands),
        ("Persist Through Power Loss Active(PTPL_A)", b(c.ptpl_a)),
    ];
    for (name, v) in rows {
        s.push_str(&format!("  {name}: {v}\n"));
    }
    if c.tmv {
        s.push_str("    Support indicated in Type mask:\n");
        for (t, _) in mask_rows() {
            s.push_str(&format!(
                "      {}: {}\n",
                type_name(t.code()),
                b(c.supports(t))
            ));
        }
    }
    s
}

/// sg3_utils' decoding of a TransportID, indented by `lead`.
fn transport_id_text(t: &TransportId, lead: &str) -> String {
    let mut s = format!("{lead}Transport Id of initiator:\n");
    match t {
        TransportId::Iscsi { name, isid: None } => {
            s.push_str(&format!("{lead}  iSCSI name: {name}\n"));
        }
        TransportId::Iscsi {
            name,
            isid: Some(isid),
        } => {
            s.push_str(&format!(
                "{lead}  iSCSI world wide unique port id: {name},i,0x{}\n",
                isid_hex(*isid)
            ));
        }
        TransportId::Other { protocol, bytes } => {
            s.push_str(&format!(
                "{lead}  protocol identifier {protocol:#x}: {}\n",
                crate::output::hex(bytes)
            ));
        }
    }
    s
}

fn full_status_text(f: &FullStatus) -> String {
    let mut s = format!("  PR generation={:#x}\n", f.generation);
    if f.descriptors.is_empty() {
        s.push_str("  No full status descriptors\n");
    }
    for d in &f.descriptors {
        s.push_str(&format!("    Key={}\n", key_hex(d.key)));
        if d.all_tg_pt {
            s.push_str("      All target ports bit set\n");
        } else {
            s.push_str("      All target ports bit clear\n");
            s.push_str(&format!("      Relative port address: {:#x}\n", d.rtpi));
        }
        if d.r_holder {
            s.push_str("      << Reservation holder >>\n");
            s.push_str(&format!("      {}\n", scope_type_line(d.scope, d.pr_type)));
        } else {
            s.push_str("      not reservation holder\n");
        }
        s.push_str(&transport_id_text(&d.transport_id, "      "));
    }
    s
}

fn out_text(a: OutAction, rtpi: Option<u16>) -> String {
    match rtpi {
        Some(r) => format!(
            "PR out ({}): command successful (relative target port {r:#x})\n",
            a.title()
        ),
        None => format!("PR out ({}): command successful\n", a.title()),
    }
}

fn type_json(code: u8) -> Value {
    json!({ "type": code, "type_name": type_name(code) })
}

fn transport_id_json(t: &TransportId) -> Value {
    match t {
        TransportId::Iscsi { name, isid } => json!({
            "protocol": "iscsi",
            "format": t.format(),
            "name": name,
            "isid": isid.map(isid_hex),
        }),
        TransportId::Other { protocol, bytes } => json!({
            "protocol_id": protocol,
            "format": t.format(),
            "hex": crate::output::hex(bytes),
        }),
    }
}

fn descriptor_json(d: &FullStatusDescriptor) -> Value {
    let mut v = json!({
        "key": key_hex(d.key),
        "all_tg_pt": d.all_tg_pt,
        "relative_target_port": (!d.all_tg_pt).then_some(d.rtpi),
        "reservation_holder": d.r_holder,
        "transport_id": transport_id_json(&d.transport_id),
    });
    let holder = if d.r_holder {
        let mut h = type_json(d.pr_type);
        h["scope"] = json!(d.scope);
        h["scope_name"] = json!(scope_name(d.scope));
        h
    } else {
        Value::Null
    };
    v["reservation"] = holder;
    v
}

fn report_json(r: &Report) -> Value {
    match r {
        Report::Keys(k) => json!({
            "generation": k.generation,
            "keys": k.keys.iter().map(|k| key_hex(*k)).collect::<Vec<_>>(),
        }),
        Report::Reservation(r) => json!({
            "generation": r.generation,
            "reservation": r.reservation.map(|res| {
                let mut v = type_json(res.pr_type);
                v["key"] = json!(key_hex(res.key));
                v["scope"] = json!(res.scope);
                v["scope_name"] = json!(scope_name(res.scope));
                v
            }),
        }),
        Report::Capabilities(c) => {
            let mask: serde_json::Map<String, Value> = mask_rows()
                .into_iter()
                .map(|(t, n)| (n.to_string(), json!(c.supports(t))))
                .collect();
            json!({
                "capabilities": {
                    "rlr_c": c.rlr_c,
                    "crh": c.crh,
                    "sip_c": c.sip_c,
                    "atp_c": c.atp_c,
                    "ptpl_c": c.ptpl_c,
                    "tmv": c.tmv,
                    "allow_commands": c.allow_commands,
                    "ptpl_a": c.ptpl_a,
                    "type_mask": if c.tmv { Value::Object(mask) } else { Value::Null },
                }
            })
        }
        Report::FullStatus(f) => json!({
            "generation": f.generation,
            "descriptors": f.descriptors.iter().map(descriptor_json).collect::<Vec<_>>(),
        }),
        Report::Done { rtpi } => {
            let mut v = json!({ "done": true });
            if let Some(r) = rtpi {
                v["relative_target_port"] = json!(r);
            }
            v
        }
    }
}

/// The text (after the INQUIRY header, when wanted) and the JSON of `report`.
pub fn output(url: &str, action: Action, header: Option<&str>, report: &Report) -> Output {
    let body = match (report, action) {
        (Report::Keys(k), _) => keys_text(k),
        (Report::Reservation(r), _) => reservation_text(r),
        (Report::Capabilities(c), _) => capabilities_text(c),
        (Report::FullStatus(f), _) => full_status_text(f),
        (Report::Done { rtpi }, Action::Out(a)) => out_text(a, *rtpi),
        (Report::Done { .. }, Action::In(a)) => format!("PR in ({}): done\n", a.title()),
    };
    let mut json = json!({ "url": url, "action": action.option() });
    if let (Value::Object(o), Value::Object(more)) = (&mut json, report_json(report)) {
        o.extend(more);
    }
    Output::new(format!("{}{body}", header.unwrap_or_default()), json)
}
