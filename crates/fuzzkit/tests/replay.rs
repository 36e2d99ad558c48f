//! Replays every checked-in corpus file of every fuzz target (`fuzz/corpus/<target>/`) and every
//! seed through the same harness function libFuzzer calls: none may panic.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use ironlun_fuzzkit::{seeds, TARGETS};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn every_corpus_file_replays_without_panic() {
    for (name, harness) in TARGETS {
        let dir = corpus(name);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| harness(&data));
            assert!(r.is_ok(), "{name}: {} panics", path.display());
            n += 1;
        }
        assert!(n > 0, "{name}: empty corpus {}", dir.display());
    }
}

#[test]
fn every_seed_runs_without_panic() {
    for (name, harness) in TARGETS {
        let s = seeds::seeds(name);
        assert!(!s.is_empty(), "{name} has seeds");
        for data in s {
            harness(&data);
        }
    }
}

/// Writes the seeds into the corpus folders (`cargo test -p ironlun-fuzzkit -- --ignored`).
#[test]
#[ignore]
fn write_seeds() {
    for (name, _) in TARGETS {
        let dir = corpus(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, data) in seeds::seeds(name).into_iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), data).unwrap();
        }
    }
}
