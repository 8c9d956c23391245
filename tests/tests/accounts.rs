//! Accounts and sessions: create_user, login, logout, and what needs a login.

use p2p_e2e::{Cluster, assert_fails, assert_ok, password_of, stdout_of};

fn lines(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).collect()
}

#[test]
fn create_user_login_status_logout() {
    let cluster = Cluster::start();
    let d = cluster.daemon("alice");

    let status = d.ok(&["status"]);
    assert!(
        lines(&status).contains(&"user: not logged in"),
        "status before login:\n{status}"
    );
    assert!(d.status()["user"].is_null(), "{}", d.status());

    let pw = password_of("alice");
    assert_eq!(d.ok(&["create_user", "alice", &pw]), "created user alice");
    assert_eq!(d.ok(&["login", "alice", &pw]), "logged in as alice");

    let status = d.ok(&["status"]);
    let status_lines = lines(&status);
    assert!(status_lines.contains(&"user: alice"), "status:\n{status}");
    let addrs = cluster.tracker_addrs();
    assert!(
        status_lines.iter().any(|l| l
            .strip_prefix("tracker: ")
            .is_some_and(|t| addrs.iter().any(|a| t.contains(a.as_str())))),
        "status names the tracker in use (one of {addrs:?}):\n{status}"
    );

    let json = d.status();
    assert_eq!(json["reply"], "status", "{json}");
    assert_eq!(json["user"], "alice", "{json}");
    let tracker = json["tracker"].as_str().unwrap_or_default().to_string();
    assert!(addrs.contains(&tracker), "status tracker {json}");
    assert!(json["pid"].as_u64().is_some_and(|p| p > 0), "{json}");

    assert_eq!(d.ok(&["logout"]), "logged out alice");
    let status = d.ok(&["status"]);
    assert!(
        lines(&status).contains(&"user: not logged in"),
        "status after logout:\n{status}"
    );
    assert!(d.status()["user"].is_null());

    // Commands after logout are refused.
    assert_fails(&d.ctl(&["list_groups"]), "not logged in");
    assert_fails(&d.ctl(&["create_group", "g1"]), "not logged in");
    d.expect_kind(&["list_groups"], "not_logged_in");

    // And the account still works.
    d.login("alice");
    assert!(d.groups().is_empty());
    cluster.assert_no_panics();
}

#[test]
fn duplicate_user_is_refused() {
    let cluster = Cluster::start();
    let a = cluster.daemon("alice");
    let b = cluster.daemon("bob");
    a.create_user("alice");

    let out = b.ctl(&["create_user", "alice", "another-password-42"]);
    assert_fails(&out, "exists");
    b.expect_kind(
        &["create_user", "alice", "another-password-42"],
        "already_exists",
    );
    // Even from the same daemon, with the same password.
    a.expect_kind(
        &["create_user", "alice", &password_of("alice")],
        "already_exists",
    );

    // The refused attempt did not replace the password.
    b.expect_kind(&["login", "alice", "another-password-42"], "auth_failed");
    b.login("alice");
    assert_eq!(b.status()["user"], "alice");
    cluster.assert_no_panics();
}

#[test]
fn wrong_password_is_refused() {
    let cluster = Cluster::start();
    let d = cluster.daemon("alice");
    d.create_user("alice");

    let out = d.ctl(&["login", "alice", "not-the-password"]);
    assert_fails(&out, "wrong user id or password");
    let err = d.expect_error(
        &["login", "alice", "not-the-password"],
        "auth_failed",
        "wrong user id or password",
    );
    assert!(
        !err["message"]
            .as_str()
            .unwrap()
            .contains("not-the-password"),
        "the error does not echo the password: {err}"
    );
    assert!(
        d.status()["user"].is_null(),
        "a failed login logs nobody in"
    );
    d.expect_kind(&["list_groups"], "not_logged_in");

    // A user who does not exist cannot log in either, and is told exactly what a wrong
    // password is told: a login does not reveal which user ids exist.
    let unknown = d.expect_kind(&["login", "nobody", "whatever-pw"], "auth_failed");
    assert_eq!(
        unknown, err,
        "an unknown user and a wrong password get the same answer"
    );

    d.login("alice");
    assert_eq!(d.status()["user"], "alice");
    cluster.assert_no_panics();
}

#[test]
fn commands_before_login_are_refused() {
    let cluster = Cluster::start();
    let d = cluster.daemon("alice");
    d.create_user("alice");
    let file = cluster.root().join("some-file.txt");
    std::fs::write(&file, b"hello").unwrap();
    let file = file.to_str().unwrap();
    let dest = cluster.root().to_str().unwrap();

    let commands: Vec<Vec<&str>> = vec![
        vec!["create_group", "g1"],
        vec!["join_group", "g1"],
        vec!["leave_group", "g1"],
        vec!["list_groups"],
        vec!["list_requests", "g1"],
        vec!["accept_request", "g1", "bob"],
        vec!["logout"],
        vec!["upload_file", "g1", file],
        vec!["list_files", "g1"],
        vec!["download_file", "g1", "some-file.txt", dest],
        vec!["stop_share", "g1", "some-file.txt"],
    ];
    for args in &commands {
        assert_fails(&d.ctl(args), "not logged in");
        d.expect_kind(args, "not_logged_in");
    }

    // Nothing of that happened: once logged in, there is no group g1 and it can be created.
    d.login("alice");
    assert!(d.group("g1").is_none(), "{:?}", d.groups());
    assert_eq!(d.ok(&["create_group", "g1"]), "created group g1");
    cluster.assert_no_panics();
}

#[test]
fn password_from_stdin() {
    let cluster = Cluster::start();
    let d = cluster.daemon("bob");
    let pw = password_of("bob");

    let out = d.ctl_stdin(&["create_user", "bob"], &format!("{pw}\n"));
    assert_ok(&out);
    assert_eq!(stdout_of(&out).trim_end(), "created user bob");
    assert!(
        !stdout_of(&out).contains(&pw),
        "the password is not printed"
    );

    let out = d.ctl_stdin(&["login", "bob"], "wrong-password\n");
    assert_fails(&out, "wrong user id or password");

    let out = d.ctl_stdin(&["login", "bob"], &format!("{pw}\n"));
    assert_ok(&out);
    assert_eq!(stdout_of(&out).trim_end(), "logged in as bob");
    assert_eq!(d.status()["user"], "bob");

    // The line read from stdin is the password without its newline: the same password
    // given as an argument works.
    d.ok(&["logout"]);
    d.login("bob");
    assert_eq!(d.status()["user"], "bob");
    cluster.assert_no_panics();
}

#[test]
fn empty_password_is_refused() {
    let cluster = Cluster::start();
    let d = cluster.daemon("carol");
    // No password argument and stdin at /dev/null: the password read is empty.
    let out = d.ctl(&["create_user", "carol"]);
    assert_fails(&out, "password");
    d.expect_kind(&["create_user", "carol"], "invalid_argument");
    // Nothing was created.
    d.create_user("carol");
    cluster.assert_no_panics();
}

#[test]
fn malformed_ids_are_refused() {
    let cluster = Cluster::start();
    let d = cluster.daemon("alice");
    let long = "a".repeat(65);
    // Each malformed id with what the refusal says about it.
    let user_ids = [
        ("bad id", r#"user id "bad id" contains ' '"#),
        ("a/b", r#"user id "a/b" contains '/'"#),
        ("é", r#"user id "é" contains 'é'"#),
        ("", "user id must not be empty"),
        (
            long.as_str(),
            "user id is 65 bytes long; at most 64 characters are allowed",
        ),
    ];
    for (bad, says) in user_ids {
        let out = d.ctl(&["create_user", bad, "some-password-1"]);
        assert_fails(&out, says);
        d.expect_error(
            &["create_user", bad, "some-password-1"],
            "invalid_argument",
            says,
        );
    }
    // 64 characters of the allowed alphabet are fine.
    let longest = format!("A1._-{}", "z".repeat(59));
    assert_eq!(longest.len(), 64);
    d.create_user(&longest);
    d.login(&longest);

    let group_ids = [
        ("bad group", r#"group id "bad group" contains ' '"#),
        ("g/1", r#"group id "g/1" contains '/'"#),
        (
            long.as_str(),
            "group id is 65 bytes long; at most 64 characters are allowed",
        ),
    ];
    for (bad, says) in group_ids {
        let out = d.ctl(&["create_group", bad]);
        assert_fails(&out, says);
        d.expect_error(&["create_group", bad], "invalid_argument", says);
        d.expect_error(&["join_group", bad], "invalid_argument", says);
    }
    assert!(d.groups().is_empty());
    cluster.assert_no_panics();
}
