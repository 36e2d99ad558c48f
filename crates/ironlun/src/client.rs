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
