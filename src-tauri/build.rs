// Capabilities live under src-tauri/capabilities, so their path is set explicitly: plain
// `tauri_build::build()` would ignore them silently (DESIGN.md, layout notes). The app's
// commands are declared in its manifest, so each is allowed only where a capability names it
// (`allow-<command>` in src-tauri/capabilities/default.json); the list matches
// `app_commands!` in src-tauri/src/lib.rs.
const COMMANDS: &[&str] = &[
    "app_info",
    "validate_source",
    "test_connection",
    "store_secret",
    "secret_status",
    "forget_secret",
    "validate_destination",
    "test_destination",
    "list_projects",
    "create_project",
    "open_project",
    "save_project",
    "delete_project",
    "pick_path",
    "preview_accounts_csv",
    "cutover_checklist",
    "plan_migration",
    "cancel_plan",
    "start_pass",
    "retry_failed",
    "pass_schedule",
    "set_pass_schedule",
    "run_snapshot",
    "run_demo",
    "control_run",
    "run_status",
    "watch_run",
    "run_details",
    "open_run_file",
];

fn main() {
    let attributes = tauri_build::Attributes::new()
        .capabilities_path_pattern("./src-tauri/capabilities/**/*")
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(error) = tauri_build::try_build(attributes) {
        panic!("tauri build script failed: {error:#}");
    }
}
