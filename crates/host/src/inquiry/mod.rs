//! `ironlun host inq`: standard INQUIRY (SPC-4 §6.6.2) and the VPD pages 0x00, 0x80, 0x83,
//! 0xB0, 0xB1 and 0xB2 (SPC-4 §7.8, SBC-3 §6.6), decoded like sg_inq and sg_vpd.
//!
//! Only the pages VPD 0x00 lists are asked for (EVPD=1, SPC-4 §6.6.1); a page longer than the
//! allocation length is asked for again with the length its PAGE LENGTH needs (at most
//! 65535). A listed page the target refuses (a status other than GOOD) is reported for that
//! page, and the command still succeeds; a page that comes back malformed (wrong page code,
//! PAGE LENGTH beyond the data, a designator overrunning the page or of a length its type
//! does not allow) is a target fault: the command fails with one line naming the page and
//! the byte offset. The decoders are pure functions over the page bytes, in
//! [`standard`], [`vpd_ident`] and [`vpd_block`].

pub mod names;
pub mod page;
pub mod standard;
pub mod vpd_block;
pub mod vpd_ident;

#[cfg(test)]
mod tests;

use clap::Args;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::ctx::{Ctx, Lu};
use crate::error::scsi_failure;
use crate::output::Output;
use crate::url::IscsiUrl;
use crate::{HostError, Result};

use page::{judge, Fetch};
use standard::{decode_standard, render_standard, Standard};
use vpd_block::{
    decode_block_characteristics, decode_block_limits, decode_provisioning,
    render_block_characteristics, render_block_limits, render_provisioning, BlockCharacteristics,
    BlockLimits, Provisioning,
};
use vpd_ident::{
    decode_device_id, decode_serial, decode_supported, render_device_id, render_serial,
    render_supported, DeviceIdentification, SupportedPages, UnitSerial,
};

#[derive(Args, Debug)]
pub struct InqArgs {
    /// iscsi://[user[%secret]@]host[:port]/target-iqn/lun
    pub url: String,
}

/// The pages after 0x00 this command decodes, in the order it reads them.
pub const PAGES: [u8; 5] = [0x80, 0x83, 0xB0, 0xB1, 0xB2];

/// The first allocation length asked for (what every target accepts, SPC-2's one byte).
const FIRST_ALLOC: u16 = 255;

/// One decoded VPD page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Vpd {
    Supported(SupportedPages),
    Serial(UnitSerial),
    DeviceId(DeviceIdentification),
    BlockLimits(BlockLimits),
    BlockCharacteristics(BlockCharacteristics),
    Provisioning(Provisioning),
}

/// Decode page `code` (one of 0x00 and [`PAGES`]); `Err` says what is malformed.
pub fn decode_page(code: u8, page: &[u8]) -> std::result::Result<Vpd, String> {
    Ok(match code {
        0x00 => Vpd::Supported(decode_supported(page)?),
        0x80 => Vpd::Serial(decode_serial(page)?),
        0x83 => Vpd::DeviceId(decode_device_id(page)?),
        0xB0 => Vpd::BlockLimits(decode_block_limits(page)?),
        0xB1 => Vpd::BlockCharacteristics(decode_block_characteristics(page)?),
        0xB2 => Vpd::Provisioning(decode_provisioning(page)?),
        other => return Err(format!("page {other:#04x} is not one this command decodes")),
    })
}

/// What asking for one page gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The page, exactly as long as its PAGE LENGTH says.
    Page(Vec<u8>),
    /// The target would not give it (refused with a status, or too long to fetch): why.
    Unavailable(String),
}

/// How one of our pages came out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageOutcome {
    Decoded(Box<Vpd>),
    /// Listed, but not given: why.
    Error(String),
    /// Not listed in VPD 0x00 (never asked for).
    NotListed,
}

/// Everything `inq` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub url: String,
    pub standard: Standard,
    pub supported: SupportedPages,
    /// [`PAGES`] that apply to the device type, in order.
    pub pages: Vec<(u8, PageOutcome)>,
}

/// The heading sg_vpd prints over page `code`: `Block limits VPD page (SBC)`.
fn heading(code: u8, pdt: u8) -> String {
    let name = match code {
        0x83 => "Device Identification",
        c => names::vpd_page(c, pdt).unwrap_or("Unknown"),
    };
    let sbc = if code >= 0xB0 { " (SBC)" } else { "" };
    format!("{name} VPD page{sbc}")
}

/// `VPD page 0x83 (Device identification)`.
fn page_title(code: u8, pdt: u8) -> String {
    match names::vpd_page(code, pdt) {
        Some(n) => format!("VPD page {code:#04x} ({n})"),
        None => format!("VPD page {code:#04x}"),
    }
}

/// The one-line failure for a malformed page.
pub fn malformed(url: &str, code: u8, pdt: u8, what: &str) -> HostError {
    HostError::new(format!(
        "{} from {url} is malformed: {what}",
        page_title(code, pdt)
    ))
}

/// Which of [`PAGES`] apply to device type `pdt` (B0h..B2h only to block devices).
pub fn pages_for(pdt: u8) -> Vec<u8> {
    PAGES
        .iter()
        .copied()
        .filter(|c| *c < 0xB0 || names::is_block_device(pdt))
        .collect()
}

/// Put a report together from the standard data, VPD 0x00 and what each listed page gave
/// (`fetched`: the pages asked for, in any order). A malformed page fails the whole report.
pub fn assemble(
    url: &str,
    inquiry: &[u8],
    page0: &[u8],
    fetched: &[(u8, Fetched)],
) -> Result<Report> {
    let standard = decode_standard(inquiry)
        .map_err(|e| HostError::new(format!("standard INQUIRY from {url}: {e}")))?;
    let pdt = standard.peripheral_device_type;
    let supported = decode_supported(page0).map_err(|e| malformed(url, 0x00, pdt, &e))?;
    let mut pages = Vec::new();
    for code in pages_for(pdt) {
        let outcome = if !supported.lists(code) {
            PageOutcome::NotListed
        } else {
            match fetched.iter().find(|(c, _)| *c == code).map(|(_, f)| f) {
                Some(Fetched::Page(p)) => PageOutcome::Decoded(Box::new(
                    decode_page(code, p).map_err(|e| malformed(url, code, pdt, &e))?,
                )),
                Some(Fetched::Unavailable(why)) => PageOutcome::Error(why.clone()),
                None => PageOutcome::Error("not asked for".into()),
            }
        };
        pages.push((code, outcome));
    }
    Ok(Report {
        url: url.to_string(),
        standard,
        supported,
        pages,
    })
}

impl Report {
    /// sg_inq's standard lines, then each page as sg_vpd prints it.
    pub fn text(&self) -> String {
        let pdt = self.standard.peripheral_device_type;
        let mut out = String::new();
        render_standard(&self.standard, &mut out);
        out.push_str(&format!("\n{}:\n", heading(0x00, pdt)));
        render_supported(&self.supported, &mut out);
        for (code, outcome) in &self.pages {
            let head = heading(*code, pdt);
            match outcome {
                PageOutcome::NotListed => out.push_str(&format!(
                    "\n{head}: not listed in the supported VPD pages\n"
                )),
                PageOutcome::Error(why) => out.push_str(&format!("\n{head}: error: {why}\n")),
                PageOutcome::Decoded(v) => {
                    out.push_str(&format!("\n{head}:\n"));
                    render_vpd(v, &mut out);
                }
            }
        }
        out
    }

    /// `{"url", "standard": {…}, "vpd": {"0x00": {…}, "0x83": {"designators": […]}, …}}`;
    /// each page object carries its "name", and "error" instead of its fields when the
    /// target would not give it. Pages not listed in VPD 0x00 are absent.
    pub fn json(&self) -> Value {
        let pdt = self.standard.peripheral_device_type;
        let mut vpd = Map::new();
        let mut put = |code: u8, body: Value| {
            let mut obj = Map::new();
            obj.insert(
                "name".into(),
                names::vpd_page(code, pdt).map_or(Value::Null, |n| Value::String(n.into())),
            );
            if let Value::Object(fields) = body {
                obj.extend(fields);
            }
            vpd.insert(format!("0x{code:02x}"), Value::Object(obj));
        };
        put(0x00, to_json(&self.supported));
        for (code, outcome) in &self.pages {
            match outcome {
                PageOutcome::NotListed => {}
                PageOutcome::Error(why) => put(*code, serde_json::json!({ "error": why })),
                PageOutcome::Decoded(v) => put(*code, to_json(v.as_ref())),
            }
        }
        serde_json::json!({
            "url": self.url,
            "standard": to_json(&self.standard),
            "vpd": Value::Object(vpd),
        })
    }
}

fn to_json(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or_else(|e| Value::String(format!("cannot serialize: {e}")))
}

fn render_vpd(v: &Vpd, out: &mut String) {
    match v {
        Vpd::Supported(p) => render_supported(p, out),
        Vpd::Serial(s) => render_serial(s, out),
        Vpd::DeviceId(d) => render_device_id(d, out),
        Vpd::BlockLimits(l) => render_block_limits(l, out),
        Vpd::BlockCharacteristics(c) => render_block_characteristics(c, out),
        Vpd::Provisioning(p) => render_provisioning(p, out),
    }
}

/// The LU's peripheral device type (its standard data has at least 36 bytes).
fn device_type(lu: &Lu) -> u8 {
    lu.inquiry.first().map_or(0x1F, |b| b & 0x1F)
}

/// Requests of one VPD page before a PAGE LENGTH that keeps growing counts as malformed.
const MAX_ASKS: usize = 3;

/// Ask for VPD page `code`, again with a larger allocation length while PAGE LENGTH says
/// there is more (at most [`MAX_ASKS`] more times). A malformed answer is an error.
pub async fn fetch(ctx: &Ctx, lu: &Lu, code: u8) -> Result<Fetched> {
    let url = lu.url.to_string();
    let pdt = device_type(lu);
    let what = format!("INQUIRY for {} to {url}", page_title(code, pdt));
    let mut alloc = FIRST_ALLOC;
    let mut asked = 0;
    loop {
        asked += 1;
        let cdb = ironlun_initiator::scsi::cdb::inquiry(true, code, alloc);
        let r = ctx
            .command(&lu.session, lu.url.lun, &cdb, None, u32::from(alloc), &what)
            .await?;
        if r.status != ironlun_scsi::status::GOOD {
            return Ok(Fetched::Unavailable(format!(
                "refused: {}",
                scsi_failure(r.status, r.sense.as_ref())
            )));
        }
        match judge(&r.data_in, code, alloc) {
            Fetch::Complete(n) => return Ok(Fetched::Page(r.data_in[..n].to_vec())),
            // Asked again with the length the page gave (or the most INQUIRY allows); a
            // page that keeps growing beyond that is malformed.
            Fetch::Again(a) if asked <= MAX_ASKS => alloc = a,
            Fetch::Again(_) => {
                return Err(malformed(
                    &url,
                    code,
                    pdt,
                    &format!(
                        "PAGE LENGTH keeps growing: {asked} requests, each answered with more \
                         than its allocation length"
                    ),
                ))
            }
            Fetch::TooLong(n) => {
                return Ok(Fetched::Unavailable(format!(
                    "the page is {n} bytes, more than INQUIRY can return ({})",
                    page::MAX_ALLOC
                )))
            }
            Fetch::Malformed(m) => return Err(malformed(&url, code, pdt, &m)),
        }
    }
}

/// The Device Identification VPD page of an open LU, decoded (the one decoder of the page:
/// `inq` prints it, `rtpg` and `paths` take this path's port and group and the LU's name from
/// it); refused or malformed, it is an error.
pub async fn device_identification(ctx: &Ctx, lu: &Lu) -> Result<DeviceIdentification> {
    let pdt = device_type(lu);
    match fetch(ctx, lu, 0x83).await? {
        Fetched::Page(p) => {
            decode_device_id(&p).map_err(|e| malformed(&lu.url.to_string(), 0x83, pdt, &e))
        }
        Fetched::Unavailable(why) => Err(HostError::new(format!(
            "{} from {}: {why}",
            page_title(0x83, pdt),
            lu.url
        ))),
    }
}

/// Read everything from an open LU: VPD 0x00 (which must work), then the listed pages.
async fn inquire(ctx: &Ctx, lu: &Lu) -> Result<Report> {
    let url = lu.url.to_string();
    let pdt = device_type(lu);
    let page0 = match fetch(ctx, lu, 0x00).await? {
        Fetched::Page(p) => p,
        Fetched::Unavailable(why) => {
            return Err(HostError::new(format!(
                "{} from {url}: {why}",
                page_title(0x00, pdt)
            )))
        }
    };
    let supported = decode_supported(&page0).map_err(|e| malformed(&url, 0x00, pdt, &e))?;
    let mut fetched = Vec::new();
    for code in pages_for(pdt) {
        if supported.lists(code) {
            fetched.push((code, fetch(ctx, lu, code).await?));
        }
    }
    assemble(&url, &lu.inquiry, &page0, &fetched)
}

pub async fn run(ctx: &Ctx, a: &InqArgs) -> Result<Output> {
    let url = IscsiUrl::parse(&a.url)?;
    let lu = ctx.open(&url).await?;
    let report = inquire(ctx, &lu).await;
    ctx.logout(&lu.session).await;
    let report = report?;
    Ok(Output::new(report.text(), report.json()))
}
