//! `m365-sim`: serves a generated tenant on 127.0.0.1 until Ctrl-C.

use std::time::Duration;

use clap::{Parser, Subcommand};
use migrator_sim::icewarp::{IceWarpConfig, IceWarpSim};
use migrator_sim::{GroupwareSpec, MailboxLimits, SimConfig, SimServer, TenantSpec};

#[derive(Parser)]
#[command(
    name = "m365-sim",
    version,
    about = "A Microsoft Graph simulator for M365 Migrator's tests, demo and benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a tenant and serve it on 127.0.0.1.
    Serve {
        /// Number of mailboxes.
        #[arg(long, default_value_t = 3)]
        users: usize,
        /// Messages per mailbox.
        #[arg(long, default_value_t = 100)]
        messages: usize,
        /// Seed of the generated tenant (the same seed gives the same tenant).
        #[arg(long, default_value_t = 365)]
        seed: u64,
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Mean added latency per Graph request, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Apply Exchange Online's per-mailbox limits (4 in flight, 10,000 per 10 minutes).
        #[arg(long)]
        throttle: bool,
        /// No calendars, contacts or To Do tasks (mail only).
        #[arg(long)]
        no_groupware: bool,
        /// Seeded single events per calendar (besides each mailbox's series catalogue).
        #[arg(long, default_value_t = GroupwareSpec::default().events_per_calendar)]
        events_per_calendar: usize,
        /// Contacts per mailbox.
        #[arg(long, default_value_t = GroupwareSpec::default().contacts)]
        contacts: usize,
        /// Tasks per To Do list.
        #[arg(long, default_value_t = GroupwareSpec::default().tasks_per_list)]
        tasks_per_list: usize,
        /// Also print the client secret (it is a simulator, but secrets are not printed by habit).
        #[arg(long)]
        print_secret: bool,
        /// Also serve the IceWarp admin API emulator, with no domains or accounts yet.
        #[arg(long)]
        icewarp: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Serve {
        users,
        messages,
        seed,
        port,
        latency_ms,
        throttle,
        no_groupware,
        events_per_calendar,
        contacts,
        tasks_per_list,
        print_secret,
        icewarp,
    } = Cli::parse().command;
    let groupware = if no_groupware {
        GroupwareSpec::none()
    } else {
        GroupwareSpec {
            events_per_calendar,
            contacts,
            tasks_per_list,
            ..GroupwareSpec::default()
        }
    };
    let config = SimConfig {
        tenant: TenantSpec {
            seed,
            users,
            messages_per_user: messages,
            groupware,
            ..TenantSpec::default()
        },
        latency: Duration::from_millis(latency_ms),
        jitter: Duration::from_millis(latency_ms / 4),
        limits: throttle.then(MailboxLimits::default),
        ..SimConfig::default()
    };
    let sim = SimServer::start_on(config, port).await?;
    println!("url        {}", sim.url());
    println!("tenant_id  {}", sim.tenant_id());
    println!("client_id  {}", sim.client_id());
    if print_secret {
        println!("secret     {}", sim.client_secret());
    }
    let icewarp_config = IceWarpConfig::default();
    let icewarp = match icewarp {
        true => Some(IceWarpSim::start(icewarp_config.clone()).await?),
        false => None,
    };
    if let Some(iw) = &icewarp {
        println!("icewarp    {}", iw.api_url());
        println!("icewarp_admin {}", icewarp_config.admin_email);
        if print_secret {
            println!("icewarp_password {}", icewarp_config.admin_password);
        }
    }
    println!("serving until Ctrl-C");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    if let Some(iw) = icewarp {
        iw.shutdown().await;
    }
    Ok(())
}
