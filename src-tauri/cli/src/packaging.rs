//! The files the installers ship beside the binary, generated from the clap definition so they
//! never drift from it: shell completions (`clap_complete`) and the man page (`clap_mangen`).
//! Hidden subcommands write them (`completions <shell>` on stdout, `man --out DIR`);
//! `scripts/package.sh` captures them.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::Cli;

/// The installed command's name, which the completion scripts register themselves for.
const BIN_NAME: &str = "m365-migrate";

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut visible_command(), BIN_NAME, &mut script);
    script
}

/// Writes the man pages into `dir` (created if missing): `m365-migrate.1` and one
/// `m365-migrate-<command>.1` per visible command, which the main page's SUBCOMMANDS name.
pub fn write_man_pages(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(visible_command(), dir)
}

/// The command line without its hidden subcommands: clap_complete's zsh script would offer
/// them otherwise (it ignores `hide` on subcommands; bash and fish honour it).
fn visible_command() -> clap::Command {
    let full = Cli::command();
    let mut visible = clap::Command::new(BIN_NAME)
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true);
    if let Some(about) = full.get_about() {
        visible = visible.about(about.clone());
    }
    if let Some(about) = full.get_long_about() {
        visible = visible.long_about(about.clone());
    }
    for arg in full.get_arguments() {
        visible = visible.arg(arg.clone());
    }
    for command in full.get_subcommands().filter(|c| !c.is_hide_set()) {
        visible = visible.subcommand(command.clone());
    }
    visible
}
