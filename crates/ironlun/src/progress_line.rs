//! The CLI's side of progress ([`ironlun_control::progress`]): requests sent with progress
//! asked for when stderr is a terminal, each report drawn over the last on one stderr line,
//! the line cleared before the answer is printed. Piped or redirected, nothing is asked for
//! and nothing is drawn.

use std::io::{IsTerminal, Write};
use std::path::Path;

use ironlun_control::progress::{ProgressMsg, Unit};
use ironlun_control::service::{self, Request, Response};
use ironlun_control::status::human;

/// Send `req` to the daemon at `socket`, showing its progress on a terminal.
pub(crate) async fn request(socket: &Path, req: &Request) -> std::io::Result<Response> {
    let stderr = std::io::stderr();
    if !stderr.is_terminal() {
        return service::request(socket, req).await;
    }
    let mut drawn = false;
    let resp = service::request_with_progress(socket, req, &mut |m| {
        let mut e = stderr.lock();
        let _ = write!(e, "\r\x1b[K{}", render(m));
        let _ = e.flush();
        drawn = true;
    })
    .await;
    if drawn {
        let mut e = stderr.lock();
        let _ = write!(e, "\r\x1b[K");
        let _ = e.flush();
    }
    resp
}

/// One report as a line: `preallocating /srv/d.img: 40% (4.0 GiB of 10.0 GiB)`,
/// `applying: 120 of 400 objects (30%)`.
pub(crate) fn render(m: &ProgressMsg) -> String {
    let pct = (m.done.min(m.total) * 100)
        .checked_div(m.total)
        .unwrap_or(100);
    match m.unit {
        Unit::Bytes => format!(
            "{}: {pct}% ({} of {})",
            m.task,
            human(m.done),
            human(m.total)
        ),
        Unit::Objects => format!("{}: {} of {} objects ({pct}%)", m.task, m.done, m.total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(done: u64, total: u64, unit: Unit) -> ProgressMsg {
        ProgressMsg {
            task: "t".into(),
            done,
            total,
            unit,
        }
    }

    #[test]
    fn lines_show_percent_and_amounts() {
        assert_eq!(
            render(&msg(4 << 30, 10 << 30, Unit::Bytes)),
            "t: 40% (4.0 GiB of 10.0 GiB)"
        );
        assert_eq!(render(&msg(0, 1536, Unit::Bytes)), "t: 0% (0 B of 1.5 KiB)");
        assert_eq!(
            render(&msg(120, 400, Unit::Objects)),
            "t: 120 of 400 objects (30%)"
        );
        assert_eq!(
            render(&msg(0, 0, Unit::Objects)),
            "t: 0 of 0 objects (100%)"
        );
        assert_eq!(
            render(&msg(9, 3, Unit::Objects)),
            "t: 9 of 3 objects (100%)"
        );
        assert_eq!(human(u64::MAX), "16384.0 PiB");
    }
}
