//! The shell's history across runs: `$IRONLUN_HISTORY`, else `~/.ironlun_history`, mode 0600,
//! saved after every line (a shell that is killed keeps what was typed). A line that could
//! carry a CHAP secret (it names a `password` or `secret`) is never kept, not even in memory.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use rustyline::history::FileHistory;
use rustyline::Editor;

use super::complete::ShellHelper;

/// Lines kept.
pub(super) const MAX_ENTRIES: usize = 1000;

/// The history file (none: no home directory, history kept for this run only).
pub(super) struct History {
    file: Option<PathBuf>,
}

/// Whether a line may be kept: not one naming a password or secret (CHAP `password`,
/// `password_mutual`, a `secret=` parameter).
pub(super) fn keep(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    !line.trim().is_empty() && !l.contains("password") && !l.contains("secret")
}

impl History {
    pub(super) fn open() -> History {
        let file = std::env::var_os("IRONLUN_HISTORY")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".ironlun_history"))
            });
        History { file }
    }

    /// Reads the file (created 0600 when missing; a looser one is tightened).
    pub(super) fn load(&self, ed: &mut Editor<ShellHelper, FileHistory>) {
        let Some(f) = &self.file else { return };
        let created = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(f);
        if let Err(e) = created {
            eprintln!("ironlun: history {}: {e}; not kept", f.display());
            return;
        }
        let _ = std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600));
        let _ = ed.load_history(f);
    }

    /// Adds a line (unless [`keep`] refuses it) and saves the file.
    pub(super) fn add(&self, ed: &mut Editor<ShellHelper, FileHistory>, line: &str) {
        if !keep(line) {
            return;
        }
        let _ = ed.add_history_entry(line.trim_end());
        if let Some(f) = &self.file {
            if let Err(e) = ed.save_history(f) {
                eprintln!("ironlun: history {}: {e}", f.display());
            }
            let _ = std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::keep;

    #[test]
    fn secrets_are_not_kept() {
        assert!(keep("set auth/userid alice"));
        assert!(keep("ls /iscsi"));
        assert!(!keep("set auth/password s3cretsecret12"));
        assert!(!keep(
            "set /iscsi/x/tpgt_1/auth/Password_mutual abcdefabcdef"
        ));
        assert!(!keep("create acls/iqn.x secret=abc"));
        assert!(!keep("   "));
    }
}
