//! CHAP credentials an initiator logs in with (RFC 7143 §12.1.3): its own name and secret,
//! the algorithms it offers, and for mutual CHAP what the target must prove. `Debug` shows
//! names, never a secret.

use ironlun_iscsi::chap::ChapAlgorithm;

/// The target's side of mutual CHAP: what we expect it to prove.
#[derive(Clone)]
pub struct MutualChap {
    /// The CHAP_N we expect from the target (not checked when `None`).
    pub username: Option<String>,
    pub secret: Vec<u8>,
}

/// CHAP credentials (§12.1.3). `Debug` shows the names and never a secret.
#[derive(Clone)]
pub struct ChapConfig {
    pub username: String,
    pub secret: Vec<u8>,
    /// CHAP_A offer, in order of preference.
    pub algorithms: Vec<ChapAlgorithm>,
    /// Mutual CHAP: we also challenge the target.
    pub mutual: Option<MutualChap>,
}

/// What `Debug` prints in place of a secret.
const SECRET_MASK: &str = "********";

impl std::fmt::Debug for MutualChap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutualChap")
            .field("username", &self.username)
            .field("secret", &format_args!("{SECRET_MASK}"))
            .finish()
    }
}

impl std::fmt::Debug for ChapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChapConfig")
            .field("username", &self.username)
            .field("secret", &format_args!("{SECRET_MASK}"))
            .field("algorithms", &self.algorithms)
            .field("mutual", &self.mutual)
            .finish()
    }
}

impl ChapConfig {
    /// One-way CHAP offering SHA-256 then MD5.
    pub fn new(username: impl Into<String>, secret: impl Into<Vec<u8>>) -> ChapConfig {
        ChapConfig {
            username: username.into(),
            secret: secret.into(),
            algorithms: vec![ChapAlgorithm::Sha256, ChapAlgorithm::Md5],
            mutual: None,
        }
    }
    pub fn algorithms(mut self, algs: &[ChapAlgorithm]) -> ChapConfig {
        self.algorithms = algs.to_vec();
        self
    }
    pub fn mutual(mut self, username: Option<&str>, secret: impl Into<Vec<u8>>) -> ChapConfig {
        self.mutual = Some(MutualChap {
            username: username.map(str::to_owned),
            secret: secret.into(),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_chap_credentials_shows_no_secret() {
        let c = ChapConfig::new("alice", b"initiator-secret-1".to_vec())
            .mutual(Some("target"), b"target-secret-22".to_vec());
        let shown = format!("{c:?}");
        assert!(
            shown.contains("alice") && shown.contains("target"),
            "{shown}"
        );
        assert!(!shown.contains("initiator-secret-1"), "{shown}");
        assert!(!shown.contains("target-secret-22"), "{shown}");
        assert!(shown.contains(SECRET_MASK), "{shown}");
    }
}
