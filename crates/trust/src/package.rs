//! `.fkpkg` packages: building, and streaming verification in bounded memory.
//!
//! A package is a tar whose members come in a fixed order: the format marker
//! `fieldkit-package`, `manifest.json`, `manifest.sig`, `sbom.cdx.json`, then
//! `payloads/<file>` for each payload in manifest order. Data comes last, so the signature and
//! every piece of metadata are checked before the first payload byte is read.
//!
//! The reader is deliberately stricter than tar: every header must be byte-for-byte the one
//! [`build_package`] writes for that name and size (ustar, mode 0644, owner 0, mtime 0), padding
//! must be zero, the archive must end with exactly two zero blocks and then end of input. So
//! any change to any byte of a package, and any byte appended to it, is refused; and no
//! extension header (GNU long names, PAX) can make the reader allocate what a header declares.
//! Memory use is the metadata (bounded by [`Limits`]) plus one 64 KiB buffer.

use std::io::{self, Read, Write};

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use fieldkit_mcuboot::{Dependency, Image, ImageStream};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, TrustError};
use crate::finding::Finding;
use crate::keys::KeyId;
use crate::manifest::{Manifest, PayloadFormat};
use crate::root::TrustRoot;
use crate::rules;
use crate::sbom::{SbomSummary, validate_sbom};
use crate::signed::{self, Signature};

/// Name of the format marker member.
pub const MARKER_NAME: &str = "fieldkit-package";
/// Content of the format marker member.
pub const MARKER: &[u8] = b"fieldkit-package/1\n";
/// Name of the manifest member.
pub const MANIFEST_NAME: &str = "manifest.json";
/// Name of the signatures member.
pub const SIGNATURES_NAME: &str = "manifest.sig";
/// Name of the SBOM member.
pub const SBOM_NAME: &str = "sbom.cdx.json";
/// Directory of payload members.
pub const PAYLOAD_DIR: &str = "payloads/";
/// Domain prefix of manifest signatures.
pub const MANIFEST_DOMAIN: &str = "manifest";

const BLOCK: usize = 512;
const CHUNK: usize = 64 * 1024;

/// Upper bounds on what a package may declare; checked before anything is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of `manifest.json`.
    pub manifest: u64,
    /// Bytes of `manifest.sig`.
    pub signatures: u64,
    /// Bytes of the SBOM.
    pub sbom: u64,
    /// Bytes of one payload.
    pub payload: u64,
    /// Number of payloads.
    pub payloads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            manifest: 1 << 20,
            signatures: 64 << 10,
            sbom: 16 << 20,
            payload: 1 << 32,
            payloads: 16,
        }
    }
}

/// The `manifest.sig` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSignatures {
    /// Signatures over `"manifest/" + manifest.json bytes`.
    pub signatures: Vec<Signature>,
}

fn structure(found: impl Into<String>, required: impl Into<String>) -> TrustError {
    TrustError::refused(
        rules::PACKAGE_STRUCTURE,
        found,
        required,
        "The package file is not laid out as fieldkit writes packages; it may have been altered.",
    )
}

fn canonical_header(name: &str, size: u64) -> Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).map_err(|e| {
        structure(
            format!("member name {name:?}: {e}"),
            "a short relative name",
        )
    })?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

/// A file that does not even start like a package. Its bytes are never quoted: a file named as
/// a package may be anything (a symlink to a private file), and refusals reach the audit log.
pub fn not_a_package() -> TrustError {
    TrustError::refused(
        rules::NOT_A_PACKAGE,
        "a file that does not start with the fieldkit-package marker",
        format!("a fieldkit package: a tar whose first member is {MARKER_NAME:?}"),
        "The file named as a package is not a fieldkit package; nothing in it was used.",
    )
}

/// Whether `first_block` (the first 512 bytes, or all of a shorter file) starts like a
/// package: a tar header for the format marker. Decides before anything else is read.
pub fn looks_like_package(first_block: &[u8]) -> bool {
    first_block.len() == BLOCK
        && tar::Header::from_byte_slice(first_block)
            .path_bytes()
            .as_ref()
            == MARKER_NAME.as_bytes()
}

/// A member name as it may be shown: quoted when it is a valid package file name, described
/// otherwise (so no byte of a hostile file reaches a terminal or the audit log).
fn quoted_name(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(n)
            if n.strip_prefix(PAYLOAD_DIR).map_or(
                crate::manifest::valid_file_name(n),
                crate::manifest::valid_file_name,
            ) =>
        {
            format!("{n:?}")
        }
        _ => format!(
            "with a name that is not a valid file name ({} bytes)",
            name.len()
        ),
    }
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Builds a package: fills in the sizes and hashes of the SBOM and of each payload (and the
/// MCUboot image hash), checks what the builder can check (SBOM, payload versions against
/// MCUboot headers, manifest), signs the manifest with every key, and writes the tar to `out`.
/// Returns the manifest as written.
pub fn build_package(
    manifest: &Manifest,
    sbom: &[u8],
    payloads: &[&[u8]],
    keys: &[&SigningKey],
    mut out: impl Write,
) -> Result<Manifest> {
    let mut m = manifest.clone();
    if payloads.len() != m.payloads.len() {
        return Err(TrustError::refused(
            rules::MANIFEST_FORMAT,
            format!("{} payload files", payloads.len()),
            format!("{} as the manifest lists", m.payloads.len()),
            "Every payload the manifest lists needs its file.",
        ));
    }
    validate_sbom(sbom)?;
    m.sbom.size = sbom.len() as u64;
    m.sbom.sha256 = sha_hex(sbom);
    for (p, bytes) in m.payloads.iter_mut().zip(payloads) {
        p.size = bytes.len() as u64;
        p.sha256 = sha_hex(bytes);
        p.image_hash = None;
        if p.format == PayloadFormat::Mcuboot {
            let img = Image::parse(bytes).map_err(|e| image_error(&p.file, e))?;
            let digest = img.verify_hash().map_err(|e| image_error(&p.file, e))?;
            check_payload_version(&p.file, p.version, img.version())?;
            p.image_hash = Some(hex::encode(digest));
        }
    }
    m.validate(&Limits::default())?;
    let manifest_bytes = {
        let mut v = serde_json::to_vec_pretty(&m).unwrap_or_default();
        v.push(b'\n');
        v
    };
    let sigs = ManifestSignatures {
        signatures: keys
            .iter()
            .map(|k| signed::sign(k, MANIFEST_DOMAIN, &manifest_bytes))
            .collect(),
    };
    let sig_bytes = serde_json::to_vec_pretty(&sigs).unwrap_or_default();

    let io = |e: io::Error| TrustError::Io {
        what: "package output",
        source: e,
    };
    let mut b = tar::Builder::new(&mut out);
    let mut add = |name: &str, data: &[u8]| -> Result<()> {
        let h = canonical_header(name, data.len() as u64)?;
        b.append(&h, data).map_err(io)
    };
    add(MARKER_NAME, MARKER)?;
    add(MANIFEST_NAME, &manifest_bytes)?;
    add(SIGNATURES_NAME, &sig_bytes)?;
    add(SBOM_NAME, sbom)?;
    for (p, bytes) in m.payloads.iter().zip(payloads) {
        add(&format!("{PAYLOAD_DIR}{}", p.file), bytes)?;
    }
    b.finish().map_err(io)?;
    Ok(m)
}

/// What [`build_release`] built.
#[derive(Debug, Clone)]
pub struct BuiltRelease {
    /// The manifest as written.
    pub manifest: Manifest,
    /// Every component's licence verdict (none denied; flagged ones are for review).
    pub licences: Vec<crate::licences::ComponentLicence>,
}

/// The release engineer's build: [`build_package`] after the SBOM passed the release licence
/// `policy` (a denied component refuses the build, rule `package.licence`).
pub fn build_release(
    manifest: &Manifest,
    sbom: &[u8],
    payloads: &[&[u8]],
    keys: &[&SigningKey],
    policy: &fieldkit_licence::Policy,
    out: impl Write,
) -> Result<BuiltRelease> {
    let licences = crate::licences::check_licences(&validate_sbom(sbom)?, policy)?;
    let manifest = build_package(manifest, sbom, payloads, keys, out)?;
    Ok(BuiltRelease { manifest, licences })
}

fn image_error(file: &str, e: fieldkit_mcuboot::ImageError) -> TrustError {
    TrustError::refused(
        rules::PAYLOAD_IMAGE,
        format!("{file}: {e}"),
        "a well-formed MCUboot image signed by the component's image key",
        "The firmware image inside the package is damaged or not signed by the manufacturer.",
    )
}

fn check_payload_version(
    file: &str,
    declared: fieldkit_mcuboot::ImageVersion,
    header: fieldkit_mcuboot::ImageVersion,
) -> Result<()> {
    if declared != header {
        return Err(TrustError::refused(
            rules::PAYLOAD_VERSION,
            format!("{file}: MCUboot header says {header}"),
            format!("{declared} as the manifest says"),
            "The image's own version must equal the version the signed manifest declares (mix-and-match protection).",
        ));
    }
    Ok(())
}

/// What verification established about one payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedPayload {
    /// Component name.
    pub component: String,
    /// Hex SHA-256 of the member.
    pub sha256: String,
    /// Hex MCUboot image hash (`mcuboot` payloads).
    pub image_hash: Option<String>,
    /// MCUboot security counter TLV, if any.
    pub security_counter: Option<u32>,
    /// MCUboot DEPENDENCY TLVs.
    #[serde(skip)]
    pub dependencies: Vec<Dependency>,
    /// Key that verified the MCUboot signature.
    pub image_signed_by: Option<KeyId>,
}

/// A package whose every member checked out.
#[derive(Debug, Clone, Serialize)]
pub struct VerifiedPackage {
    /// The manifest.
    pub manifest: Manifest,
    /// Release keys whose signatures verified (empty when inspected without a root).
    pub signed_by: Vec<KeyId>,
    /// The SBOM summary.
    pub sbom: SbomSummary,
    /// Payload results, in manifest order.
    pub payloads: Vec<VerifiedPayload>,
    /// The rules that were checked, all passed.
    pub findings: Vec<Finding>,
    /// Total bytes read.
    pub total_size: u64,
    /// Hex SHA-256 of `manifest.json` exactly as signed.
    pub manifest_sha256: String,
    /// Hex SHA-256 of the whole package file as read: names the package by its bytes.
    pub file_sha256: String,
}

/// Reads the tar strictly; see the module documentation. Every byte read also goes into
/// `file_hash`, so a verified package is named by the SHA-256 of exactly the bytes verified.
struct Reader<R> {
    inner: R,
    read: u64,
    file_hash: Sha256,
}

impl<R: Read> Reader<R> {
    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.read += buf.len() as u64;
                self.file_hash.update(&*buf);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(structure(
                format!("end of input after {} bytes in {what}", self.read),
                format!("the complete {what}"),
            )),
            Err(e) => Err(TrustError::Io {
                what: "package",
                source: e,
            }),
        }
    }

    /// Reads the header of the next member, which must be `name`; returns its size.
    fn member(&mut self, name: &str, max: u64) -> Result<u64> {
        let mut block = [0u8; BLOCK];
        self.fill(&mut block, &format!("the header of {name}"))?;
        if block.iter().all(|&b| b == 0) {
            return Err(structure("end of archive", format!("member {name}")));
        }
        let header = tar::Header::from_byte_slice(&block);
        if header.path_bytes().as_ref() != name.as_bytes() {
            if name == MARKER_NAME {
                return Err(not_a_package());
            }
            return Err(structure(
                format!("member {}", quoted_name(&header.path_bytes())),
                format!("member {name:?}"),
            ));
        }
        let size = header
            .entry_size()
            .map_err(|e| structure(format!("{name}: size field: {e}"), "an octal size"))?;
        if canonical_header(name, size)?.as_bytes()[..] != block[..] {
            return Err(structure(
                format!("a non-canonical tar header for {name}"),
                "the header fieldkit writes (ustar, regular file, mode 0644, owner 0, time 0)",
            ));
        }
        if size > max {
            return Err(TrustError::refused(
                rules::PACKAGE_SIZE,
                format!("{name}: {size} bytes"),
                format!("at most {max} bytes"),
                "A package member is larger than allowed; it is refused before reading it.",
            ));
        }
        Ok(size)
    }

    /// Reads `size` bytes of data in chunks, then the zero padding to the next block.
    fn data(
        &mut self,
        name: &str,
        size: u64,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut buf = vec![0u8; CHUNK.min(size as usize).max(1)];
        let mut left = size;
        while left > 0 {
            let n = (left as usize).min(buf.len());
            self.fill(&mut buf[..n], name)?;
            each(&buf[..n])?;
            left -= n as u64;
        }
        let pad = (BLOCK - (size as usize % BLOCK)) % BLOCK;
        let mut padding = [0u8; BLOCK];
        self.fill(&mut padding[..pad], &format!("the padding of {name}"))?;
        if padding.iter().any(|&b| b != 0) {
            return Err(structure(
                format!("non-zero padding after {name}"),
                "zero padding",
            ));
        }
        Ok(())
    }

    fn small(&mut self, name: &str, max: u64) -> Result<Vec<u8>> {
        let size = self.member(name, max)?;
        let mut v = Vec::with_capacity(size as usize);
        self.data(name, size, |c| {
            v.extend_from_slice(c);
            Ok(())
        })?;
        Ok(v)
    }

    fn end(&mut self) -> Result<()> {
        let mut blocks = [0u8; 2 * BLOCK];
        self.fill(&mut blocks, "the end-of-archive marker")?;
        if blocks.iter().any(|&b| b != 0) {
            let header = tar::Header::from_byte_slice(&blocks[..BLOCK]);
            return Err(structure(
                format!(
                    "another member {} after the last payload",
                    quoted_name(&header.path_bytes())
                ),
                "the end of the archive",
            ));
        }
        let mut one = [0u8; 1];
        loop {
            match self.inner.read(&mut one) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    return Err(structure(
                        format!("data after the end of the archive at byte {}", self.read),
                        "end of input",
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(TrustError::Io {
                        what: "package",
                        source: e,
                    });
                }
            }
        }
    }
}

fn digest_check(
    name: &str,
    found_size: u64,
    found: &str,
    required_size: u64,
    required: &str,
) -> Result<()> {
    if found_size != required_size || found != required {
        return Err(TrustError::refused(
            rules::PACKAGE_DIGEST,
            format!("{name}: {found_size} bytes, sha256 {found}"),
            format!("{required_size} bytes, sha256 {required}"),
            "A package member does not match the signed manifest; the package was altered or assembled from parts of different packages.",
        ));
    }
    Ok(())
}

/// Verifies a package against `root` at trusted time `now`, reading `input` once. Payload
/// bytes are passed to `sink(payload_index, chunk)` as they stream past, before their hash is
/// known to be right: a sink must discard what it received if verification fails.
pub fn verify_package_with(
    input: impl Read,
    root: &TrustRoot,
    now: DateTime<Utc>,
    limits: &Limits,
    sink: &mut dyn FnMut(usize, &[u8]) -> io::Result<()>,
) -> Result<VerifiedPackage> {
    read_package(input, Some((root, Some(now))), limits, sink)
}

/// [`verify_package_with`] without the time rules (root and metadata expiry): signatures,
/// structure, digests, SBOM and images only. For the planner, which evaluates expiry as one
/// of its rules at trusted "now", so an expired package is shown with its rule rather than
/// set aside.
pub fn verify_package_signed(
    input: impl Read,
    root: &TrustRoot,
    limits: &Limits,
    sink: &mut dyn FnMut(usize, &[u8]) -> io::Result<()>,
) -> Result<VerifiedPackage> {
    read_package(input, Some((root, None)), limits, sink)
}

/// [`verify_package_with`] without a sink.
pub fn verify_package(
    input: impl Read,
    root: &TrustRoot,
    now: DateTime<Utc>,
) -> Result<VerifiedPackage> {
    verify_package_with(input, root, now, &Limits::default(), &mut |_, _| Ok(()))
}

/// Reads a package and checks its structure, hashes, SBOM and MCUboot headers, but not its
/// signatures, expiry or image signatures: for showing what a package claims to be.
pub fn inspect_package(input: impl Read, limits: &Limits) -> Result<VerifiedPackage> {
    read_package(input, None, limits, &mut |_, _| Ok(()))
}

fn read_package(
    input: impl Read,
    trust: Option<(&TrustRoot, Option<DateTime<Utc>>)>,
    limits: &Limits,
    sink: &mut dyn FnMut(usize, &[u8]) -> io::Result<()>,
) -> Result<VerifiedPackage> {
    let mut r = Reader {
        inner: input,
        read: 0,
        file_hash: Sha256::new(),
    };
    let mut findings = Vec::new();

    let marker = r.small(MARKER_NAME, MARKER.len() as u64)?;
    if marker != MARKER {
        return Err(structure(
            format!(
                "a format marker of {} bytes that is not this format's",
                marker.len()
            ),
            format!("{:?}", String::from_utf8_lossy(MARKER)),
        ));
    }
    let manifest_bytes = r.small(MANIFEST_NAME, limits.manifest)?;
    let sig_bytes = r.small(SIGNATURES_NAME, limits.signatures)?;
    let sigs: ManifestSignatures = serde_json::from_slice(&sig_bytes).map_err(|e| {
        structure(
            format!("manifest.sig: {e}"),
            "a JSON object with a signatures list",
        )
    })?;

    let mut signed_by = Vec::new();
    if let Some((root, now)) = trust {
        if let Some(now) = now {
            let f = root.check_expiry(now);
            if !f.passed {
                return Err(f.into());
            }
            findings.push(f);
        }
        signed_by = root.verify_role(
            "package manifest",
            "release",
            MANIFEST_DOMAIN,
            &manifest_bytes,
            &sigs.signatures,
        )?;
        findings.push(Finding::pass(
            rules::SIGNATURE_THRESHOLD,
            format!("{} release signature(s)", signed_by.len()),
            format!("{}", root.metadata().roles["release"].threshold),
            "The package manifest is signed by the manufacturer's release keys.",
        ));
    }
    // Parsed only now: with a root, only signed bytes reach the JSON parser.
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
        TrustError::refused(
            rules::MANIFEST_FORMAT,
            e.to_string(),
            "a manifest of format 1",
            "The package manifest is not valid.",
        )
    })?;
    manifest.validate(limits)?;
    if let Some((_, Some(now))) = trust {
        let f = manifest.check_expiry(now);
        if !f.passed {
            return Err(f.into());
        }
        findings.push(f);
    }

    let size = r.member(SBOM_NAME, limits.sbom)?;
    let mut sbom = Vec::with_capacity(size as usize);
    r.data(SBOM_NAME, size, |c| {
        sbom.extend_from_slice(c);
        Ok(())
    })?;
    digest_check(
        SBOM_NAME,
        size,
        &sha_hex(&sbom),
        manifest.sbom.size,
        &manifest.sbom.sha256,
    )?;
    let sbom = validate_sbom(&sbom)?;

    let mut payloads = Vec::new();
    for (i, p) in manifest.payloads.iter().enumerate() {
        let name = format!("{PAYLOAD_DIR}{}", p.file);
        let size = r.member(&name, limits.payload)?;
        if size != p.size {
            digest_check(&name, size, "(not read)", p.size, &p.sha256)?;
        }
        let mut image = (p.format == PayloadFormat::Mcuboot).then(ImageStream::new);
        let mut hasher = Sha256::new();
        r.data(&name, size, |chunk| {
            match image.as_mut() {
                // One SHA-256 pass serves both the file hash and the MCUboot hash.
                Some(s) => s.update(chunk).map_err(|e| image_error(&p.file, e))?,
                None => hasher.update(chunk),
            }
            sink(i, chunk).map_err(|e| TrustError::Io {
                what: "payload sink",
                source: e,
            })
        })?;
        let mut out = VerifiedPayload {
            component: p.component.clone(),
            sha256: String::new(),
            image_hash: None,
            security_counter: None,
            dependencies: Vec::new(),
            image_signed_by: None,
        };
        match image {
            None => out.sha256 = hex::encode(hasher.finalize()),
            Some(s) => {
                let img = s.finish().map_err(|e| image_error(&p.file, e))?;
                out.sha256 = hex::encode(img.file_sha256());
                digest_check(&name, size, &out.sha256, p.size, &p.sha256)?;
                if img.trailing_len() != 0 {
                    return Err(image_error(
                        &p.file,
                        fieldkit_mcuboot::ImageError::Truncated {
                            what: "image without trailing bytes",
                            found: img.len() + img.trailing_len(),
                            required: img.len(),
                        },
                    ));
                }
                img.check_protected().map_err(|e| image_error(&p.file, e))?;
                let image_hash =
                    hex::encode(img.verify_hash().map_err(|e| image_error(&p.file, e))?);
                if p.image_hash.as_deref().is_some_and(|h| h != image_hash) {
                    digest_check(
                        &name,
                        size,
                        &image_hash,
                        p.size,
                        p.image_hash.as_deref().unwrap_or(""),
                    )?;
                }
                check_payload_version(&p.file, p.version, img.version())?;
                if let Some((root, _)) = trust {
                    let keys = root.role_keys(&p.image_key).ok_or_else(|| {
                        TrustError::refused(
                            rules::PAYLOAD_IMAGE,
                            format!("image key role {:?}", p.image_key),
                            "a role of the trust root",
                            "The package names an image key the trust root does not have.",
                        )
                    })?;
                    let mut last = None;
                    for (id, key) in &keys {
                        match img.verify_ed25519(key) {
                            Ok(()) => {
                                out.image_signed_by = Some(id.clone());
                                break;
                            }
                            Err(e) => last = Some(e),
                        }
                    }
                    if out.image_signed_by.is_none() {
                        return Err(image_error(
                            &p.file,
                            last.unwrap_or(fieldkit_mcuboot::ImageError::Unsupported {
                                what: "an image key role with no keys",
                            }),
                        ));
                    }
                }
                out.image_hash = Some(image_hash);
                out.security_counter = img.security_counter();
                out.dependencies = img.dependencies();
            }
        }
        digest_check(&name, size, &out.sha256, p.size, &p.sha256)?;
        payloads.push(out);
    }
    r.end()?;
    findings.push(Finding::pass(
        rules::PACKAGE_DIGEST,
        format!("{} payload(s) and the SBOM", payloads.len()),
        "sizes and SHA-256 as the manifest says",
        "Every member of the package matches its signed manifest.",
    ));
    Ok(VerifiedPackage {
        manifest,
        signed_by,
        sbom,
        payloads,
        findings,
        total_size: r.read,
        manifest_sha256: sha_hex(&manifest_bytes),
        file_sha256: hex::encode(r.file_hash.finalize()),
    })
}
