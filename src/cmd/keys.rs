//! `fieldkit keys`: ed25519 key pairs in the PEM forms OpenSSL writes.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fieldkit_core::Home;
use fieldkit_trust::KeyId;
use fieldkit_trust::keys::{generate, private_key_to_pem, public_key_to_pem};
use serde::Serialize;

use crate::cmd::material;
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Make an ed25519 key pair: NAME.key.pem (PKCS#8) and NAME.pub.pem (SPKI).
    Generate {
        /// Base name of the two files (letters, digits, '.', '_', '-').
        #[arg(long)]
        name: String,
        /// Directory to write to; default: the home's keys/.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Show the key id (hex SHA-256 of the raw public key) of a PEM key file.
    Show {
        /// A private (PKCS#8) or public (SPKI) PEM file, ours or OpenSSL's.
        file: PathBuf,
    },
}

#[derive(Serialize)]
struct Generated {
    name: String,
    key_id: KeyId,
    private_key: PathBuf,
    public_key: PathBuf,
}

#[derive(Serialize)]
struct Shown {
    file: PathBuf,
    kind: &'static str,
    key_id: KeyId,
    public_key_hex: String,
}

pub(crate) fn run(home: &Home, out: &Output, args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Generate { name, out: dir } => {
            let dir = dir.unwrap_or_else(|| home.keys_dir());
            let g = generate_pair(&name, &dir)?;
            out.print(&g, || {
                format!(
                    "Key id       {}\nPrivate key  {} (keep it secret)\nPublic key   {}\n",
                    g.key_id,
                    g.private_key.display(),
                    g.public_key.display()
                )
            });
        }
        Command::Show { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading key {}", file.display()))?;
            let key = material::public_key(&file)?;
            let s = Shown {
                kind: if text.contains("PRIVATE KEY") {
                    "private"
                } else {
                    "public"
                },
                key_id: KeyId::of(&key),
                public_key_hex: hex::encode(key.as_bytes()),
                file,
            };
            out.print(&s, || {
                format!(
                    "{} ed25519 {} key, id {}\n",
                    s.file.display(),
                    s.kind,
                    s.key_id
                )
            });
        }
    }
    Ok(())
}

fn generate_pair(name: &str, dir: &Path) -> anyhow::Result<Generated> {
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        bail!(
            "key name {name:?}: required letters, digits, '.', '_' or '-', not starting with '.'"
        );
    }
    fieldkit_private::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let private = dir.join(format!("{name}.key.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    for p in [&private, &public] {
        if p.exists() {
            bail!(
                "{} already exists; required a name not in use (keys are never overwritten)",
                p.display()
            );
        }
    }
    let key = generate(&mut rand::rngs::OsRng);
    write_new(&private, private_key_to_pem(&key).as_bytes())?;
    write_new(&public, public_key_to_pem(&key.verifying_key()).as_bytes())?;
    Ok(Generated {
        name: name.to_owned(),
        key_id: KeyId::of(&key.verifying_key()),
        private_key: private,
        public_key: public,
    })
}

/// Creates `path` (`0600`, like every file fieldkit writes), failing if it exists.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = fieldkit_private::create_new(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
