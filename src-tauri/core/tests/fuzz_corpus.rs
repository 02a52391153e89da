//! Replays every input of the cargo-fuzz corpora (`fuzz/corpus/<target>/` at the repository
//! root: seeds and every crash found, kept as regression inputs) through the same functions
//! the fuzz targets call, on stable Rust, so `make test` proves none of them panics.

mod harness {
    include!("../../../fuzz/harness.rs");
}

use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn every_fuzz_corpus_input_is_handled_without_a_panic() {
    for (target, function) in harness::TARGETS {
        let dir = corpus_dir(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "the fuzz corpus {} is missing ({e}): it is part of the repository",
                dir.display()
            )
        });
        let mut inputs = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| function(&data));
            assert!(outcome.is_ok(), "{target}: {} panics", path.display());
            inputs += 1;
        }
        assert!(inputs > 0, "the fuzz corpus {} is empty", dir.display());
    }
}
