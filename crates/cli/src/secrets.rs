//! `selfhelp secrets init DIR`: the secrets a deployment needs, made at its
//! first start instead of shipped with it. Each is a file of its own in `DIR`;
//! one already there is kept, so running it at every start is safe and an
//! operator who brings their own secrets puts them there first.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The files made, and what each is for.
pub const SECRETS: [(&str, &str); 8] = [
    ("hs256-secret", "the HS256 secret tokens are signed with"),
    ("postgres-password", "the PostgreSQL superuser's password"),
    ("listings-nats-password", "listings' NATS password"),
    ("membership-nats-password", "membership's NATS password"),
    (
        "notifications-nats-password",
        "notifications' NATS password",
    ),
    ("gateway-nats-password", "the gateway's NATS password"),
    (
        "outside-nats-password",
        "the partner (outside-subscriber) NATS password",
    ),
    (
        "operator-nats-password",
        "the operators' read-only NATS password (selfhelp events tail)",
    ),
];

#[derive(Debug, clap::Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SecretsCommand {
    /// Make the deployment's secrets in DIR (each a file; existing ones are
    /// kept): the HS256 secret, the PostgreSQL password and the NATS users'
    /// passwords. Files are readable by every user (0644), since the
    /// containers reading them run as different users: keep DIR where only
    /// the deployment's own containers see it (compose: a volume).
    Init {
        /// The folder to make them in.
        dir: PathBuf,
    },
}

pub fn run(args: SecretsArgs) -> anyhow::Result<()> {
    match args.command {
        SecretsCommand::Init { dir } => {
            for line in init(&dir)? {
                println!("{line}");
            }
            Ok(())
        }
    }
}

/// Makes the missing secrets in `dir`; a line per secret saying what was done.
pub fn init(dir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let mut said = Vec::new();
    for (name, what) in SECRETS {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(kept) if !kept.trim().is_empty() => {
                said.push(format!("kept {name} ({what})"));
                continue;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("reading {}: {e}", path.display()),
        }
        // 64 hex characters: 256 bits, and nothing a URL or a NATS
        // configuration would have to escape.
        write_new(&path, &selfhelp_platform::auth::generate_secret())?;
        said.push(format!("made {name} ({what})"));
    }
    Ok(said)
}

/// Writes `contents` to `path` through a temporary file, so a reader never
/// sees half a secret and a crash leaves none.
fn write_new(path: &Path, contents: &str) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", partial.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644))?;
    }
    std::fs::rename(&partial, path)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_each_secret_once_and_keeps_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("postgres-password"),
            "brought-by-the-operator",
        )
        .unwrap();
        let said = init(dir.path()).unwrap();
        assert_eq!(said.len(), SECRETS.len());
        assert!(said.iter().any(|l| l.starts_with("kept postgres-password")));
        let first: Vec<String> = SECRETS
            .iter()
            .map(|(name, _)| std::fs::read_to_string(dir.path().join(name)).unwrap())
            .collect();
        assert_eq!(first[1], "brought-by-the-operator");
        for (made, (name, _)) in first.iter().zip(SECRETS) {
            if name != "postgres-password" {
                assert_eq!(made.len(), 64, "{name}");
            }
        }
        // Each made afresh: no two alike.
        let mut unique = first.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), first.len());
        // A second run changes nothing.
        let again = init(dir.path()).unwrap();
        assert!(again.iter().all(|l| l.starts_with("kept ")), "{again:?}");
        let second: Vec<String> = SECRETS
            .iter()
            .map(|(name, _)| std::fs::read_to_string(dir.path().join(name)).unwrap())
            .collect();
        assert_eq!(first, second);
    }
}
