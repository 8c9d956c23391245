//! Where the binaries under test are: beside the test executable's directory, i.e.
//! `target/<profile>/` when the test runs as `target/<profile>/deps/<test>-<hash>`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const BINARIES: [&str; 3] = ["trackerd", "p2pd", "p2pctl"];

/// The directory holding `trackerd`, `p2pd` and `p2pctl`. Panics when one is missing, since
/// `cargo test -p p2p-e2e` does not build the other packages' binaries.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("cannot find the test executable");
        let mut dir = exe
            .parent()
            .expect("test executable has no parent directory")
            .to_path_buf();
        if dir.file_name().is_some_and(|name| name == "deps") {
            dir.pop();
        }
        for name in BINARIES {
            let path = dir.join(name);
            if !path.is_file() {
                panic!(
                    "{} not found: run `cargo build --workspace` first",
                    path.display()
                );
            }
        }
        dir
    })
}

/// The path of one binary under test.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}
