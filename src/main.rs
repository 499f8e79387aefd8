//! The `concert-reservation` command: serve the API, migrate the database, seed demo data,
//! print the GraphQL schema, check the data's invariants (`verify`), show and change a concert's
//! queue settings (`queue`).

use clap::{Parser, Subcommand};
use concert_reservation::auth::{Authenticator, Role};
use concert_reservation::config::Config;
use concert_reservation::ids::{ConcertId, UserId};
use concert_reservation::queue::QueueSettings;
use concert_reservation::queue::settings::{self, Change};
use concert_reservation::seed::{self, SeedOptions};
use concert_reservation::startup::{Application, shutdown_signal};
use concert_reservation::verify::{self, VerifyOptions};
use concert_reservation::{db, graphql, plan, telemetry};
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
        /// `organiser` may create concerts, seat maps and sales, and run their queues.
        #[arg(long, value_enum, default_value_t = Role::Fan)]
        role: Role,
    },
    /// Check the data's integrity (no seat sold twice, balances match the ledger, ...): one line
    /// per check; exit status 0 when all pass, 1 when one fails, 2 when they cannot run.
    Verify(VerifyOptions),
    /// Show or change a concert's waiting-queue settings; running admitters apply a change on
    /// their next tick.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Plan a sale: the admission rate and active cap to set, when it sells out, and how long
    /// fans wait (the `capacityPlan` query computes the same).
    Plan(PlanOptions),
}

#[derive(clap::Args)]
struct PlanOptions {
    /// Seats on sale.
    #[arg(long)]
    seats: u64,
    /// Fans expected in the queue at the opening.
    #[arg(long)]
    fans: u64,
    /// Seconds an admitted fan takes to buy (or give up), on average.
    #[arg(long, default_value_t = 60.0)]
    seconds_to_buy: f64,
    /// Seconds within which nearly every buyer has bought (e.g. the P95 of the time to buy);
    /// when the last seat goes depends on it. Default: --seconds-to-buy.
    #[arg(long)]
    slowest_seconds_to_buy: Option<f64>,
    /// Seats each buying fan takes, on average.
    #[arg(long, default_value_t = 1.0)]
    seats_per_purchase: f64,
    /// Share of admitted fans who buy, above 0 and at most 1.
    #[arg(long, default_value_t = 0.5)]
    conversion: f64,
    /// Holds per second the booking path sustains (the ceiling report's holds/s).
    #[arg(long)]
    booking_capacity: f64,
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Print the concert's settings (and which are the instance defaults).
    Show {
        #[arg(long)]
        concert: i64,
    },
    /// Change some of the concert's settings; the others stay as they are.
    Set {
        #[arg(long)]
        concert: i64,
        /// The most fans admitted per second (adaptive admission stays at or below it).
        #[arg(long)]
        admit_per_second: Option<f64>,
        /// The most ACTIVE fans at once.
        #[arg(long)]
        active_cap: Option<u32>,
        /// How long an admission lasts.
        #[arg(long)]
        active_ttl_seconds: Option<u64>,
    },
    /// Stop admitting (fans keep their place; ACTIVE fans keep their slot).
    Pause {
        #[arg(long)]
        concert: i64,
    },
    /// Admit again.
    Resume {
        #[arg(long)]
        concert: i64,
    },
}

impl QueueCommand {
    fn concert(&self) -> ConcertId {
        match self {
            Self::Show { concert }
            | Self::Set { concert, .. }
            | Self::Pause { concert }
            | Self::Resume { concert } => ConcertId(*concert),
        }
    }

    /// The change it asks for; None for `show`.
    fn change(&self) -> Option<Change> {
        match self {
            Self::Show { .. } => None,
            Self::Set {
                admit_per_second,
                active_cap,
                active_ttl_seconds,
                ..
            } => Some(Change {
                admit_per_second: *admit_per_second,
                active_cap: *active_cap,
                active_ttl_seconds: *active_ttl_seconds,
                paused: None,
            }),
            Self::Pause { .. } => Some(Change {
                paused: Some(true),
                ..Change::default()
            }),
            Self::Resume { .. } => Some(Change {
                paused: Some(false),
                ..Change::default()
            }),
        }
    }

    async fn run(&self, config: &Config) -> anyhow::Result<()> {
        let defaults = QueueSettings::from_config(config);
        let mut conn = AsyncPgConnection::establish(&config.database_url).await?;
        let concert = self.concert();
        let shown = match self.change() {
            None => settings::show(&mut conn, &defaults, concert).await,
            Some(change) => settings::change(&mut conn, &defaults, concert, &change).await,
        };
        match shown {
            Ok(settings) => {
                print!("{settings}");
                Ok(())
            }
            Err(err) => {
                eprintln!("{} ({})", err, err.code());
                std::process::exit(1)
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sdl => {
            print!("{}", graphql::sdl());
            return Ok(());
        }
        Command::Plan(options) => {
            let inputs = plan::Inputs {
                seats: options.seats,
                fans: options.fans,
                seconds_to_buy: options.seconds_to_buy,
                slowest_seconds_to_buy: options
                    .slowest_seconds_to_buy
                    .unwrap_or(options.seconds_to_buy),
                seats_per_purchase: options.seats_per_purchase,
                conversion: options.conversion,
                booking_capacity: options.booking_capacity,
            };
            match plan::plan(&inputs) {
                Ok(plan) => print!("{plan}"),
                Err(err) => {
                    eprintln!("error: {err}");
                    std::process::exit(2);
                }
            }
            return Ok(());
        }
        Command::Token {
            user,
            ttl_seconds,
            role,
        } => {
            println!(
                "{}",
                Authenticator::new(&cli.config).issue_with_role(UserId(user), role, ttl_seconds)
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
        Command::Queue(command) => command.run(&cli.config).await?,
        Command::Sdl | Command::Token { .. } | Command::Plan(_) => {
            unreachable!("handled before logging starts")
        }
    }
    Ok(())
}
