//! What the installers ship beside the binary (issue 21): completion scripts and man pages
//! generated from the clap definition, so every command a user can type is in them.

use std::process::{Command, Output};

/// The commands a user types; each must be completed and have its man page.
const COMMANDS: [&str; 8] = [
    "demo", "run", "check", "verify", "plan", "report", "worker", "status",
];

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

/// The packages' files, relative to this crate (`src-tauri/cli/packaging`).
fn packaging_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(name)
}

#[test]
fn example_config_shipped_in_the_packages_is_valid() {
    let path = packaging_file("migrate.toml.example");
    let config = migrator_core::config::FileConfig::load(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The service's StateDirectory= is /var/lib/m365-migrate: the journal must go there.
    let options = config.run_options();
    assert_eq!(
        options.state_dir.as_deref(),
        Some(std::path::Path::new("/var/lib/m365-migrate"))
    );
}

#[test]
fn service_reads_the_secret_from_a_root_only_environment_file() {
    let unit = std::fs::read_to_string(packaging_file("m365-migrate.service")).expect("unit");
    assert!(unit.contains("EnvironmentFile=/etc/m365-migrate/secrets.env"));
    assert!(unit.contains(
        "ExecStart=/usr/bin/m365-migrate --quiet run --config /etc/m365-migrate/migrate.toml"
    ));
    // The secret never appears in the unit, which any user may read.
    assert!(
        !unit.contains("Environment=M365"),
        "a secret set in the unit"
    );
    // The variables the CLI reads (main.rs SECRET_ENV, ADMIN_PASSWORD_ENV).
    let env = std::fs::read_to_string(packaging_file("secrets.env")).expect("secrets.env");
    for var in ["M365_CLIENT_SECRET=", "DEST_ADMIN_PASSWORD="] {
        assert!(env.contains(var), "secrets.env names no {var}");
    }
    let timer = std::fs::read_to_string(packaging_file("m365-migrate.timer")).expect("timer");
    assert!(timer.contains("Unit=m365-migrate.service"));
}
