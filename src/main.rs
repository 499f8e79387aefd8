//! The `concert-reservation` command: serve the API, migrate the database, seed demo data,
//! print the GraphQL schema, check the data's invariants (`verify`).

use clap::{Parser, Subcommand};
use concert_reservation::auth::Authenticator;
use concert_reservation::config::Config;
use concert_reservation::ids::UserId;
use concert_reservation::seed::{self, SeedOptions};
use concert_reservation::startup::{Application, shutdown_signal};
use concert_reservation::verify::{self, VerifyOptions};
use concert_reservation::{db, graphql, telemetry};
use diesel_async::{AsyncConnection, AsyncPgConnection};

/// mimalloc instead of glibc's malloc: a request allocates and frees many small buffers (JSON,
/// GraphQL values), and glibc's malloc/free were ~13 % of the server's CPU samples on a cached
/// seat map (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve GraphQL on BIND_ADDR (GraphiQL at /graphql, subscriptions at /graphql/ws).
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Insert demo data (does nothing if concerts exist, unless --reset).
    Seed(SeedOptions),
    /// Print the GraphQL schema (SDL), as committed in schema.graphql.
    Sdl,
    /// Print an access token (JWT) for a user, signed with JWT_SECRET: for demos and scripts.
    Token {
        /// The user id the token is for (its `sub`).
        #[arg(long)]
        user: i64,
        /// Seconds until the token expires.
        #[arg(long, default_value_t = 3600)]
        ttl_seconds: i64,
    },
    /// Check the data's integrity (no seat sold twice, balances match the ledger, ...): one line
    /// per check; exit status 0 when all pass, 1 when one fails, 2 when they cannot run.
    Verify(VerifyOptions),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sdl => {
            print!("{}", graphql::sdl());
            return Ok(());
        }
        Command::Token { user, ttl_seconds } => {
            println!(
                "{}",
                Authenticator::new(&cli.config).issue(UserId(user), ttl_seconds)
            );
            return Ok(());
        }
        _ => {}
    }
    telemetry::init(cli.config.log_format);
    match cli.command {
        Command::Serve => {
            let app = Application::build(cli.config).await?;
            tracing::info!(addr = %app.local_addr(), "serving GraphQL at http://{}/graphql", app.local_addr());
            app.run_until(shutdown_signal()).await?;
        }
        Command::Migrate => {
            let applied = db::run_migrations(&cli.config.database_url).await?;
            tracing::info!(count = applied.len(), ?applied, "migrations applied");
        }
        Command::Seed(options) => {
            let mut conn = AsyncPgConnection::establish(&cli.config.database_url).await?;
            let summary = seed::seed(&mut conn, &options).await?;
            if summary.skipped {
                tracing::info!(
                    "database already has concerts; nothing seeded (use --reset to start over)"
                );
            } else {
                tracing::info!(?summary, "seeded demo data");
            }
        }
        Command::Verify(options) => {
            std::process::exit(verify::run(&cli.config.database_url, &options).await)
        }
        Command::Sdl | Command::Token { .. } => unreachable!("handled before logging starts"),
    }
    Ok(())
}
