//! The fabric's limits as `ironlun serve` flags (docs/cli.md "Daemon"), turned into the
//! fabric's [`FabricOptions`]; their defaults are the fabric's.

use std::time::Duration;

use ironlun_fabric::FabricOptions;

/// The fabric's limits (docs/cli.md "Daemon"): daemon-wide, fixed for the daemon's life.
#[derive(clap::Args)]
pub(crate) struct Limits {
    /// Connections past login, all sessions together; more get Login status 0x0302
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Sessions of one initiator name (every target, discovery included); more get 0x0302
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    max_sessions_per_initiator: u32,
    /// Connections accepted and still in login; more are closed at once
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_pending_logins: u32,
    /// Write data one connection may hold while it waits for Data-Out (K/M/G); a command past it gets TASK SET FULL
    #[arg(long, value_name = "BYTES", default_value = "512M", value_parser = positive_size)]
    max_buffered_write: u64,
    /// Failed authentications of one initiator name or source address, within the window, that stop its logins for the window (0 = never)
    #[arg(long, value_name = "N", default_value_t = 5)]
    auth_fail_limit: u32,
    /// The window of --auth-fail-limit, in seconds (fractions allowed)
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = positive_secs)]
    auth_fail_window: Duration,
}

impl Limits {
    pub(crate) fn options(&self) -> FabricOptions {
        FabricOptions {
            max_connections: self.max_connections as usize,
            max_sessions_per_initiator: self.max_sessions_per_initiator as usize,
            max_pending_logins: self.max_pending_logins as usize,
            max_buffered_write_bytes: self.max_buffered_write,
            auth_fail_limit: self.auth_fail_limit,
            auth_fail_window: self.auth_fail_window,
            ..FabricOptions::default()
        }
    }
}

fn positive_size(s: &str) -> Result<u64, String> {
    match ironlun_backstore::parse_size(s)? {
        0 => Err("must be more than 0".into()),
        n => Ok(n),
    }
}

fn positive_secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| *v > 0.0)
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("'{s}' is not a number of seconds above 0"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        limits: Limits,
    }

    #[test]
    fn serve_limits_parse_into_the_fabric_options() {
        let limits = |args: &[&str]| {
            let mut all = vec!["serve"];
            all.extend_from_slice(args);
            Serve::try_parse_from(all)
                .map(|s| s.limits.options())
                .map_err(|e| e.to_string())
        };
        let d = FabricOptions::default();
        let o = limits(&[]).expect("defaults");
        assert_eq!(
            (
                o.max_connections,
                o.max_sessions_per_initiator,
                o.max_pending_logins,
                o.max_buffered_write_bytes,
                o.auth_fail_limit,
                o.auth_fail_window
            ),
            (
                d.max_connections,
                d.max_sessions_per_initiator,
                d.max_pending_logins,
                d.max_buffered_write_bytes,
                d.auth_fail_limit,
                d.auth_fail_window
            ),
            "the flags' defaults are the fabric's"
        );
        let o = limits(&[
            "--max-connections",
            "3",
            "--max-sessions-per-initiator",
            "2",
            "--max-pending-logins",
            "1",
            "--max-buffered-write",
            "64K",
            "--auth-fail-limit",
            "0",
            "--auth-fail-window",
            "0.5",
        ])
        .expect("limits");
        assert_eq!(o.max_connections, 3);
        assert_eq!(o.max_sessions_per_initiator, 2);
        assert_eq!(o.max_pending_logins, 1);
        assert_eq!(o.max_buffered_write_bytes, 65536);
        assert_eq!(o.auth_fail_limit, 0);
        assert_eq!(o.auth_fail_window, Duration::from_millis(500));
        for bad in [
            &["--max-connections", "0"][..],
            &["--max-sessions-per-initiator", "0"],
            &["--max-pending-logins", "0"],
            &["--max-buffered-write", "0"],
            &["--max-buffered-write", "12Q"],
            &["--auth-fail-window", "0"],
            &["--auth-fail-window", "soon"],
        ] {
            let e = limits(bad).expect_err("refused");
            assert!(e.contains(bad[0]), "{bad:?}: {e}");
        }
    }
}
