//! The CLI's client side: a parsed command becomes a control request ([`request_of`]), goes
//! over the control socket ([`client`]) and its answer becomes output and an exit status
//! (0 ok, 2 refused, 1 failure). The shell (`shell/`) shares all of it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ironlun_control::model::DevKey;
use ironlun_control::service::{self, Request};

use crate::{AluaCmd, Cmd, ConfigCmd, PrCmd};

/// The tree path of a device's group attribute; Err: one line naming the bad argument.
pub(crate) fn group_attr(dev: &str, group: &str, attr: &str) -> Result<String, String> {
    let key = DevKey::parse(dev).map_err(|e| format!("alua: device: {e}"))?;
    if group.is_empty() || group.contains('/') {
        return Err(format!(
            "alua: group '{group}' is not valid; give a group name as listed by `ironlun alua show {key}`"
        ));
    }
    Ok(format!("{key}/alua/{group}/{attr}"))
}

/// `batch FILE`: each line a CLI command that sets, creates, deletes or links; Err names the
/// file and line.
fn batch_request(file: &Path) -> Result<Request, String> {
    let name = file.display();
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("batch: stdin: {e}"))?
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("batch: cannot read {name}: {e}"))?
    };
    let mut ops = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = || format!("batch: {name} line {}", i + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut argv = vec!["ironlun".to_string()];
        argv.extend(words(line).map_err(|e| format!("{}: {e}", at()))?);
        let cli = <crate::Cli as clap::Parser>::try_parse_from(&argv).map_err(|e| {
            let first = e.to_string();
            let first = first
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string();
            format!("{}: {first}", at())
        })?;
        match request_of(cli.cmd)? {
            Some(r @ (Request::Set { .. } | Request::Create { .. } | Request::Delete { .. } | Request::Link { .. })) => ops.push(r),
            _ => return Err(format!("{}: only set, create, delete and link commands (and the alua set-… ones) go in a batch", at())),
        }
    }
    Ok(Request::Batch { ops })
}

/// The control request of a client command (`Ok(None)` for `serve`); Err: a bad argument
/// (one line), nothing is sent.
pub(crate) fn request_of(cmd: Cmd) -> Result<Option<Request>, String> {
    Ok(Some(match cmd {
        Cmd::Serve { .. }
        | Cmd::Host(_)
        | Cmd::Cluster(_)
        | Cmd::Shell
        | Cmd::Completions { .. }
        | Cmd::Config {
            cmd: ConfigCmd::ImportLio { .. } | ConfigCmd::ExportLio { .. },
        } => return Ok(None),
        Cmd::Ls { path } => Request::Ls {
            path: path.unwrap_or_default(),
        },
        Cmd::Get { path } => Request::Get { path },
        Cmd::Set { path, value } => Request::Set { path, value },
        Cmd::Create { path, args } => Request::Create {
            path,
            args: args.into_iter().map(absolute_path_arg).collect(),
        },
        Cmd::Delete { path } => Request::Delete { path },
        Cmd::Link { src, dst } => Request::Link { src, dst },
        Cmd::Batch { file } => batch_request(&file)?,
        Cmd::Config {
            cmd: ConfigCmd::Save { file },
        } => Request::Save {
            file: file.map(|f| absolute(&f).to_string_lossy().into_owned()),
        },
        Cmd::Config {
            cmd: ConfigCmd::Restore { file },
        } => Request::Restore {
            file: absolute(&file).to_string_lossy().into_owned(),
        },
        Cmd::Sessions { detail } => Request::Sessions { detail },
        Cmd::Status => Request::Status,
        Cmd::Apply { file, dry_run } => Request::Apply {
            file: absolute(&file).to_string_lossy().into_owned(),
            dry_run,
        },
        Cmd::Pr {
            cmd: PrCmd::Show { dev },
        } => Request::PrShow { path: dev },
        Cmd::Pr {
            cmd: PrCmd::Clear { dev, force },
        } => Request::PrClear { path: dev, force },
        Cmd::Alua {
            cmd: AluaCmd::Show { dev },
        } => Request::AluaShow { path: dev },
        Cmd::Alua {
            cmd: AluaCmd::SetState { dev, group, state },
        } => Request::Set {
            path: group_attr(&dev, &group, "alua_access_state")?,
            value: state,
        },
        Cmd::Alua {
            cmd: AluaCmd::SetPref { dev, group, value },
        } => {
            let v = match value.as_str() {
                "on" | "1" => "1",
                "off" | "0" => "0",
                _ => {
                    return Err(format!(
                        "alua set-pref: preferred '{value}' is not valid; expected on or off"
                    ))
                }
            };
            Request::Set {
                path: group_attr(&dev, &group, "preferred")?,
                value: v.to_string(),
            }
        }
    }))
}

/// The daemon resolves paths itself, and its working directory is not ours.
pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

pub(crate) fn absolute_path_arg(arg: String) -> String {
    match arg.strip_prefix("path=") {
        Some(p) if !p.is_empty() && !p.starts_with('/') => {
            format!("path={}", absolute(Path::new(p)).display())
        }
        _ => arg,
    }
}

/// The runtime client requests run on; Err: the error printed, exit status 1.
pub(crate) fn client_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("ironlun: cannot start: {e}");
            ExitCode::from(1)
        })
}

pub(crate) fn client(socket: &Path, req: &Request) -> ExitCode {
    let rt = match client_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(crate::progress_line::request(socket, req)) {
        Err(e) => {
            eprintln!("ironlun: {}", unreachable(socket, &e));
            ExitCode::from(1)
        }
        Ok(resp) => show(&resp),
    }
}

/// The one line when the daemon cannot be reached.
pub(crate) fn unreachable(socket: &Path, e: &std::io::Error) -> String {
    format!(
        "cannot reach the daemon at {}: {e} (is `ironlun serve` running?)",
        socket.display()
    )
}

/// Prints a response (output on stdout, the error line on stderr); its exit status.
pub(crate) fn show(resp: &service::Response) -> ExitCode {
    if resp.ok {
        print!("{}", resp.output);
        if !resp.output.is_empty() && !resp.output.ends_with('\n') {
            println!();
        }
        ExitCode::SUCCESS
    } else {
        eprintln!("ironlun: {}", resp.error);
        ExitCode::from(exit_code(resp))
    }
}

/// The exit status of a failed response (1 or 2).
pub(crate) fn exit_code(resp: &service::Response) -> u8 {
    u8::try_from(resp.code)
        .ok()
        .filter(|c| *c != 0)
        .unwrap_or(1)
}

/// Splits a line into words: blanks separate, `'…'` and `"…"` quote, `\` escapes the next
/// character. Err: an unclosed quote.
pub(crate) fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unclosed quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}
