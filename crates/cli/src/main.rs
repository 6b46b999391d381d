//! `selfhelp`: run the whole system locally (`up`) and mint development tokens (`token`).

mod call;
mod demo;
mod directory;
mod events;
mod ops;
mod secrets;
mod up;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "selfhelp",
    version,
    about = "Run and operate a selfhelp deployment"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start NATS (unless SELFHELP_NATS__URL points at a reachable one) and all three
    /// services on SQLite in the data folder; stop everything on Ctrl-C.
    Up(up::UpArgs),
    /// Print a development bearer token, signed with the secret `up` uses.
    Token(TokenArgs),
    /// Call an RPC with a JSON request and print the JSON response.
    Call(call::CallArgs),
    /// A deployment's secrets: `secrets init DIR` makes them at first start.
    Secrets(secrets::SecretsArgs),
    /// Every service's readiness, version, outbox, consumers and dead letters,
    /// in one table; fails when one is unreachable or not ready.
    Status(ops::StatusArgs),
    /// Events a service could not apply: `list`, and `replay` once fixed.
    DeadLetters(ops::DeadLettersArgs),
    /// Events on NATS: `tail` follows them as decoded CloudEvents.
    Events(events::EventsArgs),
    /// Writes the region's published directory as Open Referral UK JSON.
    Export(directory::ExportArgs),
    /// Adds groups from an Open Referral UK JSON file (as `export` writes, or
    /// another directory's `/services`), published at once; a re-run adds
    /// nothing twice. `--dry-run` checks and reports only.
    Import(directory::ImportArgs),
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The person the token speaks for (`sub`).
    #[arg(long)]
    sub: String,
    /// A role to grant, e.g. `operator`; may be repeated.
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Region claim; defaults to the region `up` serves.
    #[arg(long, env = "SELFHELP_REGION", default_value = up::DEFAULT_REGION)]
    region: String,
    #[command(flatten)]
    signing: SigningArgs,
    /// Lifetime in hours.
    #[arg(long, default_value_t = 12)]
    ttl_hours: u64,
}

/// Where the HS256 secret that signs development tokens comes from.
#[derive(Debug, clap::Args)]
pub struct SigningArgs {
    /// The data folder whose development secret signs tokens (`selfhelp up`'s).
    #[arg(long, default_value = up::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Sign with the secret in this file instead, the one the services were
    /// given (for the compose stack, `hs256-secret` in its secrets volume).
    #[arg(long, env = "SELFHELP_AUTH__HS256_SECRET_FILE")]
    secret_file: Option<PathBuf>,
}

impl SigningArgs {
    pub fn secret(&self) -> anyhow::Result<String> {
        let Some(path) = &self.secret_file else {
            return Ok(dev_secret(&self.data_dir)?.1);
        };
        let secret = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading the secret file {}: {e}", path.display()))?;
        let secret = secret.trim();
        anyhow::ensure!(
            !secret.is_empty(),
            "the secret file {} is empty",
            path.display()
        );
        Ok(secret.to_string())
    }
}

/// The development HS256 secret kept in the data folder, created on first use.
pub fn dev_secret(data_dir: &Path) -> anyhow::Result<(PathBuf, String)> {
    kept_secret(data_dir, "dev-secret")
}

/// The secret kept in file `name` of the data folder (its owner's alone),
/// made on first use.
pub fn kept_secret(data_dir: &Path, name: &str) -> anyhow::Result<(PathBuf, String)> {
    let path = data_dir.join(name);
    if let Ok(secret) = std::fs::read_to_string(&path)
        && !secret.trim().is_empty()
    {
        return Ok((path, secret.trim().to_string()));
    }
    private_dir(data_dir)?;
    let secret = selfhelp_platform::auth::generate_secret();
    write_private(&path, &secret)?;
    Ok((path, secret))
}

/// Creates `dir` if needed and makes it readable by its owner only: it holds
/// the development secret, the databases (who belongs to which group) and mail.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(contents.as_bytes())
    }
    #[cfg(not(unix))]
    std::fs::write(path, contents)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Token(args) => match token(&args) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("selfhelp token: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Up(args) => run_async("up", up::up(args)),
        Command::Call(args) => run_async("call", call::call(args)),
        Command::Status(args) => run_async("status", ops::status(args)),
        Command::DeadLetters(args) => run_async("dead-letters", ops::dead_letters(args)),
        Command::Events(args) => run_async("events", events::events(args)),
        Command::Export(args) => run_async("export", directory::export(args)),
        Command::Import(args) => run_async("import", directory::import(args)),
        Command::Secrets(args) => match secrets::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("selfhelp secrets: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run_async(verb: &str, work: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let result = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(work),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("selfhelp {verb}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn token(args: &TokenArgs) -> anyhow::Result<String> {
    anyhow::ensure!(!args.sub.trim().is_empty(), "--sub must not be empty");
    anyhow::ensure!(!args.region.trim().is_empty(), "--region must not be empty");
    let secret = args.signing.secret()?;
    Ok(selfhelp_platform::auth::mint_hs256(
        &secret,
        args.sub.trim(),
        args.region.trim(),
        &args.roles,
        Duration::from_secs(args.ttl_hours * 3600),
    )?)
}
