//! What the installers ship beside the binary (issue 21): completion scripts and man pages
//! generated from the clap definition, so every command a user can type is in them.

use std::process::{Command, Output};

/// The commands a user types; each must be completed and have its man page.
const COMMANDS: [&str; 6] = ["demo", "run", "check", "verify", "plan", "report"];

fn migrate(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_m365-migrate"))
        .args(args)
        .output()
        .expect("start m365-migrate");
    assert!(
        output.status.success(),
        "m365-migrate {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn completions_cover_every_command_in_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let script = String::from_utf8(migrate(&["completions", shell]).stdout).expect("utf-8");
        assert!(
            script.contains("m365-migrate"),
            "{shell}: not for m365-migrate"
        );
        for command in COMMANDS {
            assert!(script.contains(command), "{shell}: no `{command}`");
        }
        let config = if shell == "fish" {
            "-l config"
        } else {
            "--config"
        };
        assert!(script.contains(config), "{shell}: no --config");
        // The hidden generators are for packaging, not for users (zsh listed them).
        assert!(
            !script.contains("completions"),
            "{shell}: offers `completions`"
        );
    }
}

#[test]
fn man_pages_exist_for_every_command_the_main_page_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("man1");
    migrate(&["man", "--out", out.to_str().expect("utf-8 path")]);
    let main = std::fs::read_to_string(out.join("m365-migrate.1")).expect("m365-migrate.1");
    assert!(
        main.contains(".TH m365-migrate 1"),
        "not a section 1 page:\n{main}"
    );
    for command in COMMANDS {
        let page = out.join(format!("m365-migrate-{command}.1"));
        assert!(page.is_file(), "no page for `{command}`");
        assert!(
            main.contains(&format!("m365\\-migrate\\-{command}(1)")),
            "the main page does not name m365-migrate-{command}(1)"
        );
    }
    // Every page the main page refers to is installed (no help page: it would be empty).
    let pages = std::fs::read_dir(&out).expect("man dir").count();
    assert_eq!(pages, COMMANDS.len() + 1, "pages: {pages}");
    let config = std::fs::read_to_string(out.join("m365-migrate-run.1")).expect("run page");
    assert!(
        config.contains("M365_CLIENT_SECRET"),
        "the run page names no secret variable"
    );
}
