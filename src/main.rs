//! The `concert-reservation` command: serve the API, migrate the database, seed demo data,
//! print the GraphQL schema.

use clap::{Parser, Subcommand};
use concert_reservation::config::Config;
use concert_reservation::seed::{self, SeedOptions};
use concert_reservation::startup::{Application, shutdown_signal};
use concert_reservation::{db, graphql, telemetry};
use diesel_async::{AsyncConnection, AsyncPgConnection};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Sdl = cli.command {
        print!("{}", graphql::sdl());
        return Ok(());
    }
    telemetry::init();
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
        Command::Sdl => unreachable!("handled before logging starts"),
    }
    Ok(())
}
