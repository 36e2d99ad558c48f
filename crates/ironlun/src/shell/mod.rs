//! `ironlun shell`: an interactive shell against the running daemon, for targetcli users
//! (targetcli-fb's `cd`, `ls`, `pwd`, `get`, `set`, `create`, `delete` and the prompt showing
//! the current path). Every command is the CLI's own ([`crate::Cli`], [`crate::request_of`]):
//! the shell only reads a line into words, makes its paths absolute against the current one
//! ([`tree_path`]) and sends the request over the control socket, one connection per request
//! ([`crate::progress_line::request`], which shows long work's progress on a terminal).
//! docs/cli.md, "The shell".
//!
//! On a terminal: line editing, history across runs ([`history`]) and tab completion
//! ([`complete`]). Otherwise (a script on stdin) commands are read line by line, without
//! editing or history; the exit status is the last failing command's (0 if none failed).

mod attr_form;
mod complete;
mod history;

use std::cell::RefCell;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use clap::Parser;
use ironlun_control::service::{self, Request, Response};

use crate::client::words;
use crate::{AluaCmd, Cli, Cmd, PrCmd};

/// The shell's own commands (the others are the CLI's subcommands).
const BUILTINS: &[(&str, &str)] = &[
    (
        "cd",
        "cd [PATH]: go to PATH (absolute from /, or relative; .. goes up; - goes back; no PATH: /)",
    ),
    ("pwd", "pwd: print the current path"),
    ("help", "help [COMMAND]: this list, or the usage of COMMAND"),
    (
        "history",
        "history: the lines typed so far (kept across runs; none naming a password or secret)",
    ),
    ("exit", "exit (or quit, or Ctrl-D): leave the shell"),
    ("quit", ""),
];

/// CLI subcommands that make no sense inside the shell.
const NOT_IN_SHELL: &[&str] = &["serve", "host", "shell", "completions"];

/// The daemon connection of a shell: the socket and the runtime its requests run on.
pub(crate) struct Conn {
    rt: tokio::runtime::Runtime,
    socket: PathBuf,
}

impl Conn {
    /// Err: the one line when the daemon cannot be reached.
    fn call(&self, req: &Request) -> Result<Response, String> {
        self.rt
            .block_on(crate::progress_line::request(&self.socket, req))
            .map_err(|e| crate::unreachable(&self.socket, &e))
    }

    /// For completion: [`Conn::call`] that gives up after [`COMPLETION_WAIT`] (a daemon busy
    /// with long work holds its control lock; Tab must not freeze the shell meanwhile).
    fn call_quickly(&self, req: &Request) -> Result<Response, String> {
        let call = service::request(&self.socket, req);
        match self
            .rt
            .block_on(async { tokio::time::timeout(COMPLETION_WAIT, call).await })
        {
            Ok(r) => r.map_err(|e| crate::unreachable(&self.socket, &e)),
            Err(_) => Err("the daemon is busy".to_string()),
        }
    }

    /// The entries directly below tree path `path` (empty when there is none or on any
    /// error: completion stays quiet).
    fn children(&self, path: &str) -> Vec<Entry> {
        match self.call_quickly(&Request::Ls { path: path.into() }) {
            Ok(r) if r.ok => children_of(&r.output, path.is_empty()),
            _ => Vec::new(),
        }
    }
}

/// What a tree line names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    Link,
    Leaf,
}

/// One entry of an `ls` listing.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    name: String,
    kind: Kind,
    /// A leaf's value (as listed: secrets masked).
    value: String,
}

/// Reads one line of `ls` output (without its indentation).
fn entry_of(line: &str) -> Entry {
    if let Some(name) = line.strip_suffix('/') {
        return Entry {
            name: name.into(),
            kind: Kind::Dir,
            value: String::new(),
        };
    }
    if let Some((name, target)) = line.split_once(" -> ") {
        return Entry {
            name: name.into(),
            kind: Kind::Link,
            value: target.into(),
        };
    }
    let (name, value) = line.split_once(" =").unwrap_or((line, ""));
    Entry {
        name: name.into(),
        kind: Kind::Leaf,
        value: value.trim_start().into(),
    }
}

/// The entries directly below the listed node: `ls` of the root lists its children at depth
/// 0, `ls` of any other node lists the node itself first and its children two spaces in
/// (continuation lines of multi-line values are deeper).
fn children_of(listing: &str, root: bool) -> Vec<Entry> {
    let pad = if root { "" } else { "  " };
    listing
        .lines()
        .filter_map(|l| l.strip_prefix(pad))
        .filter(|l| !l.is_empty() && !l.starts_with(' '))
        .map(entry_of)
        .collect()
}

/// How long completion waits for the daemon.
const COMPLETION_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// The kind of the node at tree path `path` (`None`: no such object / daemon unreachable);
/// `quick`: for completion ([`Conn::call_quickly`]).
fn kind_at(conn: &Conn, path: &str, quick: bool) -> Result<Kind, String> {
    if path.is_empty() {
        return Ok(Kind::Dir);
    }
    let req = Request::Ls { path: path.into() };
    let r = if quick {
        conn.call_quickly(&req)
    } else {
        conn.call(&req)
    }?;
    if !r.ok {
        return Err(r.error);
    }
    Ok(entry_of(r.output.lines().next().unwrap_or_default()).kind)
}

/// The tree path (no leading `/`, as the daemon reads it) of `arg` typed in `cwd`: a leading
/// `/` starts from the root, `.` stays, `..` goes up (not above the root).
pub(crate) fn tree_path(cwd: &str, arg: &str) -> String {
    let mut parts: Vec<&str> = if arg.starts_with('/') {
        Vec::new()
    } else {
        cwd.split('/').filter(|s| !s.is_empty()).collect()
    };
    for seg in arg.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// Makes the object paths of a CLI command absolute against `cwd` (file paths stay the
/// CLI's: relative to the shell's working directory).
fn resolve(cmd: Cmd, cwd: &str) -> Cmd {
    let r = |p: String| tree_path(cwd, &p);
    match cmd {
        Cmd::Ls { path } => Cmd::Ls {
            path: Some(r(path.unwrap_or_default())),
        },
        Cmd::Get { path } => Cmd::Get { path: r(path) },
        Cmd::Set { path, value } => Cmd::Set {
            path: r(path),
            value,
        },
        Cmd::Create { path, args } => Cmd::Create {
            path: r(path),
            args,
        },
        Cmd::Delete { path } => Cmd::Delete { path: r(path) },
        Cmd::Link { src, dst } => Cmd::Link {
            src: r(src),
            dst: r(dst),
        },
        Cmd::Pr { cmd } => Cmd::Pr {
            cmd: match cmd {
                PrCmd::Show { dev } => PrCmd::Show { dev: r(dev) },
                PrCmd::Clear { dev, force } => PrCmd::Clear { dev: r(dev), force },
            },
        },
        Cmd::Alua { cmd } => Cmd::Alua {
            cmd: match cmd {
                AluaCmd::Show { dev } => AluaCmd::Show { dev: r(dev) },
                AluaCmd::SetState { dev, group, state } => AluaCmd::SetState {
                    dev: r(dev),
                    group,
                    state,
                },
                AluaCmd::SetPref { dev, group, value } => AluaCmd::SetPref {
                    dev: r(dev),
                    group,
                    value,
                },
            },
        },
        other => other,
    }
}

/// What the loop does after a line.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Go on; `Some(code)`: the line failed with that exit status.
    Go(Option<u8>),
    Exit,
}

/// The shell's state: the connection and the current tree path (shared with the completer).
struct Shell {
    conn: Rc<Conn>,
    cwd: Rc<RefCell<String>>,
    /// Where the last `cd` came from (`cd -` goes back there).
    prev: RefCell<String>,
}

impl Shell {
    fn prompt(&self) -> String {
        format!("/{}> ", self.cwd.borrow())
    }

    /// Runs one line; errors are printed as one line on stderr.
    fn line(&self, line: &str) -> Next {
        match self.exec(line) {
            Ok(next) => next,
            Err((msg, code)) => {
                eprintln!("ironlun: {}", msg.strip_prefix("error: ").unwrap_or(&msg));
                Next::Go(Some(code))
            }
        }
    }

    fn exec(&self, line: &str) -> Result<Next, (String, u8)> {
        let bad = |m: String| (m, 2u8);
        let w = words(line).map_err(bad)?;
        let Some(first) = w.first() else {
            return Ok(Next::Go(None));
        };
        if first.starts_with('#') {
            return Ok(Next::Go(None));
        }
        let cwd = self.cwd.borrow().clone();
        match first.as_str() {
            "exit" | "quit" => return Ok(Next::Exit),
            "pwd" => {
                println!("/{cwd}");
                return Ok(Next::Go(None));
            }
            "cd" => {
                if w.len() > 2 {
                    return Err(bad("cd: one PATH at most".into()));
                }
                let back = w.get(1).is_some_and(|a| a == "-");
                let to = if back {
                    self.prev.borrow().clone()
                } else {
                    tree_path(&cwd, w.get(1).map_or("/", String::as_str))
                };
                match kind_at(&self.conn, &to, false).map_err(|e| (e, 2))? {
                    Kind::Leaf => return Err(bad(format!("cd: /{to}: not a directory"))),
                    Kind::Dir | Kind::Link => *self.cwd.borrow_mut() = to.clone(),
                }
                *self.prev.borrow_mut() = cwd;
                if back {
                    // As a POSIX shell's `cd -`: where it went.
                    println!("/{to}");
                }
                return Ok(Next::Go(None));
            }
            "help" => {
                help(w.get(1).map(String::as_str)).map_err(bad)?;
                return Ok(Next::Go(None));
            }
            // On a terminal `interactive` answers it; a script has no history.
            "history" => return Ok(Next::Go(None)),
            c if NOT_IN_SHELL.contains(&c) => {
                return Err(bad(format!("{c}: not available in the shell")));
            }
            "get" | "set" => {
                let is_attr = |p: &str| matches!(kind_at(&self.conn, p, false), Ok(Kind::Leaf));
                match attr_form::form(&cwd, &w, is_attr).map_err(bad)? {
                    attr_form::Form::Cli => {}
                    attr_form::Form::Gets(list) => return self.gets(&list),
                    attr_form::Form::Sets(list) => return self.sets(list),
                }
            }
            _ => {}
        }
        let argv = std::iter::once("ironlun".to_string()).chain(w.iter().cloned());
        let cmd = match Cli::try_parse_from(argv) {
            Ok(cli) => cli.cmd,
            Err(e) if !e.use_stderr() => {
                // --help inside a line: the usage, as the CLI prints it.
                let _ = e.print();
                return Ok(Next::Go(None));
            }
            Err(e) => return Err(bad(first_line(&e.to_string()))),
        };
        let req = match crate::request_of(resolve(cmd, &cwd)).map_err(bad)? {
            Some(req) => req,
            None => return Err(bad(format!("{first}: not available in the shell"))),
        };
        let resp = self.conn.call(&req).map_err(|e| (e, 1))?;
        let _ = crate::show(&resp);
        Ok(Next::Go((!resp.ok).then(|| crate::exit_code(&resp))))
    }
}

impl Shell {
    /// `get PATH ATTR…`: one attribute prints its value (as `get PATH/ATTR`), several print
    /// `ATTR = VALUE` lines; the first error ends the line.
    fn gets(&self, list: &[(String, String)]) -> Result<Next, (String, u8)> {
        for (path, name) in list {
            let resp = self
                .conn
                .call(&Request::Get { path: path.clone() })
                .map_err(|e| (e, 1))?;
            if !resp.ok {
                return Err((resp.error.clone(), crate::exit_code(&resp)));
            }
            if list.len() == 1 {
                let _ = crate::show(&resp);
            } else {
                println!("{name} = {}", resp.output.trim_end_matches('\n'));
            }
        }
        Ok(Next::Go(None))
    }

    /// `set [PATH] ATTR=VALUE…`: one change per attribute, in order, each as `set PATH/ATTR
    /// VALUE`; the first refused ends the line (those before it stay made).
    fn sets(&self, list: Vec<(String, String)>) -> Result<Next, (String, u8)> {
        for (path, value) in list {
            let resp = self
                .conn
                .call(&Request::Set { path, value })
                .map_err(|e| (e, 1))?;
            if !resp.ok {
                return Err((resp.error.clone(), crate::exit_code(&resp)));
            }
            let _ = crate::show(&resp);
        }
        Ok(Next::Go(None))
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string()
}

/// The commands of the shell: its own and the CLI's.
pub(crate) fn command_names() -> Vec<String> {
    use clap::CommandFactory;
    let mut names: Vec<String> = BUILTINS.iter().map(|(n, _)| n.to_string()).collect();
    names.extend(
        Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .filter(|n| !NOT_IN_SHELL.contains(&n.as_str())),
    );
    names.sort();
    names
}

/// `help [COMMAND]`.
fn help(topic: Option<&str>) -> Result<(), String> {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    match topic {
        None => {
            println!("Commands (paths are absolute from / or relative to the current one):");
            for (_, text) in BUILTINS.iter().filter(|(_, t)| !t.is_empty()) {
                println!("  {text}");
            }
            for c in cli
                .get_subcommands()
                .filter(|c| !NOT_IN_SHELL.contains(&c.get_name()))
            {
                let about = c.get_about().map(|a| a.to_string()).unwrap_or_default();
                println!("  {:<10} {}", c.get_name(), first_line(&about));
            }
            println!("  {}", attr_form::USAGE);
            println!("`help COMMAND` or `COMMAND --help` for its usage; Tab completes.");
            Ok(())
        }
        Some(t) if BUILTINS.iter().any(|(n, _)| *n == t) => {
            let text = BUILTINS
                .iter()
                .find(|(n, h)| *n == t && !h.is_empty())
                .map_or("exit (or quit, or Ctrl-D): leave the shell", |(_, h)| h);
            println!("{text}");
            Ok(())
        }
        Some(t) if !NOT_IN_SHELL.contains(&t) => match cli.find_subcommand_mut(t) {
            Some(sub) => {
                let mut sub = sub.clone().bin_name(t);
                let _ = sub.print_long_help();
                if t == "get" || t == "set" {
                    println!("In the shell also: {}", attr_form::USAGE);
                }
                Ok(())
            }
            None => Err(format!("help: no command {t:?}; `help` lists them")),
        },
        Some(t) => Err(format!("help: no command {t:?}; `help` lists them")),
    }
}

/// `ironlun shell` against the daemon at `socket`.
pub fn run(socket: &Path) -> ExitCode {
    let rt = match crate::client_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let shell = Shell {
        conn: Rc::new(Conn {
            rt,
            socket: socket.to_path_buf(),
        }),
        cwd: Rc::new(RefCell::new(String::new())),
        prev: RefCell::new(String::new()),
    };
    if std::io::stdin().is_terminal() {
        interactive(&shell)
    } else {
        script(&shell)
    }
}

/// Commands from a pipe or file, one per line.
fn script(shell: &Shell) -> ExitCode {
    let mut last_failure = None;
    for line in std::io::stdin().lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ironlun: reading stdin: {e}");
                return ExitCode::from(1);
            }
        };
        match shell.line(&line) {
            Next::Go(Some(code)) => last_failure = Some(code),
            Next::Go(None) => {}
            Next::Exit => break,
        }
        let _ = std::io::stdout().flush();
    }
    last_failure.map_or(ExitCode::SUCCESS, ExitCode::from)
}

/// The terminal loop: rustyline with completion and history.
fn interactive(shell: &Shell) -> ExitCode {
    use rustyline::error::ReadlineError;
    let config = rustyline::Config::builder()
        .max_history_size(history::MAX_ENTRIES)
        .map(|b| {
            b.completion_type(rustyline::CompletionType::List)
                .auto_add_history(false)
                .build()
        });
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ironlun: shell: {e}");
            return ExitCode::from(1);
        }
    };
    let helper = complete::ShellHelper::new(shell.conn.clone(), shell.cwd.clone());
    let mut ed = match rustyline::Editor::with_config(config) {
        Ok(ed) => ed,
        Err(e) => {
            eprintln!("ironlun: shell: cannot use the terminal: {e}");
            return ExitCode::from(1);
        }
    };
    ed.set_helper(Some(helper));
    let hist = history::History::open();
    hist.load(&mut ed);
    loop {
        match ed.readline(&shell.prompt()) {
            Ok(line) => {
                hist.add(&mut ed, &line);
                if line.split_whitespace().eq(["history"]) {
                    for (i, l) in ed.history().iter().enumerate() {
                        println!("{:>5}  {l}", i + 1);
                    }
                    continue;
                }
                if shell.line(&line) == Next::Exit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("ironlun: shell: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_like_targetcli() {
        let cwd = "iscsi/iqn.x:t/tpgt_1";
        assert_eq!(tree_path(cwd, ""), cwd);
        assert_eq!(tree_path(cwd, "."), cwd);
        assert_eq!(tree_path(cwd, ".."), "iscsi/iqn.x:t");
        assert_eq!(tree_path(cwd, "../../.."), "");
        assert_eq!(tree_path(cwd, "../../../.."), "");
        assert_eq!(tree_path(cwd, "/"), "");
        assert_eq!(tree_path(cwd, "/core/rd_mcp_0/"), "core/rd_mcp_0");
        assert_eq!(
            tree_path(cwd, "attrib/authentication"),
            format!("{cwd}/attrib/authentication")
        );
        assert_eq!(tree_path("", "iscsi//x/./y"), "iscsi/x/y");
    }

    #[test]
    fn words_split_and_quote() {
        assert_eq!(
            words("  set a  'b c'\t\"d\\\"e\" f\\ g").ok(),
            Some(vec![
                "set".to_string(),
                "a".into(),
                "b c".into(),
                "d\"e".into(),
                "f g".into()
            ])
        );
        assert_eq!(
            words("set ''").ok(),
            Some(vec!["set".to_string(), String::new()])
        );
        assert!(words("set 'x").is_err());
        assert_eq!(words("   ").ok(), Some(vec![]));
    }

    #[test]
    fn listings_give_the_children() {
        let ls = "tpgt_1/\n  enable = 1\n  attrib/\n    authentication = 0\n  lun_0 -> core/a/b\n    x = 1\n  pr = a\n      more\n  empty = \n";
        let c = children_of(ls, false);
        let names: Vec<_> = c.iter().map(|e| (e.name.as_str(), e.kind)).collect();
        assert_eq!(
            names,
            [
                ("enable", Kind::Leaf),
                ("attrib", Kind::Dir),
                ("lun_0", Kind::Link),
                ("pr", Kind::Leaf),
                ("empty", Kind::Leaf)
            ]
        );
        assert_eq!(c[0].value, "1");
        assert_eq!(c[4].value, "");
        let root = children_of("core/\n  x/\niscsi/\n  y = 1\n", true);
        assert_eq!(root.len(), 2);
        assert_eq!(root[1].name, "iscsi");
    }

    #[test]
    fn shell_only_commands_are_listed_and_daemon_ones_refused() {
        let names = command_names();
        for n in [
            "cd", "ls", "pwd", "get", "set", "alua", "pr", "apply", "sessions", "quit",
        ] {
            assert!(names.iter().any(|x| x == n), "{n}");
        }
        for n in NOT_IN_SHELL {
            assert!(!names.iter().any(|x| x == n), "{n}");
        }
    }
}
