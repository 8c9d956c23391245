//! The library half of `p2pctl`: its command-line definition, so that the build helpers
//! (`xtask`) generate the man page and shell completions from the very definition the binary
//! parses, with p2pctl's own name, version and description.
//!
//! Everything else (talking to the daemon, printing its answers) stays private to the binary.

pub mod cli;
