//! `ironlun config import-lio` and `config export-lio` (docs/cli.md "Moving from LIO"): the
//! conversion runs here, on the client side (ironlun_control::lio); the daemon gets the
//! converted config inline and applies it with the fewest changes, as `ironlun apply` does.

use std::path::Path;
use std::process::ExitCode;

use ironlun_control::lio::aptpl::{self, AptplImport};
use ironlun_control::lio::{export, import};
use ironlun_control::model::Config;
use ironlun_control::service::{Request, Response};

/// Largest saveconfig.json or APTPL file read.
const MAX_FILE: u64 = 64 << 20;

fn read_text(path: &Path) -> Result<String, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_FILE {
        return Err(format!(
            "{}: {} bytes is too large (at most {MAX_FILE})",
            path.display(),
            meta.len()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// `config import-lio`: convert, print the report, send, print the plan. Bad input: one
/// line, exit status 2, nothing sent.
pub fn import_cmd(socket: &Path, file: &Path, pr_dir: Option<&Path>, dry_run: bool) -> ExitCode {
    let req = match import_request(file, pr_dir, dry_run) {
        Ok(req) => req,
        Err(e) => {
            eprintln!("ironlun: config import-lio: {e}");
            return ExitCode::from(2);
        }
    };
    match request(socket, &req) {
        Ok(resp) => {
            println!("{}", resp.output.trim_end());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Convert FILE (and the APTPL files under `pr_dir`) into an apply request, printing the
/// report of what is not carried over. Err: one line; nothing is sent.
pub fn import_request(
    file: &Path,
    pr_dir: Option<&Path>,
    dry_run: bool,
) -> Result<Request, String> {
    let text = read_text(file)?;
    let imported = import::import(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut report = imported.report;
    let mut states = Vec::new();
    if let Some(dir) = pr_dir {
        let mut used = std::collections::BTreeSet::new();
        for so in &imported.config.storage_objects {
            let name = format!("aptpl_{}", so.wwn);
            let path = dir.join(&name);
            if !path.exists() {
                continue;
            }
            used.insert(name);
            let text = read_text(&path)?;
            let at = path.display().to_string();
            if let Some(state) = aptpl::parse(&at, &text, &imported.config, &mut report)? {
                states.push(AptplImport {
                    serial: so.wwn.clone(),
                    state,
                });
            }
        }
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("--pr-dir {}: {e}", dir.display()))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("aptpl_") && !used.contains(&name) {
                report.push(
                    e.path().display().to_string(),
                    "no imported storage object has this unit serial; not carried",
                );
            }
        }
    }
    print!("{}", report.render());
    Ok(Request::ApplyConfig {
        config: Box::new(imported.config),
        aptpl: states,
        dry_run,
    })
}

/// `config export-lio [FILE]`: the running config in rtslib's format, to FILE (mode 0600: it
/// holds CHAP secrets) or stdout; what LIO cannot hold goes to stderr.
pub fn export_cmd(socket: &Path, file: Option<&Path>) -> ExitCode {
    let resp = match request(socket, &Request::ShowConfig) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let cfg: Config = match serde_json::from_str(&resp.output) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ironlun: the daemon's config could not be read: {e}");
            return ExitCode::from(1);
        }
    };
    let (text, report) = export::export(&cfg);
    if !report.lines.is_empty() {
        eprint!("{}", report.render());
    }
    match file {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(f) => match write_private(f, &text) {
            Ok(()) => {
                eprintln!("wrote {}", f.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ironlun: cannot write {}: {e}", f.display());
                ExitCode::from(1)
            }
        },
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open: narrow it before the secrets go in.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// One request; Err: the exit status after the error was printed.
fn request(socket: &Path, req: &Request) -> Result<Response, ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("ironlun: cannot start: {e}");
            ExitCode::from(1)
        })?;
    match rt.block_on(crate::progress_line::request(socket, req)) {
        Err(e) => {
            eprintln!(
                "ironlun: cannot reach the daemon at {}: {e} (is `ironlun serve` running?)",
                socket.display()
            );
            Err(ExitCode::from(1))
        }
        Ok(resp) if resp.ok => Ok(resp),
        Ok(resp) => {
            eprintln!("ironlun: {}", resp.error);
            Err(ExitCode::from(
                u8::try_from(resp.code)
                    .ok()
                    .filter(|c| *c != 0)
                    .unwrap_or(1),
            ))
        }
    }
}
