//! `fieldkit image`: sign and inspect MCUboot images (imgtool-compatible).

use std::path::PathBuf;

use anyhow::{Context, bail};
use fieldkit_core::Home;
use fieldkit_mcuboot::{Dependency, Image, ImageVersion, SignOptions, Tlv, flags, tlv};
use fieldkit_trust::KeyId;
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
    /// Make a signed MCUboot image of a raw firmware binary, as `imgtool sign --pad-header`.
    #[command(disable_version_flag = true)]
    Sign {
        /// Private key (ed25519 PKCS#8 PEM).
        #[arg(long, value_name = "PRIV")]
        key: PathBuf,
        /// Image version: 1.2.3, 1.2.3+45 (imgtool) or 1.2.3.45 (SMP).
        #[arg(long, value_name = "V")]
        version: ImageVersion,
        /// Security counter (protected SEC_CNT TLV).
        #[arg(long, value_name = "N")]
        security_counter: Option<u32>,
        /// Needs image IMAGE at VERSION or later (protected DEPENDENCY TLV); repeat for more.
        #[arg(long, value_name = "IMAGE,VERSION", value_parser = parse_dependency)]
        dependency: Vec<Dependency>,
        /// Header size in bytes (imgtool's --header-size); decimal or 0x hex.
        #[arg(long, value_name = "N", default_value = "0x200", value_parser = parse_number)]
        header_size: u32,
        /// Load address (sets RAM_LOAD when not zero); decimal or 0x hex.
        #[arg(long, value_name = "ADDR", default_value = "0", value_parser = parse_number)]
        load_addr: u32,
        /// The raw firmware binary.
        input: PathBuf,
        /// Where to write the image.
        output: PathBuf,
    },
    /// Read an MCUboot image (ours or imgtool's): header, TLVs, dependencies, security counter;
    /// check its SHA256 TLV and, with --key or against the home's trust root, its signature.
    Inspect {
        /// Public key to verify the ED25519 signature with.
        #[arg(long, value_name = "PUB")]
        key: Option<PathBuf>,
        /// The image.
        file: PathBuf,
    },
}

fn parse_number(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?}: {e}; required a number (decimal or 0x hex)"))
}

fn parse_dependency(s: &str) -> Result<Dependency, String> {
    let (image, version) = s
        .split_once(',')
        .ok_or_else(|| format!("{s:?}: required IMAGE,VERSION (e.g. 1,1.5.0)"))?;
    let image: u8 = image
        .trim()
        .parse()
        .map_err(|e| format!("image number {image:?}: {e}; required 0 to 255"))?;
    let min_version = version
        .trim()
        .parse()
        .map_err(|e: fieldkit_mcuboot::VersionError| e.to_string())?;
    Ok(Dependency { image, min_version })
}

#[derive(Serialize)]
struct DependencyView {
    image: u8,
    min_version: String,
}

fn deps(list: &[Dependency]) -> Vec<DependencyView> {
    list.iter()
        .map(|d| DependencyView {
            image: d.image,
            min_version: d.min_version.to_string(),
        })
        .collect()
}

#[derive(Serialize)]
struct Signed {
    output: PathBuf,
    version: String,
    size: usize,
    hash: String,
    key_id: KeyId,
    security_counter: Option<u32>,
    dependencies: Vec<DependencyView>,
}

#[derive(Serialize)]
struct HeaderView {
    magic: String,
    load_addr: String,
    hdr_size: u16,
    protect_tlv_size: u16,
    img_size: u32,
    flags: Vec<&'static str>,
    version: String,
}

#[derive(Serialize)]
struct TlvView {
    kind: String,
    name: &'static str,
    len: usize,
    value: String,
}

#[derive(Serialize)]
struct SignatureView {
    /// `verified`, `failed`, `not-checked` or `absent`.
    status: &'static str,
    key_id: Option<KeyId>,
    /// The trust-root role of the key, when checked against the home's root.
    role: Option<String>,
    detail: String,
}

#[derive(Serialize)]
struct Inspected {
    file: PathBuf,
    size: usize,
    header: HeaderView,
    version: String,
    imgtool_version: String,
    protected_tlvs: Vec<TlvView>,
    tlvs: Vec<TlvView>,
    dependencies: Vec<DependencyView>,
    security_counter: Option<u32>,
    hash: String,
    hash_ok: bool,
    hash_detail: String,
    signature: SignatureView,
    trailing_bytes: usize,
}

fn tlv_name(kind: u16) -> &'static str {
    match kind {
        tlv::KEYHASH => "KEYHASH",
        tlv::PUBKEY => "PUBKEY",
        tlv::SHA256 => "SHA256",
        tlv::ED25519 => "ED25519",
        tlv::SIG_PURE => "SIG_PURE",
        tlv::DEPENDENCY => "DEPENDENCY",
        tlv::SEC_CNT => "SEC_CNT",
        _ => "other",
    }
}

fn tlvs(list: &[Tlv]) -> Vec<TlvView> {
    list.iter()
        .map(|t| TlvView {
            kind: format!("{:#04x}", t.kind),
            name: tlv_name(t.kind),
            len: t.value.len(),
            value: hex::encode(&t.value),
        })
        .collect()
}

fn flag_names(f: u32) -> Vec<&'static str> {
    [
        (flags::PIC, "PIC"),
        (flags::ENCRYPTED_AES128, "ENCRYPTED_AES128"),
        (flags::ENCRYPTED_AES256, "ENCRYPTED_AES256"),
        (flags::NON_BOOTABLE, "NON_BOOTABLE"),
        (flags::RAM_LOAD, "RAM_LOAD"),
        (flags::ROM_FIXED, "ROM_FIXED"),
    ]
    .into_iter()
    .filter(|(bit, _)| f & bit != 0)
    .map(|(_, n)| n)
    .collect()
}

/// Images larger than this are not read whole (MCUboot slots are far smaller).
const MAX_IMAGE: u64 = 256 << 20;

pub(crate) fn run(home: &Home, out: &Output, args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Sign {
            key,
            version,
            security_counter,
            dependency,
            header_size,
            load_addr,
            input,
            output,
        } => {
            let key = material::private_key(&key)?;
            let header_size = u16::try_from(header_size).map_err(|_| {
                anyhow::anyhow!("--header-size {header_size}: required at most 65535")
            })?;
            let payload = std::fs::read(&input)
                .with_context(|| format!("reading firmware {}", input.display()))?;
            let opts = SignOptions {
                header_size,
                load_addr,
                security_counter,
                dependencies: dependency.clone(),
                key: Some(&key),
                ..SignOptions::new(version)
            };
            let bytes = fieldkit_mcuboot::sign(&payload, &opts)
                .with_context(|| format!("signing {}", input.display()))?;
            let hash = Image::parse(&bytes)
                .and_then(|i| i.verify_hash())
                .context("reading back the signed image")?;
            material::write_out(&output, &bytes)?;
            let s = Signed {
                output,
                version: version.to_string(),
                size: bytes.len(),
                hash: hex::encode(hash),
                key_id: KeyId::of(&key.verifying_key()),
                security_counter,
                dependencies: deps(&dependency),
            };
            out.print(&s, || {
                let mut t = format!(
                    "Signed image {} ({} bytes)\nVersion      {}\nHash         {}\nKey          {}\n",
                    s.output.display(),
                    s.size,
                    s.version,
                    s.hash,
                    s.key_id
                );
                if let Some(c) = s.security_counter {
                    t += &format!("Security     counter {c}\n");
                }
                for d in &s.dependencies {
                    t += &format!("Needs        image {} >= {}\n", d.image, d.min_version);
                }
                t
            });
            Ok(())
        }
        Command::Inspect { key, file } => inspect(home, out, key, file),
    }
}

fn inspect(home: &Home, out: &Output, key: Option<PathBuf>, file: PathBuf) -> anyhow::Result<()> {
    let len = std::fs::metadata(&file)
        .with_context(|| format!("reading image {}", file.display()))?
        .len();
    if len > MAX_IMAGE {
        bail!(
            "{}: {len} bytes; required at most {MAX_IMAGE} for an MCUboot image",
            file.display()
        );
    }
    let bytes =
        std::fs::read(&file).with_context(|| format!("reading image {}", file.display()))?;
    let img = Image::parse(&bytes).with_context(|| format!("{}", file.display()))?;
    let computed = hex::encode(img.compute_hash());
    let (hash_ok, hash_detail) = match img.verify_hash() {
        Ok(_) => (true, "matches the SHA256 TLV".to_owned()),
        Err(e) => (false, e.to_string()),
    };
    let has_sig = img.tlvs().iter().any(|t| t.kind == tlv::ED25519);
    let signature = if !has_sig {
        SignatureView {
            status: "absent",
            key_id: None,
            role: None,
            detail: "no ED25519 TLV".into(),
        }
    } else if let Some(path) = &key {
        let k = material::public_key(path)?;
        match img.verify_ed25519(&k) {
            Ok(()) => SignatureView {
                status: "verified",
                key_id: Some(KeyId::of(&k)),
                role: None,
                detail: format!("verified with {}", path.display()),
            },
            Err(e) => SignatureView {
                status: "failed",
                key_id: Some(KeyId::of(&k)),
                role: None,
                detail: e.to_string(),
            },
        }
    } else {
        // Without --key, say whether a key of the installed trust root signed it.
        let found = fieldkit_core::trust_store::load_root(home)
            .ok()
            .and_then(|root| {
                root.metadata().roles.keys().find_map(|role| {
                    root.role_keys(role)?
                        .into_iter()
                        .find(|(_, k)| img.verify_ed25519(k).is_ok())
                        .map(|(id, _)| (id, role.clone()))
                })
            });
        match found {
            Some((id, role)) => SignatureView {
                status: "verified",
                key_id: Some(id),
                detail: format!("signed by a {role} key of the installed trust root"),
                role: Some(role),
            },
            None => SignatureView {
                status: "not-checked",
                key_id: None,
                role: None,
                detail: "no --key given and no key of the installed trust root verifies it".into(),
            },
        }
    };
    let h = img.header();
    let v = Inspected {
        file: file.clone(),
        size: bytes.len(),
        header: HeaderView {
            magic: format!("{:#010x}", fieldkit_mcuboot::ImageHeader::MAGIC),
            load_addr: format!("{:#010x}", h.load_addr),
            hdr_size: h.hdr_size,
            protect_tlv_size: h.protect_tlv_size,
            img_size: h.img_size,
            flags: flag_names(h.flags),
            version: h.version.to_string(),
        },
        version: img.version().to_string(),
        imgtool_version: img.version().to_imgtool_string(),
        protected_tlvs: tlvs(img.protected_tlvs()),
        tlvs: tlvs(img.tlvs()),
        dependencies: deps(&img.dependencies()),
        security_counter: img.security_counter(),
        hash: computed,
        hash_ok,
        hash_detail,
        signature,
        trailing_bytes: img.trailing().len(),
    };
    out.print(&v, || render(&v));
    if !v.hash_ok {
        bail!("{}: {}", file.display(), v.hash_detail);
    }
    if v.signature.status == "failed" {
        bail!(
            "{}: signature check with {} failed: {}",
            file.display(),
            key.map(|p| p.display().to_string()).unwrap_or_default(),
            v.signature.detail
        );
    }
    if key.is_some() && v.signature.status == "absent" {
        bail!(
            "{}: no ED25519 TLV; required a signature to check against --key",
            file.display()
        );
    }
    if let Err(e) = img.check_protected() {
        bail!("{}: {e}", file.display());
    }
    Ok(())
}

fn render(v: &Inspected) -> String {
    let mut s = format!("MCUboot image {} ({} bytes)\n", v.file.display(), v.size);
    s += &format!(
        "Version      {} (imgtool {})\n",
        v.version, v.imgtool_version
    );
    s += &format!(
        "Header       {} bytes, payload {} bytes, protected TLVs {} bytes, load address {}{}\n",
        v.header.hdr_size,
        v.header.img_size,
        v.header.protect_tlv_size,
        v.header.load_addr,
        if v.header.flags.is_empty() {
            String::new()
        } else {
            format!(", flags {}", v.header.flags.join(" "))
        }
    );
    if let Some(c) = v.security_counter {
        s += &format!("Security     counter {c}\n");
    }
    for d in &v.dependencies {
        s += &format!("Needs        image {} >= {}\n", d.image, d.min_version);
    }
    s += &format!(
        "Hash         {} {}\n",
        v.hash,
        if v.hash_ok { "ok" } else { "MISMATCH" }
    );
    s += &format!(
        "Signature    {}: {}{}\n",
        v.signature.status,
        v.signature.detail,
        v.signature
            .key_id
            .as_ref()
            .map(|k| format!(" (key {k})"))
            .unwrap_or_default()
    );
    for (area, list) in [("protected", &v.protected_tlvs), ("unprotected", &v.tlvs)] {
        for t in list {
            let value = if t.value.len() > 32 {
                format!("{}...", &t.value[..32])
            } else {
                t.value.clone()
            };
            s += &format!(
                "  {:<11} TLV {} {:<10} {:>3} bytes  {}\n",
                area, t.kind, t.name, t.len, value
            );
        }
    }
    if v.trailing_bytes > 0 {
        s += &format!("Trailing     {} bytes after the image\n", v.trailing_bytes);
    }
    s
}
