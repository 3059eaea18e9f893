//! Puts the git commit into `--version` when the crate is built from a checkout:
//! `WECOM_ARCHIVE_VERSION` is `0.1.0 (abc1234)`, or plain `0.1.0` elsewhere (a source tarball,
//! no git).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let version = env("CARGO_PKG_VERSION");
    let full = match commit() {
        Some(commit) => format!("{version} ({commit})"),
        None => version,
    };
    println!("cargo:rustc-env=WECOM_ARCHIVE_VERSION={full}");
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// `git` in the crate's directory, its output trimmed; `None` when git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(env("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The short commit of HEAD, when this crate is the top of a git checkout (not a crate unpacked
/// inside someone else's repository); also asks cargo to build again when HEAD moves.
fn commit() -> Option<String> {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if !same_dir(Path::new(&top), &manifest_dir) {
        return None;
    }
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    // HEAD lives in the worktree's git dir; branches and packed refs in the common one.
    let absolute = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            manifest_dir.join(p)
        }
    };
    let git_dir = git(&["rev-parse", "--git-dir"]).map(absolute)?;
    let common_dir = git(&["rev-parse", "--git-common-dir"]).map_or(git_dir.clone(), absolute);
    let mut watched = vec![git_dir.join("HEAD"), common_dir.join("packed-refs")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common_dir.join(branch));
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(commit)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
