//! The CLI raises its open-file limit before any run (issue 17.3: a thousand mailboxes at once
//! need thousands of descriptors, over the 1,024 many systems start programs with).

use std::process::Command;

#[test]
#[cfg(unix)]
fn regression_a_run_kept_the_soft_open_file_limit_it_was_started_with() {
    // Started under a low soft limit, as a shell or service manager may start it.
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -Sn 256 && exec "$0" -v check --config /nonexistent/migrate.toml"#)
        .arg(env!("CARGO_BIN_EXE_m365-migrate"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("open files: the soft limit raised from 256 to "),
        "{stderr}"
    );
    // Then the command goes on as ever: here, one clear error for the missing file.
    assert!(!out.status.success());
    assert!(stderr.contains("/nonexistent/migrate.toml"), "{stderr}");
}
