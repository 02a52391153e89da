//! One `run` per state folder: a second `m365-migrate run` while another process holds the
//! folder exits 3 at once naming the holder; the lock dies with its process (`kill -9`), so the
//! next run proceeds and every message ends up at the destination exactly once.

use crate::support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `m365-migrate run` exit code when another run holds the state folder.
const EXIT_BUSY: i32 = 3;

fn run_command(config: &Path, secret: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_m365-migrate"));
    command
        .args(["--quiet", "run", "--config"])
        .arg(config)
        .env("M365_CLIENT_SECRET", secret)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Waits until `holder` has locked `state` and recorded itself in the lock file.
fn wait_until_locked(holder: &mut Child, state: &Path) {
    let lock = state.join("run.lock");
    let record = format!("pid={}\n", holder.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&lock).is_ok_and(|text| text.contains(&record)) {
        assert!(
            holder.try_wait().unwrap().is_none(),
            "the first run ended before it locked the state folder"
        );
        assert!(
            Instant::now() < deadline,
            "the first run never locked {lock:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_exits_busy_naming_the_holder_and_a_kill_9_releases_the_folder() {
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users: 3,
            messages_per_user: 150,
            ..migrator_sim::TenantSpec::default()
        },
        // Slow enough that the first run is still going while the second one starts.
        latency: Duration::from_millis(30),
        ..migrator_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("out"), dir.path().join("state"));
    let config = dir.path().join("migrate.toml");
    std::fs::write(
        &config,
        support::source_toml(&sim)
            + &format!(
                "[destination]\nkind = \"folder\"\npath = {:?}\n\n[run]\nstate_dir = {:?}\n",
                out.display().to_string(),
                state.display().to_string()
            ),
    )
    .unwrap();
    let secret = sim.client_secret().to_string();

    let mut holder = run_command(&config, &secret).spawn().unwrap();
    tokio::task::block_in_place(|| wait_until_locked(&mut holder, &state));
    let second = tokio::task::block_in_place(|| run_command(&config, &secret).output().unwrap());
    assert!(
        holder.try_wait().unwrap().is_none(),
        "the first run ended before the second was refused: make the simulator slower"
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(EXIT_BUSY), "{stderr}");
    assert!(
        stderr.contains("another run is using the state folder")
            && stderr.contains(&state.display().to_string())
            && stderr.contains(&format!("process {}", holder.id())),
        "names the folder and the holder: {stderr}"
    );

    holder.kill().unwrap(); // SIGKILL: no destructor runs, the lock file stays behind.
    holder.wait().unwrap();
    assert!(state.join("run.lock").exists());

    let last = tokio::task::block_in_place(|| run_command(&config, &secret).output().unwrap());
    assert!(
        last.status.success(),
        "the run after kill -9 of the holder: {}",
        String::from_utf8_lossy(&last.stderr)
    );
    for user in &sim.tenant().users {
        let actual = support::maildir_bodies(&out.join(&user.mail));
        support::assert_exactly_once(user, &actual, "after a refused run and a kill -9");
    }
    sim.shutdown().await;
}
