use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kvseal",
    version,
    about = "A self-hosted secrets server (Vault KV v2 and OVHcloud OKMS APIs)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Server(ServerArgs),
    /// Operator tools.
    #[command(subcommand)]
    Operator(OperatorCommand),
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Write a consistent copy of the store to FILE (safe while the server runs; stays encrypted).
    Backup {
        /// The server's configuration file.
        #[arg(long)]
        config: PathBuf,
        file: PathBuf,
    },
    /// Replace the store with a backup or snapshot archive (the server must be stopped). The backup
    /// is verified with the seal key first: the key file, or the unseal keys with the Shamir seal.
    Restore {
        #[arg(long)]
        config: PathBuf,
        /// Shamir seal: read the unseal keys from standard input, one per line (hex or base64).
        #[arg(long)]
        unseal_keys_stdin: bool,
        file: PathBuf,
    },
    /// Copy every row of one store into another, empty one, SQLite or PostgreSQL either way (as
    /// `vault operator migrate`), then verify the copy. The rows stay sealed: the target needs the
    /// same seal key (copy the key file, or keep the unseal keys).
    Migrate {
        /// The configuration naming the store to copy (its `[storage]` and `[seal]` are used).
        #[arg(long)]
        from_config: PathBuf,
        /// The configuration naming the empty store to copy into.
        #[arg(long)]
        to_config: PathBuf,
    },
}

/// `kvseal operator restore`, reading the unseal keys from standard input when asked to: from a
/// duplicate of its descriptor, unbuffered, so that no copy of a key stays in `Stdin`'s buffer.
fn restore(
    config: &std::path::Path,
    file: &std::path::Path,
    keys_stdin: bool,
) -> Result<(), String> {
    if !keys_stdin {
        return kvseal::operator::restore(config, file, None);
    }
    use std::os::fd::AsFd;
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("standard input: {e}"))?;
    let mut stdin = std::fs::File::from(fd);
    kvseal::operator::restore(config, file, Some(&mut stdin))
}

#[derive(Args)]
struct ServerArgs {
    /// Development mode: temporary storage, initialised and unsealed, a kv-v2 mount at secret/, plain
    /// HTTP (as `vault server -dev`). Nothing is kept.
    #[arg(long)]
    dev: bool,
    /// The root token in dev mode (random when not given).
    #[arg(long, requires = "dev")]
    dev_root_token_id: Option<String>,
    /// The address to listen on in dev mode.
    #[arg(long, requires = "dev", default_value = "127.0.0.1:8200")]
    dev_listen_address: SocketAddr,
    /// The OKMS domain id (a UUID) backed by secret/ in dev mode.
    #[arg(long, requires = "dev")]
    dev_okms_id: Option<uuid::Uuid>,
    /// Dev mode over HTTPS with a throwaway CA (as `vault server -dev-tls`); the CA's path is printed.
    #[arg(long, requires = "dev")]
    dev_tls: bool,
    /// Dev mode with its store in this empty PostgreSQL database (postgres://…), instead of a
    /// temporary directory: for trying the PostgreSQL backend, and for its client tests.
    #[arg(long, requires = "dev")]
    dev_postgresql_url: Option<String>,
    /// The configuration file (TOML; see config.example.toml).
    #[arg(long, conflicts_with = "dev", required_unless_present = "dev")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Operator(op) => {
            let result = match op {
                OperatorCommand::Backup { config, file } => {
                    kvseal::operator::backup(&config, &file)
                }
                OperatorCommand::Restore {
                    config,
                    unseal_keys_stdin,
                    file,
                } => restore(&config, &file, unseal_keys_stdin),
                OperatorCommand::Migrate {
                    from_config,
                    to_config,
                } => kvseal::operator::migrate(&from_config, &to_config),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Server(a) => {
            let mode = if a.dev {
                kvseal::server::Mode::Dev {
                    root_token: a.dev_root_token_id,
                    address: a.dev_listen_address,
                    okms_id: a.dev_okms_id,
                    tls: a.dev_tls,
                    postgresql_url: a.dev_postgresql_url,
                }
            } else {
                match a.config {
                    Some(path) => match kvseal::config::Config::load(&path) {
                        Ok(cfg) => kvseal::server::Mode::Config(Box::new(cfg)),
                        Err(e) => {
                            eprintln!("error: {e}");
                            return ExitCode::from(2);
                        }
                    },
                    None => {
                        eprintln!("error: either --dev or --config FILE is required");
                        return ExitCode::from(2);
                    }
                }
            };
            match kvseal::server::run(mode) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
