//! Local attackers (docs/SECURITY.md, "Local attackers"): another user of the machine plants a
//! socket directory, a socket or a symlink, or hands escape sequences to the trackers; p2pctl
//! sends nothing to a socket that is not the user's own daemon's, p2pd refuses a socket
//! directory others control, a symlinked pid file is never followed, and text from elsewhere is
//! shown escaped.
//!
//! The programs run without `$XDG_RUNTIME_DIR`, with `$TMPDIR` in the test's own directory, so
//! the fallback socket directory `$TMPDIR/p2pd-<uid>` is the test's. Cases that need another
//! uid run only as root (see [`root_or_skip`]).

use p2p_e2e::local::{
    FakeSocket, NOBODY, chmod, chown, fallback_socket, my_uid, root_or_skip, without_runtime_dir,
};
use p2p_e2e::tls::{FakeServer, new_identity};
use p2p_e2e::{Cluster, READY_TIMEOUT, assert_fails, run_bounded, stderr_of, stdout_of, wait_for};
use serde_json::{Value, json};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use tempfile::TempDir;

const PASSWORD: &str = "hunter2-local-attackers";
/// Bounds a hung `p2pctl`; not a performance assertion.
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A test's directory: `root/` with a `tmp/` (1777, like /tmp) for `$TMPDIR` and a
/// tracker_info.txt naming a tracker nobody runs (p2pd starts without one).
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("p2p-local-")
            .tempdir()
            .expect("temp dir");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        chmod(&tmp, 0o1777);
        std::fs::write(dir.path().join("tracker_info.txt"), "127.0.0.1:1\n").unwrap();
        Self { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn tmpdir(&self) -> PathBuf {
        self.root().join("tmp")
    }

    /// The socket directory p2pd and p2pctl fall back to here.
    fn fallback_dir(&self) -> PathBuf {
        fallback_socket(&self.tmpdir())
            .parent()
            .unwrap()
            .to_path_buf()
    }

    /// `p2pctl <args>` without `$XDG_RUNTIME_DIR`, password on stdin.
    fn ctl(&self, args: &[&str]) -> Output {
        let mut cmd = without_runtime_dir("p2pctl", self.root(), &self.tmpdir());
        cmd.env("P2P_TRACKER_INFO", self.root().join("tracker_info.txt"))
            .args(args);
        run_bounded(
            &mut cmd,
            Some(format!("{PASSWORD}\n").as_bytes()),
            COMMAND_TIMEOUT,
        )
    }

    /// `p2pd --foreground` without `$XDG_RUNTIME_DIR` (so with the fallback socket unless
    /// `args` says otherwise), with its stderr in `p2pd.stderr`.
    fn p2pd(&self, env: &[(&str, &Path)], args: &[&str]) -> std::process::Command {
        let mut cmd = without_runtime_dir("p2pd", self.root(), &self.tmpdir());
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.arg("--foreground")
            .arg("--tracker-info")
            .arg(self.root().join("tracker_info.txt"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args);
        cmd
    }

    /// Runs a `p2pd` that must refuse to start; returns its output.
    fn p2pd_refused(&self, env: &[(&str, &Path)], args: &[&str]) -> Output {
        let mut cmd = self.p2pd(env, args);
        let out = run_bounded(&mut cmd, None, READY_TIMEOUT);
        assert!(
            !out.status.success(),
            "p2pd started although it should have refused: {}",
            stderr_of(&out)
        );
        out
    }
}

/// A p2pd started in the foreground, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[track_caller]
fn assert_line_has(out: &Output, parts: &[&str]) {
    let line = stderr_of(out);
    for part in parts {
        assert!(line.contains(part), "{part:?} missing from: {line}");
    }
}

#[test]
fn p2pctl_sends_nothing_to_a_socket_in_a_directory_others_can_write() {
    let sandbox = Sandbox::new();
    let dir = sandbox.fallback_dir();
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o777);
    // As root the attacker is a real other user: nobody owns the directory and serves the
    // socket. Without root the mode alone must be enough to refuse.
    let attacker = if root_or_skip("the attacker-owned part of this test") {
        chown(&dir, NOBODY);
        NOBODY
    } else {
        my_uid()
    };
    let fake = FakeSocket::listen(&dir.join("p2pd.sock"), attacker);

    let out = sandbox.ctl(&["login", "alice"]);
    assert_fails(
        &out,
        &format!("refusing socket directory {}", dir.display()),
    );
    assert_line_has(&out, &["mode 0777", &format!("uid {attacker}")]);
    let (connections, bytes) = fake.drain();
    assert_eq!(
        (connections, bytes.len()),
        (0, 0),
        "p2pctl connected to the planted socket {}",
        fake.path().display()
    );
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(entries.len(), 1, "no p2pd was started there: {entries:?}");
}

#[test]
fn p2pctl_sends_nothing_to_a_socket_served_by_another_user() {
    if !root_or_skip("p2pctl_sends_nothing_to_a_socket_served_by_another_user") {
        return;
    }
    let sandbox = Sandbox::new();
    let dir = sandbox.fallback_dir();
    // The directory is ours and private: only the uid at the other end gives the fake away.
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    let socket = dir.join("p2pd.sock");
    let fake = FakeSocket::listen(&socket, NOBODY);

    let out = sandbox.ctl(&["login", "alice"]);
    assert_fails(
        &out,
        &format!(
            "refusing {}: it is served by uid {NOBODY}, not by uid {}",
            socket.display(),
            my_uid()
        ),
    );
    let (connections, bytes) = fake.drain();
    assert_eq!(connections, 1, "p2pctl connected once, to check the uid");
    assert!(
        bytes.is_empty(),
        "the fake socket received {:?}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn p2pd_makes_the_fallback_directory_private_and_refuses_one_others_can_write() {
    let sandbox = Sandbox::new();
    let dir = sandbox.fallback_dir();
    {
        let daemon = Running(
            sandbox
                .p2pd(&[], &[])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start p2pd"),
        );
        // The daemon's own answer to a logged-out `show_downloads` (`status` would wait for
        // the tracker nobody runs) shows p2pctl reached it.
        wait_for(
            "p2pd to answer at the fallback socket",
            READY_TIMEOUT,
            || {
                let out = sandbox.ctl(&["--json", "show_downloads"]);
                let reply: Value = serde_json::from_str(stdout_of(&out).trim()).unwrap_or_default();
                if reply["error"]["kind"] == "not_logged_in" {
                    Ok(())
                } else {
                    Err(format!("{reply} {}", stderr_of(&out)))
                }
            },
        );
        assert_eq!(mode_of(&dir), 0o700, "{} is not private", dir.display());
        assert!(fallback_socket(&sandbox.tmpdir()).exists());
        drop(daemon);
    }
    // What the killed daemon left behind.
    let _ = std::fs::remove_file(dir.join("p2pd.sock"));
    let _ = std::fs::remove_file(dir.join("p2pd.pid"));

    chmod(&dir, 0o777);
    let out = sandbox.p2pd_refused(&[], &[]);
    assert_line_has(
        &out,
        &[
            &format!("refusing socket directory {}", dir.display()),
            "mode 0777",
        ],
    );

    if root_or_skip("the other-owner part of this test") {
        chmod(&dir, 0o700);
        chown(&dir, NOBODY);
        let out = sandbox.p2pd_refused(&[], &[]);
        assert_line_has(
            &out,
            &[
                &format!("refusing socket directory {}", dir.display()),
                &format!("owned by uid {NOBODY}"),
            ],
        );
    }
    assert!(
        !dir.join("p2pd.pid").exists(),
        "a refused p2pd wrote its pid file"
    );
}

#[test]
fn p2pd_refuses_a_runtime_dir_others_can_write() {
    let sandbox = Sandbox::new();
    let runtime = sandbox.root().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    chmod(&runtime, 0o777);
    let out = sandbox.p2pd_refused(&[("XDG_RUNTIME_DIR", &runtime)], &[]);
    assert_line_has(
        &out,
        &[
            &format!("refusing socket directory {}", runtime.display()),
            "mode 0777",
        ],
    );
}

#[test]
fn a_symlinked_pid_file_is_refused_and_its_target_kept() {
    let sandbox = Sandbox::new();
    let run = sandbox.root().join("run");
    std::fs::create_dir(&run).unwrap();
    chmod(&run, 0o700);
    let victim = sandbox.root().join("precious.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    let pid_file = run.join("p2pd.pid");
    std::os::unix::fs::symlink(&victim, &pid_file).unwrap();
    let socket = run.join("p2pd.sock");

    let out = sandbox.p2pd_refused(&[], &["--socket", socket.to_str().unwrap()]);
    assert_line_has(
        &out,
        &[
            &format!("refusing pid file {}", pid_file.display()),
            "symlink",
        ],
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(
        std::fs::symlink_metadata(&pid_file)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the planted link was replaced"
    );
    assert!(!socket.exists(), "a refused p2pd bound its socket");
}

/// A tracker that answers like a real one, with text an attacker chose: escape sequences in
/// a group's name and owner, and in an error message.
fn hostile_tracker(addr: std::net::SocketAddr) -> FakeServer {
    FakeServer::tracker(addr, new_identity(), |request: &Value| {
        let result = match request["call"]["op"].as_str() {
            Some("login") => json!({"Ok": {"reply": "logged_in", "user": "alice", "token": "t0k"}}),
            Some("list_groups") => json!({"Ok": {"reply": "groups", "groups": [{
                "group": "g\u{1b}]0;pwned\u{7}",
                "owner": "eve\u{1b}[2J\n[C] [g1] forged.bin  100%",
                "members": 1,
                "membership": "member",
            }]}}),
            Some("create_group") => json!({"Err": {
                "kind": "conflict",
                "message": "group exists\u{1b}[31m \u{9b}1;1H\u{7f}",
            }}),
            _ => json!({"Ok": {"reply": "done"}}),
        };
        Some(
            json!({"v": p2p_proto::tracker::TRACKER_VERSION, "id": request["id"], "result": result}),
        )
    })
}

#[test]
fn text_from_a_tracker_is_shown_escaped() {
    let cluster = Cluster::new();
    let tracker = hostile_tracker(cluster.tracker_addr(1));
    let info = cluster.root().join("tracker_info-hostile.txt");
    std::fs::write(&info, format!("{}\n", tracker.addr())).unwrap();
    let mut alice = cluster.daemon_unstarted("alice");
    alice.set_tracker_info(&info);
    alice.start();
    p2p_e2e::assert_ok(&alice.ctl(&["login", "alice", PASSWORD]));

    let out = alice.ctl(&["list_groups"]);
    p2p_e2e::assert_ok(&out);
    let shown = stdout_of(&out);
    assert_eq!(
        shown,
        "g\\x1b]0;pwned\\x07  owner: eve\\x1b[2J\\x0a[C] [g1] forged.bin  100%  members: 1  \
         (member)\n",
        "one line, every control character escaped"
    );
    // Scripts get the text as it is, escaped by JSON.
    let reply = alice.json(&["list_groups"]);
    assert_eq!(reply["groups"][0]["group"], "g\u{1b}]0;pwned\u{7}");

    let out = alice.ctl(&["create_group", "g2"]);
    assert_fails(&out, "group exists\\x1b[31m \\u{9b}1;1H\\x7f");
    let line = stderr_of(&out);
    assert!(
        !line.contains('\u{1b}') && !line.contains('\u{9b}') && !line.contains('\u{7f}'),
        "a raw control character reached stderr: {line:?}"
    );
}
