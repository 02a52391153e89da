// Capabilities live under src-tauri/capabilities, so their path is set explicitly: plain
// `tauri_build::build()` would ignore them silently (DESIGN.md, layout notes).
fn main() {
    let attributes =
        tauri_build::Attributes::new().capabilities_path_pattern("./src-tauri/capabilities/**/*");
    if let Err(error) = tauri_build::try_build(attributes) {
        panic!("tauri build script failed: {error:#}");
    }
}
