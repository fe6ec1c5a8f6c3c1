//! The answers: exposure by vulnerability, by component and by device; up to date; licence
//! policy; and the series the dashboard draws. Every decision here is made once, in Rust, for
//! the CLI, the API and the dashboard alike.
//!
//! The shape of each answer follows the question a service manager asks:
//! - **by vulnerability**: what it is; which releases it affects (with the VEX statement that
//!   decides and the release that fixes it); how many devices, where, for which customer; and
//!   device by device, what runs, whether the fix may be installed there and if not, why not.
//! - **by component**: which releases carry a package in a version range, and which devices
//!   run them.
//! - **by device**: what runs (its as-installed SBOM, release by release), every vulnerability
//!   in it with its state, and the device's history.
//! - **up to date**: per product component, devices on the newest release they may install,
//!   and the ones that are not, by customer and site.
//! - **licences**: each release's components the policy flags or denies, and the devices that
//!   run them.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use fieldkit_licence::Policy;
use fieldkit_trust::{EntitlementRequest, Finding, Manifest, RecallList};
use fieldkit_vuln::vex::{Scope, Statement};
use serde::Serialize;

use super::analysis;
use super::store::{
    ComponentRow, DeviceSite, HistoryRow, InstallKey, Installed, InstalledGroup, InstalledQuery,
    MatchRow, MaterialStamp, PostmarketStore, ReleaseRow, VulnRow,
};
use super::trust::{self, Material, PostmarketError};

/// Rows per page unless asked.
pub const DEFAULT_PAGE: u32 = 100;
/// The most rows one page holds.
pub const MAX_PAGE: u32 = 1000;

/// A page of rows with the total they come from.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// Rows matching, in all.
    pub total: u64,
    /// Rows skipped.
    pub offset: u64,
    /// The rows.
    pub rows: Vec<T>,
}

/// Microseconds as RFC 3339 (seconds, UTC); empty for 0.
pub fn time(us: i64) -> String {
    if us == 0 {
        return String::new();
    }
    Utc.timestamp_micros(us)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Compares two component versions: as MCUboot image versions when both parse, else as SemVer,
/// else not at all.
pub fn compare_versions(a: &str, b: &str) -> Option<Ordering> {
    use fieldkit_mcuboot::ImageVersion;
    if let (Ok(x), Ok(y)) = (a.parse::<ImageVersion>(), b.parse::<ImageVersion>()) {
        return Some(x.cmp(&y));
    }
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(x), Ok(y)) => Some(x.cmp(&y)),
        _ => None,
    }
}

/// A release with its manifest read.
#[derive(Debug, Clone)]
pub struct Release {
    /// As stored.
    pub row: ReleaseRow,
    /// The verified manifest (absent for a release known only from its SBOM).
    pub manifest: Option<Manifest>,
}

impl Release {
    /// Its id.
    pub fn id(&self) -> &str {
        &self.row.id
    }

    fn payload_version(&self, component: &str) -> Option<&str> {
        self.row
            .payloads
            .iter()
            .find(|p| p.component == component)
            .map(|p| p.version.as_str())
    }
}

/// Whether a device may install a release, and the rules that decided.
#[derive(Debug, Clone, Serialize)]
pub struct Installable {
    /// The release.
    pub release: String,
    /// Whether every rule the hub can decide holds.
    pub may_install: bool,
    /// The first rule that failed, in words, or why it may.
    pub because: String,
    /// The rules that failed.
    pub failed: Vec<Finding>,
}

/// Everything an answer decides with: the trust material and the releases (shared between
/// answers, see [`ContextCache`]), and "now".
#[derive(Debug, Clone)]
pub struct Context {
    held: Arc<Held>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// The trust material and the releases as loaded, with their indexes: read-only once loaded,
/// so answers share one copy (a context derefs to it).
#[derive(Debug)]
pub struct Held {
    /// The trust material (absent before a root is pinned).
    pub material: Option<Material>,
    /// Every release.
    pub releases: Vec<Release>,
    /// Entitlements by id (indexes into the material's list).
    by_id: HashMap<String, usize>,
    /// Entitlements that grant a whole model (`*`), per model.
    wildcards: HashMap<String, Vec<usize>>,
    /// The customer the entitlements give each serial they name ([`trust::grants`], as
    /// stored for the serials at their import).
    granted: HashMap<String, String>,
}

impl std::ops::Deref for Context {
    type Target = Held;

    fn deref(&self) -> &Held {
        &self.held
    }
}

/// The customer of an installed row: the one the record names, else the entitlements'.
pub fn customer_of(named: &str, granted: &str) -> String {
    if named.is_empty() {
        granted.to_owned()
    } else {
        named.to_owned()
    }
}

/// Keeps the trust material and releases between answers, so that an answer does not re-read
/// and re-verify them: they are loaded again when the store's [`MaterialStamp`] changes. Those
/// tables are append-only evidence (a trigger refuses an update or a delete), so any import
/// of a root, a release, an entitlement or a recall list changes a count of the stamp; and
/// nothing loaded depends on the time (expiry is checked against each answer's `now`).
#[derive(Debug, Default)]
pub struct ContextCache {
    held: std::sync::Mutex<Option<(MaterialStamp, Arc<Held>)>>,
}

impl ContextCache {
    /// The context for an answer at `now`: the one held if the stamp it was loaded at is still
    /// the store's, else a fresh load (then held).
    pub async fn context(
        &self,
        store: &dyn PostmarketStore,
        now: DateTime<Utc>,
    ) -> Result<Context, PostmarketError> {
        // The stamp is read before the load: if an import lands in between, the load may see
        // it under the older stamp, and the next answer, seeing a newer stamp, loads again.
        let stamp = store.material_stamp().await?;
        let held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|(s, _)| *s == stamp)
            .map(|(_, h)| h.clone());
        let held = match held {
            Some(h) => h,
            None => {
                let h = Arc::new(Held::load(store).await?);
                *self
                    .held
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((stamp, h.clone()));
                h
            }
        };
        Ok(Context { held, now })
    }
}

impl Context {
    /// Loads the trust material and the releases (no cache: see [`ContextCache`]).
    pub async fn load(
        store: &dyn PostmarketStore,
        now: DateTime<Utc>,
    ) -> Result<Context, PostmarketError> {
        Ok(Context {
            held: Arc::new(Held::load(store).await?),
            now,
        })
    }
}

impl Held {
    async fn load(store: &dyn PostmarketStore) -> Result<Held, PostmarketError> {
        let material = match trust::material(store).await {
            Ok(m) => Some(m),
            Err(PostmarketError::NoRoot) => None,
            Err(e) => return Err(e),
        };
        let releases = store
            .releases()
            .await?
            .into_iter()
            .map(|row| Release {
                manifest: serde_json::from_str(&row.manifest).ok(),
                row,
            })
            .collect();
        let mut by_id = HashMap::new();
        let mut wildcards: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in material
            .iter()
            .flat_map(|m| m.entitlements.iter())
            .enumerate()
        {
            by_id.insert(e.id.clone(), i);
            for g in e
                .devices
                .iter()
                .filter(|g| g.serials.iter().any(|s| s == "*"))
            {
                wildcards.entry(g.model.clone()).or_default().push(i);
            }
        }
        let granted = material
            .iter()
            .flat_map(|m| trust::grants(&m.entitlements))
            .map(|g| (g.serial, g.customer))
            .collect();
        Ok(Held {
            material,
            releases,
            by_id,
            wildcards,
            granted,
        })
    }
}

impl Context {
    /// The entitlements that can cover a device: those naming its serial (its grants) and
    /// those granting its whole model. Any other one fails `entitlement.device` for it, so
    /// leaving it out changes no verdict, and spares checking every serial list of the fleet.
    fn candidates<'m>(
        &self,
        material: &'m Material,
        d: &DeviceFacts<'_>,
    ) -> Vec<&'m fieldkit_trust::Entitlement> {
        let mut idx: Vec<usize> = d
            .grants
            .split(',')
            .filter(|g| !g.is_empty())
            .filter_map(|g| self.by_id.get(g).copied())
            .chain(self.wildcards.get(d.product).into_iter().flatten().copied())
            .collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter().map(|i| &material.entitlements[i]).collect()
    }

    /// Whether the site of a device can change what it may install: only if an entitlement
    /// that may cover it is limited to named sites.
    fn site_matters(&self, d: &DeviceFacts<'_>) -> bool {
        self.material
            .as_ref()
            .is_some_and(|m| self.candidates(m, d).iter().any(|e| !e.sites.is_empty()))
    }

    /// The release with this id.
    pub fn release(&self, id: &str) -> Option<&Release> {
        self.releases.iter().find(|r| r.id() == id)
    }

    /// The releases a device component runs: same product, a payload for the component at the
    /// same version. The image hash does not decide (see [`Build`]): a device that reports the
    /// version of an affected release counts as exposed even if its build is not the
    /// release's, because an exposure must never be hidden by a build nobody can vouch for.
    pub fn runs(&self, product: &str, component: &str, version: &str) -> Vec<&Release> {
        self.releases
            .iter()
            .filter(|r| {
                r.row.product == product
                    && r.row
                        .payloads
                        .iter()
                        .any(|p| p.component == component && p.version == version)
            })
            .collect()
    }

    /// Whether the build a device reports is the one the releases it runs ship.
    pub fn build(&self, product: &str, component: &str, version: &str, image_hash: &str) -> Build {
        let known: Vec<&str> = self
            .runs(product, component, version)
            .iter()
            .filter_map(|r| {
                r.row
                    .payloads
                    .iter()
                    .find(|p| p.component == component && !p.image_hash.is_empty())
                    .map(|p| p.image_hash.as_str())
            })
            .collect();
        if image_hash.is_empty() || known.is_empty() {
            Build::NotCompared
        } else if known.iter().any(|h| h.eq_ignore_ascii_case(image_hash)) {
            Build::Matches
        } else {
            Build::Differs
        }
    }

    /// The installed rows that run `release`, as keys.
    pub fn keys_of(&self, release: &Release) -> Vec<InstallKey> {
        release
            .row
            .payloads
            .iter()
            .map(|p| InstallKey {
                product: release.row.product.clone(),
                component: p.component.clone(),
                version: p.version.clone(),
            })
            .collect()
    }

    /// Releases of `product` that install `component` at a version above `than`, lowest first.
    pub fn newer(&self, product: &str, component: &str, than: &str) -> Vec<&Release> {
        let mut out: Vec<(&Release, &str)> = self
            .releases
            .iter()
            .filter(|r| r.row.product == product)
            .filter_map(|r| r.payload_version(component).map(|v| (r, v)))
            .filter(|(_, v)| compare_versions(v, than) == Some(Ordering::Greater))
            .collect();
        out.sort_by(|a, b| compare_versions(a.1, b.1).unwrap_or(Ordering::Equal));
        out.into_iter().map(|(r, _)| r).collect()
    }

    /// Whether the device of `d` may install `r`: the rules the hub can decide, by the same
    /// `fieldkit-trust` functions the planner uses.
    pub fn may_install(&self, r: &Release, d: &DeviceFacts<'_>) -> Installable {
        let fail = |why: &str| Installable {
            release: r.id().to_owned(),
            may_install: false,
            because: why.to_owned(),
            failed: Vec::new(),
        };
        let Some(m) = &r.manifest else {
            return fail(
                "The hub knows this release only from its SBOM: import its package to decide whether it may be installed.",
            );
        };
        let Some(material) = &self.material else {
            return fail("The hub has no trust root pinned, so nothing can be installable.");
        };
        let mut rules = vec![
            m.check_product(d.product),
            m.check_hardware(d.hardware),
            m.check_expiry(self.now),
            RecallList::check_present(material.recall.as_ref(), &material.root),
        ];
        if let Some(recall) = &material.recall {
            rules.push(recall.check_expiry(self.now));
            rules.push(recall.check_package(m));
        }
        if let Some(counter) = d.security_counter {
            rules.push(m.check_security_counter(u32::try_from(counter).unwrap_or(u32::MAX)));
        }
        let req = EntitlementRequest {
            model: d.product,
            serial: d.serial,
            customer: (!d.customer.is_empty()).then_some(d.customer),
            site: (!d.site.is_empty()).then_some(d.site),
            generations: &material.generations,
            manifest: m,
            now: self.now,
        };
        rules.extend(
            fieldkit_trust::evaluate_refs(
                &self.candidates(material, d),
                &req,
                &material.root,
                material.recall.as_ref(),
            )
            .findings,
        );
        let failed: Vec<Finding> = rules.iter().filter(|f| !f.passed).cloned().collect();
        Installable {
            release: r.id().to_owned(),
            may_install: failed.is_empty(),
            because: failed
                .first()
                .map(|f| {
                    format!(
                        "{}: {} (found {}, required {})",
                        f.rule, f.explanation, f.found, f.required
                    )
                })
                .unwrap_or_else(|| {
                    rules
                        .iter()
                        .rev()
                        .find(|f| f.rule.starts_with("entitlement"))
                        .map(|f| f.explanation.clone())
                        .unwrap_or_else(|| "Every rule the hub can decide holds.".into())
                }),
            failed,
        }
    }
}

/// Whether a device runs the very build a release ships, by the image hash it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Build {
    /// The image hash is the release's.
    Matches,
    /// The device reports another image hash for that version: a build the manufacturer did
    /// not release (a development or altered image). Worth a look; still counted as that
    /// version for exposure.
    Differs,
    /// No hash to compare (the device or the release does not say).
    NotCompared,
}

/// What the rules need to know about a device.
#[derive(Debug, Clone, Copy)]
pub struct DeviceFacts<'a> {
    /// Serial.
    pub serial: &'a str,
    /// Product.
    pub product: &'a str,
    /// Hardware revision.
    pub hardware: &'a str,
    /// Customer (empty when unknown).
    pub customer: &'a str,
    /// Site (empty when unknown).
    pub site: &'a str,
    /// Ids of the entitlements that name the serial, comma-separated.
    pub grants: &'a str,
    /// Security counter, if reported.
    pub security_counter: Option<u64>,
}

impl<'a> DeviceFacts<'a> {
    fn of(d: &'a Installed, customer: &'a str) -> Self {
        DeviceFacts {
            serial: &d.serial,
            product: &d.product,
            hardware: &d.hardware,
            customer,
            site: &d.site,
            grants: &d.grants,
            security_counter: d.security_counter,
        }
    }
}

/// The release that fixes a vulnerability for a device component, and whether it may install
/// one.
#[derive(Debug, Clone, Serialize)]
pub struct Fix {
    /// The first newer release of the component that the vulnerability does not expose.
    pub fixed_in: Option<String>,
    /// The first such release the device may install, with why (or why not).
    pub installable: Option<Installable>,
    /// When the device may install none: why not the first fixing release.
    pub why_not: Option<Installable>,
}

impl Context {
    /// The fix for the device component `d`, given the releases a vulnerability exposes.
    pub fn fix(&self, exposed: &BTreeSet<String>, d: &Installed, customer: &str) -> Fix {
        let fixing: Vec<&Release> = self
            .newer(&d.product, &d.component, &d.version)
            .into_iter()
            .filter(|r| !exposed.contains(r.id()))
            .collect();
        let facts = DeviceFacts::of(d, customer);
        let mut why_not = None;
        let mut installable = None;
        for r in &fixing {
            let i = self.may_install(r, &facts);
            if i.may_install {
                installable = Some(i);
                break;
            }
            if why_not.is_none() {
                why_not = Some(i);
            }
        }
        Fix {
            fixed_in: fixing.first().map(|r| r.id().to_owned()),
            why_not: if installable.is_some() { None } else { why_not },
            installable,
        }
    }
}

// --- exposure by vulnerability -------------------------------------------------------------------

/// A vulnerability as the answers show it.
#[derive(Debug, Clone, Serialize)]
pub struct Vulnerability {
    /// Its name.
    pub name: String,
    /// Every id.
    pub ids: Vec<String>,
    /// Severity word.
    pub severity: String,
    /// CVSS score.
    pub score: Option<f64>,
    /// Summary (text; never render as HTML).
    pub summary: String,
    /// Earliest publication.
    pub published: String,
    /// Every advisory withdrawn.
    pub withdrawn: bool,
}

impl From<VulnRow> for Vulnerability {
    fn from(v: VulnRow) -> Self {
        Vulnerability {
            ids: serde_json::from_str(&v.ids).unwrap_or_default(),
            published: time(v.published_us),
            name: v.name,
            severity: v.severity,
            score: v.score,
            summary: v.summary,
            withdrawn: v.withdrawn,
        }
    }
}

/// The VEX statement that decides, as shown.
#[derive(Debug, Clone, Serialize)]
pub struct VexShown {
    /// State.
    pub state: String,
    /// Justification.
    pub justification: Option<String>,
    /// Impact statement.
    pub detail: Option<String>,
    /// Action.
    pub action: Option<String>,
    /// Author.
    pub author: String,
    /// Format.
    pub format: String,
    /// Document id.
    pub document: String,
    /// When.
    pub timestamp: Option<String>,
    /// The product scope as a purl (with its version or range).
    pub product: Option<String>,
}

fn vex_shown(m: &MatchRow) -> Option<VexShown> {
    let s: Statement = serde_json::from_str(&m.vex).ok()?;
    Some(VexShown {
        state: s.state.as_str().into(),
        justification: s
            .justification
            .map(|j| super::vexrecord::justification_word(j).into()),
        detail: s.detail,
        action: s.action,
        author: s.author,
        format: s.format.to_string(),
        document: s.document,
        timestamp: s
            .timestamp
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        product: s.product.to_purl(),
    })
}

/// One release component a vulnerability affects.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseMatch {
    /// The release.
    pub release: String,
    /// `name version`.
    pub component: String,
    /// Its purl.
    pub purl: String,
    /// The advisory that matched.
    pub advisory: String,
    /// `affected` or `undetermined`.
    pub verdict: String,
    /// `purl` or `hash`.
    pub matched_by: String,
    /// Why, in words.
    pub because: String,
    /// Versions of the package that fix it.
    pub fixed_versions: Vec<String>,
    /// The VEX statement that decides, if any.
    pub vex: Option<VexShown>,
    /// Whether devices running it are exposed.
    pub exposed: bool,
}

fn release_match(m: &MatchRow) -> ReleaseMatch {
    ReleaseMatch {
        release: m.release_id.clone(),
        component: m.component.clone(),
        purl: m.purl.clone(),
        advisory: m.advisory.clone(),
        verdict: m.verdict.clone(),
        matched_by: m.via.clone(),
        because: m.because.clone(),
        fixed_versions: serde_json::from_str(&m.fixed).unwrap_or_default(),
        vex: vex_shown(m),
        exposed: m.exposed,
    }
}

/// Devices at one site (for one customer).
#[derive(Debug, Clone, Serialize)]
pub struct SiteCount {
    /// Site.
    pub site: String,
    /// Customer.
    pub customer: String,
    /// Devices running an affected release.
    pub devices: u64,
    /// Of those, exposed (no VEX statement clears them).
    pub exposed: u64,
}

/// One device component in an exposure answer.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    /// Serial.
    pub serial: String,
    /// Product.
    pub product: String,
    /// Model.
    pub model: String,
    /// Customer.
    pub customer: String,
    /// Site.
    pub site: String,
    /// Component.
    pub component: String,
    /// Version running.
    pub version: String,
    /// The release(s) it runs.
    pub releases: Vec<String>,
    /// Whether its image hash is the release's.
    pub build: Build,
    /// The deciding VEX state (empty when no statement applies).
    pub vex_state: String,
    /// Exposed.
    pub exposed: bool,
    /// Last seen.
    pub last_seen: String,
    /// The fix.
    pub fix: Fix,
}

/// Exposure to one vulnerability.
#[derive(Debug, Clone, Serialize)]
pub struct VulnExposure {
    /// The vulnerability.
    pub vulnerability: Vulnerability,
    /// The release components it affects.
    pub releases: Vec<ReleaseMatch>,
    /// Devices running an affected release.
    pub devices: u64,
    /// Of those, exposed.
    pub exposed: u64,
    /// By site and customer.
    pub by_site: Vec<SiteCount>,
    /// Device by device.
    pub rows: Page<DeviceRow>,
}

/// Devices among some installed rows: distinct serials in all, of those with an exposed row,
/// and per site and customer.
struct Counts {
    total: u64,
    exposed: u64,
    by_site: Vec<SiteCount>,
}

impl Context {
    /// Counts the devices of `rows`. A site's devices are the distinct serials per site, customer
    /// the record names and customer the entitlements give, summed per site and customer shown.
    fn count(&self, rows: &[DeviceSite]) -> Counts {
        // Each row with its serial: sorted by serial, a device's rows lie together.
        let mut by_serial: Vec<&DeviceSite> = rows.iter().collect();
        by_serial.sort_unstable_by(|a, b| a.serial.cmp(&b.serial));
        // (site, customer named, customer granted) -> index in `groups`.
        let mut index: HashMap<(&str, &str, &str), usize> = HashMap::new();
        let mut groups: Vec<((&str, &str, &str), u64, u64)> = Vec::new();
        let (mut total, mut exposed) = (0, 0);
        let mut seen: Vec<(usize, bool)> = Vec::new();
        for device in by_serial.chunk_by(|a, b| a.serial == b.serial) {
            total += 1;
            exposed += u64::from(device.iter().any(|r| r.exposed));
            let granted = self
                .granted
                .get(&device[0].serial)
                .map_or("", String::as_str);
            // The groups this device is in (one per row at most), each counted once.
            seen.clear();
            for r in device {
                let key = (r.site.as_str(), r.customer.as_str(), granted);
                let g = *index.entry(key).or_insert_with(|| {
                    groups.push((key, 0, 0));
                    groups.len() - 1
                });
                match seen.iter_mut().find(|(x, _)| *x == g) {
                    Some((_, e)) => *e |= r.exposed,
                    None => seen.push((g, r.exposed)),
                }
            }
            for &(g, e) in &seen {
                groups[g].1 += 1;
                groups[g].2 += u64::from(e);
            }
        }
        let mut by: BTreeMap<(String, String), SiteCount> = BTreeMap::new();
        for ((site, named, granted), devices, hit) in groups {
            let customer = customer_of(named, granted);
            let e = by
                .entry((site.to_owned(), customer.clone()))
                .or_insert(SiteCount {
                    site: site.to_owned(),
                    customer,
                    devices: 0,
                    exposed: 0,
                });
            e.devices += devices;
            e.exposed += hit;
        }
        Counts {
            total,
            exposed,
            by_site: by.into_values().collect(),
        }
    }
}

/// Exposure by vulnerability id (any of its ids or aliases); `None` if the hub knows no
/// advisory with that id.
pub async fn by_vulnerability(
    store: &dyn PostmarketStore,
    cx: &Context,
    id: &str,
    limit: u32,
    offset: u64,
) -> Result<Option<VulnExposure>, PostmarketError> {
    let Some(v) = store.vulnerability(id).await? else {
        return Ok(None);
    };
    let matches = store.matches(Some(&v.name), &[]).await?;
    let exposed_releases: BTreeSet<String> = matches
        .iter()
        .filter(|m| m.exposed)
        .map(|m| m.release_id.clone())
        .collect();
    let affected: BTreeSet<String> = matches.iter().map(|m| m.release_id.clone()).collect();
    let keys_for = |ids: &BTreeSet<String>| -> Vec<InstallKey> {
        let mut keys: Vec<InstallKey> = ids
            .iter()
            .filter_map(|id| cx.release(id))
            .flat_map(|r| cx.keys_of(r))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    };
    let all_keys = keys_for(&affected);
    let exposed_keys = keys_for(&exposed_releases);
    let counts = cx.count(&store.device_sites(&all_keys, &exposed_keys).await?);
    let rows = if all_keys.is_empty() {
        Vec::new()
    } else {
        store
            .installed(&InstalledQuery {
                keys: all_keys.clone(),
                limit,
                offset,
                ..Default::default()
            })
            .await?
    };
    let by_release: HashMap<&str, Vec<&MatchRow>> =
        matches.iter().fold(HashMap::new(), |mut m, x| {
            m.entry(x.release_id.as_str()).or_default().push(x);
            m
        });
    let device_rows = rows
        .iter()
        .map(|d| device_row(cx, d, &by_release, &exposed_releases))
        .collect();
    Ok(Some(VulnExposure {
        releases: matches.iter().map(release_match).collect(),
        devices: counts.total,
        exposed: counts.exposed,
        by_site: counts.by_site,
        rows: Page {
            total: counts.total,
            offset,
            rows: device_rows,
        },
        vulnerability: v.into(),
    }))
}

fn device_row(
    cx: &Context,
    d: &Installed,
    by_release: &HashMap<&str, Vec<&MatchRow>>,
    exposed_releases: &BTreeSet<String>,
) -> DeviceRow {
    let runs = cx.runs(&d.product, &d.component, &d.version);
    let matched: Vec<&MatchRow> = runs
        .iter()
        .filter_map(|r| by_release.get(r.id()))
        .flatten()
        .copied()
        .collect();
    let exposed = matched.iter().any(|m| m.exposed);
    let vex_state = matched
        .iter()
        .find(|m| m.exposed == exposed)
        .map(|m| m.vex_state.clone())
        .unwrap_or_default();
    let customer = customer_of(&d.customer, &d.granted_customer);
    DeviceRow {
        serial: d.serial.clone(),
        product: d.product.clone(),
        model: d.model.clone(),
        site: d.site.clone(),
        component: d.component.clone(),
        version: d.version.clone(),
        releases: runs.iter().map(|r| r.id().to_owned()).collect(),
        build: cx.build(&d.product, &d.component, &d.version, &d.image_hash),
        vex_state,
        exposed,
        last_seen: time(d.time_us),
        fix: cx.fix(exposed_releases, d, &customer),
        customer,
    }
}

// --- exposure by component -----------------------------------------------------------------------

/// A release that carries the component asked about.
#[derive(Debug, Clone, Serialize)]
pub struct Carrier {
    /// The release.
    pub release: String,
    /// `name version` of the component in it.
    pub component: String,
    /// Its purl.
    pub purl: String,
    /// Vulnerabilities of that component in that release, with their state.
    pub vulnerabilities: Vec<ReleaseVuln>,
}

/// A vulnerability of a release component.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseVuln {
    /// The vulnerability.
    pub name: String,
    /// Severity word.
    pub severity: String,
    /// The deciding VEX state, or empty.
    pub vex_state: String,
    /// Exposed.
    pub exposed: bool,
}

/// Devices running a component in a version range.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentExposure {
    /// The component as asked (`purl`, `purl@version`, `purl@vers:…`).
    pub component: String,
    /// The releases that carry it.
    pub releases: Vec<Carrier>,
    /// Devices running one of them.
    pub devices: u64,
    /// By site and customer (`exposed` counts those exposed to any vulnerability of it).
    pub by_site: Vec<SiteCount>,
    /// Device by device.
    pub rows: Page<DeviceRow>,
}

/// Exposure by component: a purl, with a version or a `vers:` range, or none for every version.
pub async fn by_component(
    store: &dyn PostmarketStore,
    cx: &Context,
    query: &str,
    scope: &Scope,
    limit: u32,
    offset: u64,
) -> Result<ComponentExposure, PostmarketError> {
    let key = scope
        .package
        .as_ref()
        .map(|k| k.as_str().to_owned())
        .unwrap_or_default();
    let rows: Vec<ComponentRow> = store
        .release_components(None, Some(&key))
        .await?
        .into_iter()
        .filter(|c| scope.covers(&analysis::component(c)))
        .collect();
    let releases: BTreeSet<String> = rows.iter().map(|c| c.release_id.clone()).collect();
    let ids: Vec<String> = releases.iter().cloned().collect();
    // Only the matches of the rows asked about (a release's other components have their own).
    let wanted: BTreeSet<(&str, u32)> = rows
        .iter()
        .map(|c| (c.release_id.as_str(), c.idx))
        .collect();
    let matches: Vec<MatchRow> = if ids.is_empty() {
        Vec::new()
    } else {
        store
            .matches(None, &ids)
            .await?
            .into_iter()
            .filter(|m| wanted.contains(&(m.release_id.as_str(), m.component_idx)))
            .collect()
    };
    let mut names: Vec<String> = matches.iter().map(|m| m.vulnerability.clone()).collect();
    names.sort_unstable();
    names.dedup();
    let severity: HashMap<String, String> = store
        .vulnerabilities_named(&names)
        .await?
        .into_iter()
        .map(|v| (v.name, v.severity))
        .collect();
    let carriers: Vec<Carrier> = rows
        .iter()
        .map(|c| Carrier {
            release: c.release_id.clone(),
            component: format!("{} {}", c.name, c.version),
            purl: c.purl.clone(),
            vulnerabilities: matches
                .iter()
                .filter(|m| m.release_id == c.release_id && m.component_idx == c.idx)
                .map(|m| ReleaseVuln {
                    severity: severity.get(&m.vulnerability).cloned().unwrap_or_default(),
                    name: m.vulnerability.clone(),
                    vex_state: m.vex_state.clone(),
                    exposed: m.exposed,
                })
                .collect(),
        })
        .collect();
    let exposed_releases: BTreeSet<String> = carriers
        .iter()
        .filter(|c| c.vulnerabilities.iter().any(|v| v.exposed))
        .map(|c| c.release.clone())
        .collect();
    let keys = |set: &BTreeSet<String>| -> Vec<InstallKey> {
        let mut k: Vec<InstallKey> = set
            .iter()
            .filter_map(|id| cx.release(id))
            .flat_map(|r| cx.keys_of(r))
            .collect();
        k.sort();
        k.dedup();
        k
    };
    let all_keys = keys(&releases);
    let counts = cx.count(
        &store
            .device_sites(&all_keys, &keys(&exposed_releases))
            .await?,
    );
    let page = if all_keys.is_empty() {
        Vec::new()
    } else {
        store
            .installed(&InstalledQuery {
                keys: all_keys,
                limit,
                offset,
                ..Default::default()
            })
            .await?
    };
    let by_release: HashMap<&str, Vec<&MatchRow>> =
        matches.iter().fold(HashMap::new(), |mut m, x| {
            m.entry(x.release_id.as_str()).or_default().push(x);
            m
        });
    Ok(ComponentExposure {
        component: query.to_owned(),
        releases: carriers,
        devices: counts.total,
        by_site: counts.by_site,
        rows: Page {
            total: counts.total,
            offset,
            rows: page
                .iter()
                .map(|d| device_row(cx, d, &by_release, &exposed_releases))
                .collect(),
        },
    })
}

// --- exposure by device ------------------------------------------------------------------------

/// One component of a device, with what it runs.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceComponent {
    /// Component.
    pub component: String,
    /// Version.
    pub version: String,
    /// Image hash reported, if any.
    pub image_hash: String,
    /// The releases it runs (empty when the hub holds none that matches).
    pub releases: Vec<String>,
    /// Whether its image hash is the release's.
    pub build: Build,
    /// The release the record says it was installed from, if it says.
    pub installed_from: String,
    /// The SBOM components of those releases (its as-installed SBOM).
    pub sbom: Vec<SbomEntry>,
    /// Last seen.
    pub last_seen: String,
}

/// One SBOM component.
#[derive(Debug, Clone, Serialize)]
pub struct SbomEntry {
    /// CycloneDX type.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Purl.
    pub purl: String,
    /// Licences.
    pub licences: Vec<String>,
}

/// One vulnerability on a device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceVuln {
    /// The vulnerability.
    pub vulnerability: Vulnerability,
    /// The device component it is in.
    pub component: String,
    /// The release component that matched.
    pub matched: ReleaseMatch,
    /// The fix.
    pub fix: Fix,
}

/// One change in a device's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// When.
    pub time: String,
    /// Component.
    pub component: String,
    /// Version seen.
    pub version: String,
    /// Site.
    pub site: String,
    /// Event.
    pub event: String,
    /// The package named, if any.
    pub package: String,
    /// Which laptop's entry.
    pub origin: String,
    /// Its seq.
    pub seq: u64,
}

/// Everything about one device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceExposure {
    /// Serial.
    pub serial: String,
    /// Product.
    pub product: String,
    /// Model.
    pub model: String,
    /// Customer.
    pub customer: String,
    /// Site.
    pub site: String,
    /// Its components now.
    pub components: Vec<DeviceComponent>,
    /// Every vulnerability, exposed first.
    pub vulnerabilities: Vec<DeviceVuln>,
    /// What the field records show, oldest first; an observation that repeats the previous
    /// one of its component is left out.
    pub history: Vec<HistoryEntry>,
}

/// Exposure by device serial; `None` if the hub has no record of it.
pub async fn by_device(
    store: &dyn PostmarketStore,
    cx: &Context,
    serial: &str,
) -> Result<Option<DeviceExposure>, PostmarketError> {
    let rows = store
        .installed(&InstalledQuery {
            serial: Some(serial.to_owned()),
            ..Default::default()
        })
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    // The matches of every release of the device's products (one read): those of the releases
    // it runs, and those that tell which newer releases still expose each vulnerability.
    let products: BTreeSet<&str> = rows.iter().map(|d| d.product.as_str()).collect();
    let lines: Vec<String> = cx
        .releases
        .iter()
        .filter(|r| products.contains(r.row.product.as_str()))
        .map(|r| r.id().to_owned())
        .collect();
    let all = if lines.is_empty() {
        Vec::new()
    } else {
        store.matches(None, &lines).await?
    };
    // Per vulnerability, the releases it exposes (only the device's product's count for a
    // fix: `Context::fix` looks at that product's newer releases alone).
    let mut exposed_by: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for m in all.iter().filter(|m| m.exposed) {
        exposed_by
            .entry(m.vulnerability.as_str())
            .or_default()
            .insert(m.release_id.clone());
    }
    let none = BTreeSet::new();
    let mut components = Vec::new();
    let mut found: Vec<(usize, &MatchRow)> = Vec::new();
    for (i, d) in rows.iter().enumerate() {
        let runs = cx.runs(&d.product, &d.component, &d.version);
        let ids: Vec<String> = runs.iter().map(|r| r.id().to_owned()).collect();
        let mut sbom = Vec::new();
        for id in &ids {
            for c in store.release_components(Some(id), None).await? {
                sbom.push(SbomEntry {
                    kind: c.kind,
                    name: c.name,
                    version: c.version,
                    purl: c.purl,
                    licences: serde_json::from_str(&c.licences).unwrap_or_default(),
                });
            }
        }
        components.push(DeviceComponent {
            component: d.component.clone(),
            version: d.version.clone(),
            image_hash: d.image_hash.clone(),
            releases: ids.clone(),
            build: cx.build(&d.product, &d.component, &d.version, &d.image_hash),
            installed_from: d.package.clone(),
            sbom,
            last_seen: time(d.time_us),
        });
        found.extend(
            all.iter()
                .filter(|m| ids.contains(&m.release_id))
                .map(|m| (i, m)),
        );
    }
    let mut names: Vec<String> = found.iter().map(|(_, m)| m.vulnerability.clone()).collect();
    names.sort_unstable();
    names.dedup();
    let vuln_rows: HashMap<String, VulnRow> = store
        .vulnerabilities_named(&names)
        .await?
        .into_iter()
        .map(|v| (v.name.clone(), v))
        .collect();
    // Many vulnerabilities leave the same newer releases exposed: each fix is decided once per
    // device component and set of exposed releases.
    let mut fixes: HashMap<(usize, &BTreeSet<String>), Fix> = HashMap::new();
    let mut vulns = Vec::new();
    for (i, m) in found {
        let d = &rows[i];
        let Some(v) = vuln_rows.get(&m.vulnerability) else {
            continue;
        };
        let exposed = exposed_by.get(m.vulnerability.as_str()).unwrap_or(&none);
        let fix = fixes
            .entry((i, exposed))
            .or_insert_with(|| cx.fix(exposed, d, &customer_of(&d.customer, &d.granted_customer)))
            .clone();
        vulns.push(DeviceVuln {
            vulnerability: v.clone().into(),
            component: d.component.clone(),
            fix,
            matched: release_match(m),
        });
    }
    vulns.sort_by(|a, b| {
        (
            !a.matched.exposed,
            severity_rank(&a.vulnerability.severity),
            &a.vulnerability.name,
        )
            .cmp(&(
                !b.matched.exposed,
                severity_rank(&b.vulnerability.severity),
                &b.vulnerability.name,
            ))
    });
    let mut history = Vec::new();
    let mut last: HashMap<String, String> = HashMap::new();
    for h in store.history(Some(serial), &[]).await? {
        if last.get(&h.component) == Some(&h.version) {
            continue;
        }
        last.insert(h.component.clone(), h.version.clone());
        history.push(history_entry(h));
    }
    Ok(Some(DeviceExposure {
        serial: first.serial.clone(),
        product: first.product.clone(),
        model: first.model.clone(),
        customer: customer_of(&first.customer, &first.granted_customer),
        site: first.site.clone(),
        components,
        vulnerabilities: vulns,
        history,
    }))
}

fn history_entry(h: HistoryRow) -> HistoryEntry {
    HistoryEntry {
        time: time(h.time_us),
        component: h.component,
        version: h.version,
        site: h.site,
        event: h.event,
        package: h.package,
        origin: h.origin,
        seq: h.seq,
    }
}

/// Severity words, most severe first.
pub const SEVERITIES: [&str; 6] = ["critical", "high", "medium", "low", "none", "unknown"];

/// Rank of a severity word (0 most severe).
pub fn severity_rank(s: &str) -> usize {
    SEVERITIES
        .iter()
        .position(|x| *x == s)
        .unwrap_or(SEVERITIES.len())
}

// --- overview ----------------------------------------------------------------------------------

/// A vulnerability that affects at least one release, with its exposure.
#[derive(Debug, Clone, Serialize)]
pub struct OverviewRow {
    /// The vulnerability.
    pub vulnerability: Vulnerability,
    /// Releases it affects.
    pub releases: Vec<String>,
    /// Devices running one.
    pub devices: u64,
    /// Of those, exposed.
    pub exposed: u64,
}

/// The vulnerabilities that affect a release the hub holds, most severe first.
pub async fn overview(
    store: &dyn PostmarketStore,
    cx: &Context,
    limit: u32,
    offset: u64,
) -> Result<Page<OverviewRow>, PostmarketError> {
    let matches = store.matches(None, &[]).await?;
    let mut by: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for m in &matches {
        let e = by.entry(m.vulnerability.clone()).or_default();
        e.0.insert(m.release_id.clone());
        if m.exposed {
            e.1.insert(m.release_id.clone());
        }
    }
    let vulns: HashMap<String, VulnRow> = store
        .vulnerabilities()
        .await?
        .into_iter()
        .filter(|v| by.contains_key(&v.name))
        .map(|v| (v.name.clone(), v))
        .collect();
    let mut names: Vec<&String> = by.keys().collect();
    names.sort_by_key(|n| {
        let v = vulns.get(*n);
        (
            severity_rank(v.map_or("unknown", |v| v.severity.as_str())),
            std::cmp::Reverse(v.and_then(|v| v.score).map(|s| (s * 10.0) as i64)),
            (*n).clone(),
        )
    });
    let total = names.len() as u64;
    let mut rows = Vec::new();
    for name in names.into_iter().skip(offset as usize).take(limit as usize) {
        let (affected, exposed) = &by[name];
        let keys = |ids: &BTreeSet<String>| -> Vec<InstallKey> {
            let mut k: Vec<InstallKey> = ids
                .iter()
                .filter_map(|id| cx.release(id))
                .flat_map(|r| cx.keys_of(r))
                .collect();
            k.sort();
            k.dedup();
            k
        };
        let counts = cx.count(&store.device_sites(&keys(affected), &keys(exposed)).await?);
        let Some(v) = vulns.get(name) else { continue };
        rows.push(OverviewRow {
            vulnerability: v.clone().into(),
            releases: affected.iter().cloned().collect(),
            devices: counts.total,
            exposed: counts.exposed,
        });
    }
    Ok(Page {
        total,
        offset,
        rows,
    })
}

// --- up to date --------------------------------------------------------------------------------

/// Filters of the up-to-date report (validated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpToDateFilter {
    /// Product (exact).
    pub product: Option<String>,
    /// Customer (exact).
    pub customer: Option<String>,
    /// Site (exact).
    pub site: Option<String>,
}

/// Devices of one product component on the newest release they may install.
#[derive(Debug, Clone, Serialize)]
pub struct LineStatus {
    /// Product.
    pub product: String,
    /// Component.
    pub component: String,
    /// The newest release of it the hub holds.
    pub newest: Option<String>,
    /// Devices.
    pub devices: u64,
    /// On the newest release they may install.
    pub current: u64,
    /// Not.
    pub behind: u64,
    /// Running a version no release the hub holds installs.
    pub unknown: u64,
}

/// Devices behind, for one customer and site.
#[derive(Debug, Clone, Serialize)]
pub struct BehindAt {
    /// Product.
    pub product: String,
    /// Component.
    pub component: String,
    /// Customer.
    pub customer: String,
    /// Site.
    pub site: String,
    /// Devices.
    pub devices: u64,
    /// Behind.
    pub behind: u64,
}

/// A device component that is not on the newest release it may install.
#[derive(Debug, Clone, Serialize)]
pub struct BehindRow {
    /// Serial.
    pub serial: String,
    /// Product.
    pub product: String,
    /// Component.
    pub component: String,
    /// Customer.
    pub customer: String,
    /// Site.
    pub site: String,
    /// Version running.
    pub version: String,
    /// The newest release it may install.
    pub newest_installable: String,
    /// Its version of the component.
    pub to: String,
    /// Newer releases it may not install, with why (the first of them).
    pub blocked: Option<Installable>,
    /// Last seen.
    pub last_seen: String,
}

/// The up-to-date report.
#[derive(Debug, Clone, Serialize)]
pub struct UpToDate {
    /// Per product component.
    pub lines: Vec<LineStatus>,
    /// Per product component, customer and site.
    pub by_site: Vec<BehindAt>,
    /// Device components behind.
    pub rows: Page<BehindRow>,
}

/// What the rules decide for one group of devices: the newest release they may install of
/// their component, and the first newer one they may not.
#[derive(Debug, Clone)]
struct Verdict {
    known: bool,
    newest: Option<(String, String)>,
    blocked: Option<Installable>,
}

impl Context {
    fn verdict(&self, d: &DeviceFacts<'_>, component: &str, version: &str) -> Verdict {
        let known = !self.runs(d.product, component, version).is_empty();
        let decided: Vec<(&Release, Installable)> = self
            .newer(d.product, component, version)
            .into_iter()
            .map(|r| (r, self.may_install(r, d)))
            .collect();
        let last_ok = decided.iter().rposition(|(_, i)| i.may_install);
        let newest = last_ok.map(|k| {
            let r = decided[k].0;
            (
                r.id().to_owned(),
                r.payload_version(component).unwrap_or("").to_owned(),
            )
        });
        // The first release newer than the newest installable one that may not be installed:
        // what keeps the device from the very newest.
        let blocked = decided
            .into_iter()
            .skip(last_ok.map_or(0, |k| k + 1))
            .find(|(_, i)| !i.may_install)
            .map(|(_, i)| i);
        Verdict {
            known,
            newest,
            blocked,
        }
    }
}

fn keep(f: &UpToDateFilter, product: &str, customer: &str, site: &str) -> bool {
    f.product.as_deref().is_none_or(|p| p == product)
        && f.customer.as_deref().is_none_or(|c| c == customer)
        && f.site.as_deref().is_none_or(|s| s == site)
}

/// The up-to-date report: device components not on the newest release they may install.
pub async fn up_to_date(
    store: &dyn PostmarketStore,
    cx: &Context,
    filter: &UpToDateFilter,
    limit: u32,
    offset: u64,
) -> Result<UpToDate, PostmarketError> {
    let groups = store.installed_groups(&[]).await?;
    let mut cache = Verdicts::default();
    let mut lines: BTreeMap<(String, String), LineStatus> = BTreeMap::new();
    let mut sites: BTreeMap<(String, String, String, String), BehindAt> = BTreeMap::new();
    let mut behind_keys: BTreeSet<InstallKey> = BTreeSet::new();
    let mut total = 0u64;
    for g in &groups {
        let customer = customer_of(&g.customer, &g.granted_customer);
        if !keep(filter, &g.product, &customer, &g.site) {
            continue;
        }
        let v = cache.decide(cx, &group_facts(g, &customer), &g.component, &g.version);
        let line = lines
            .entry((g.product.clone(), g.component.clone()))
            .or_insert_with(|| LineStatus {
                product: g.product.clone(),
                component: g.component.clone(),
                newest: cx
                    .releases
                    .iter()
                    .filter(|r| r.row.product == g.product)
                    .filter_map(|r| r.payload_version(&g.component).map(|v| (r, v)))
                    .max_by(|a, b| compare_versions(a.1, b.1).unwrap_or(Ordering::Equal))
                    .map(|(r, _)| r.id().to_owned()),
                devices: 0,
                current: 0,
                behind: 0,
                unknown: 0,
            });
        line.devices += g.count;
        let at = sites
            .entry((
                g.product.clone(),
                g.component.clone(),
                customer.clone(),
                g.site.clone(),
            ))
            .or_insert_with(|| BehindAt {
                product: g.product.clone(),
                component: g.component.clone(),
                customer: customer.clone(),
                site: g.site.clone(),
                devices: 0,
                behind: 0,
            });
        at.devices += g.count;
        if v.newest.is_some() {
            line.behind += g.count;
            at.behind += g.count;
            total += g.count;
            behind_keys.insert(InstallKey {
                product: g.product.clone(),
                component: g.component.clone(),
                version: g.version.clone(),
            });
        } else if v.known {
            line.current += g.count;
        } else {
            line.unknown += g.count;
        }
    }
    // The page: the rows of the versions behind, in serial order, each decided by the same
    // cached verdict as its group (a row of a group that is not behind is skipped); reading
    // stops once the page is full.
    let mut rows = Vec::new();
    let keys: Vec<InstallKey> = behind_keys.into_iter().collect();
    let mut skipped = 0u64;
    let mut from = 0u64;
    const CHUNK: u32 = 2000;
    while !keys.is_empty() && rows.len() < limit as usize {
        let batch = store
            .installed(&InstalledQuery {
                keys: keys.clone(),
                limit: CHUNK,
                offset: from,
                ..Default::default()
            })
            .await?;
        let n = batch.len() as u64;
        for d in batch {
            let customer = customer_of(&d.customer, &d.granted_customer);
            if !keep(filter, &d.product, &customer, &d.site) {
                continue;
            }
            let v = cache.decide(
                cx,
                &DeviceFacts::of(&d, &customer),
                &d.component,
                &d.version,
            );
            let Some((release, to)) = v.newest else {
                continue;
            };
            if skipped < offset {
                skipped += 1;
                continue;
            }
            if rows.len() == limit as usize {
                break;
            }
            rows.push(BehindRow {
                serial: d.serial.clone(),
                product: d.product.clone(),
                component: d.component.clone(),
                site: d.site.clone(),
                version: d.version.clone(),
                newest_installable: release,
                to,
                blocked: v.blocked,
                last_seen: time(d.time_us),
                customer,
            });
        }
        if n < u64::from(CHUNK) {
            break;
        }
        from += n;
    }
    Ok(UpToDate {
        lines: lines.into_values().collect(),
        by_site: sites.into_values().filter(|s| s.devices > 0).collect(),
        rows: Page {
            total,
            offset,
            rows,
        },
    })
}

/// Verdicts cached by everything the rules read: product, component, version, hardware,
/// customer, the site (only where an entitlement that may cover the device names sites), the
/// entitlements naming the serial and the security counter. Devices alike in all of these get
/// the same verdict, so a fleet of 100 000 is decided a few hundred times, not per device.
#[derive(Default)]
struct Verdicts(HashMap<VerdictKey, Verdict>);

type VerdictKey = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<u64>,
);

impl Verdicts {
    fn decide(
        &mut self,
        cx: &Context,
        d: &DeviceFacts<'_>,
        component: &str,
        version: &str,
    ) -> Verdict {
        let key = (
            d.product.to_owned(),
            component.to_owned(),
            version.to_owned(),
            d.hardware.to_owned(),
            d.customer.to_owned(),
            cx.site_matters(d).then(|| d.site.to_owned()),
            d.grants.to_owned(),
            d.security_counter,
        );
        self.0
            .entry(key)
            .or_insert_with(|| cx.verdict(d, component, version))
            .clone()
    }
}

fn group_facts<'a>(g: &'a InstalledGroup, customer: &'a str) -> DeviceFacts<'a> {
    DeviceFacts {
        serial: &g.sample_serial,
        product: &g.product,
        hardware: &g.hardware,
        customer,
        site: &g.site,
        grants: &g.grants,
        security_counter: g.security_counter,
    }
}

// --- licences ----------------------------------------------------------------------------------

/// A component the policy flags or denies.
#[derive(Debug, Clone, Serialize)]
pub struct LicenceFinding {
    /// `name version`.
    pub component: String,
    /// Purl.
    pub purl: String,
    /// Licences as the SBOM gives them.
    pub licences: Vec<String>,
    /// `flag` or `deny`.
    pub verdict: String,
    /// The deciding terms: licence, verdict, rule, reason.
    pub because: Vec<String>,
}

/// One release under the licence policy.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseLicences {
    /// The release.
    pub release: String,
    /// The worst verdict of its components.
    pub verdict: String,
    /// Components.
    pub components: usize,
    /// Devices running it.
    pub devices: u64,
    /// The components flagged or denied.
    pub findings: Vec<LicenceFinding>,
}

/// The licence report.
#[derive(Debug, Clone, Serialize)]
pub struct Licences {
    /// Where the policy came from (`hub setting` or `fieldkit default`).
    pub policy: String,
    /// Per release, worst first.
    pub releases: Vec<ReleaseLicences>,
}

/// The hub's licence policy: the one set with `fieldkit-hub licences set-policy`, else the
/// release policy fieldkit ships.
pub async fn licence_policy(
    store: &dyn PostmarketStore,
) -> Result<(Policy, String), PostmarketError> {
    match store.setting(LICENCE_POLICY).await? {
        Some(text) => Ok((
            Policy::parse(&text).map_err(|e| {
                PostmarketError::refused(
                    "the hub's licence policy",
                    "licence.policy",
                    e.to_string(),
                    "a valid policy",
                )
            })?,
            "hub setting".into(),
        )),
        None => Ok((
            Policy::release_default(),
            "fieldkit default (release-default.toml)".into(),
        )),
    }
}

/// The setting key of the licence policy.
pub const LICENCE_POLICY: &str = "licence_policy";

/// The licence report under `policy`.
pub async fn licences(
    store: &dyn PostmarketStore,
    cx: &Context,
    policy: &Policy,
    source: &str,
) -> Result<Licences, PostmarketError> {
    let components = store.release_components(None, None).await?;
    let groups = store.installed_groups(&[]).await?;
    let mut devices: HashMap<String, u64> = HashMap::new();
    for g in &groups {
        for r in cx.runs(&g.product, &g.component, &g.version) {
            *devices.entry(r.id().to_owned()).or_default() += g.count;
        }
    }
    let mut by: BTreeMap<String, ReleaseLicences> = BTreeMap::new();
    for c in &components {
        let e = by
            .entry(c.release_id.clone())
            .or_insert_with(|| ReleaseLicences {
                release: c.release_id.clone(),
                verdict: "allow".into(),
                components: 0,
                devices: devices.get(&c.release_id).copied().unwrap_or(0),
                findings: Vec::new(),
            });
        e.components += 1;
        let licences: Vec<String> = serde_json::from_str(&c.licences).unwrap_or_default();
        let ev = policy.evaluate(&licences);
        if ev.verdict == fieldkit_licence::Verdict::Allow {
            continue;
        }
        if ev.verdict.as_str() == "deny" || e.verdict == "allow" {
            e.verdict = ev.verdict.as_str().into();
        }
        e.findings.push(LicenceFinding {
            component: format!("{} {}", c.name, c.version),
            purl: c.purl.clone(),
            verdict: ev.verdict.as_str().into(),
            because: ev
                .deciding()
                .map(|t| {
                    format!(
                        "{} {} by rule {:?} ({})",
                        t.licence, t.verdict, t.rule, t.reason
                    )
                    .trim()
                    .to_owned()
                })
                .collect(),
            licences,
        });
    }
    let mut releases: Vec<ReleaseLicences> = by.into_values().collect();
    let rank = |v: &str| match v {
        "deny" => 0,
        "flag" => 1,
        _ => 2,
    };
    releases.sort_by(|a, b| (rank(&a.verdict), &a.release).cmp(&(rank(&b.verdict), &b.release)));
    Ok(Licences {
        policy: source.to_owned(),
        releases,
    })
}

// --- pictures ----------------------------------------------------------------------------------

/// Exposed devices over time.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// The end of each week (RFC 3339), oldest first; the last is now.
    pub ticks: Vec<String>,
    /// Per severity word: distinct devices exposed to at least one vulnerability of that
    /// severity at each tick.
    pub by_severity: BTreeMap<String, Vec<u64>>,
    /// Per vulnerability (the most exposed now, at most 8): devices exposed at each tick.
    pub by_vulnerability: Vec<VulnSeries>,
}

/// One vulnerability's series.
#[derive(Debug, Clone, Serialize)]
pub struct VulnSeries {
    /// Name.
    pub name: String,
    /// Severity word.
    pub severity: String,
    /// Devices exposed at each tick.
    pub devices: Vec<u64>,
}

/// Devices exposed at each of `weeks` weekly ticks ending now, by severity and per
/// vulnerability (all, or only `only`). A device counts as exposed to a vulnerability from the
/// vulnerability's publication on, while the field records show it running an exposed release.
pub async fn series(
    store: &dyn PostmarketStore,
    cx: &Context,
    only: Option<&str>,
    weeks: u32,
) -> Result<Series, PostmarketError> {
    let ticks: Vec<DateTime<Utc>> = (0..weeks)
        .rev()
        .map(|i| cx.now - Duration::weeks(i64::from(i)))
        .collect();
    let vulns: HashMap<String, VulnRow> = store
        .vulnerabilities()
        .await?
        .into_iter()
        .map(|v| (v.name.clone(), v))
        .collect();
    let only_name = match only {
        Some(id) => store.vulnerability(id).await?.map(|v| v.name),
        None => None,
    };
    let matches: Vec<MatchRow> = store
        .matches(only_name.as_deref(), &[])
        .await?
        .into_iter()
        .filter(|m| m.exposed)
        .collect();
    // Which vulnerabilities each installed (product, component, version) exposes.
    // (product, component, version) -> the vulnerabilities (indexes) it exposes.
    type Exposes = HashMap<(String, String, String), Vec<usize>>;
    let mut exposes: Exposes = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for m in &matches {
        let Some(r) = cx.release(&m.release_id) else {
            continue;
        };
        let i = *index.entry(m.vulnerability.clone()).or_insert_with(|| {
            names.push(m.vulnerability.clone());
            names.len() - 1
        });
        for p in &r.row.payloads {
            let list = exposes
                .entry((
                    r.row.product.clone(),
                    p.component.clone(),
                    p.version.clone(),
                ))
                .or_default();
            if !list.contains(&i) {
                list.push(i);
            }
        }
    }
    let published: Vec<i64> = names
        .iter()
        .map(|n| vulns.get(n).map_or(0, |v| v.published_us))
        .collect();
    let pairs: BTreeSet<(String, String)> = exposes
        .keys()
        .map(|(p, c, _)| (p.clone(), c.clone()))
        .collect();
    let pairs: Vec<(String, String)> = pairs.into_iter().collect();
    let history = if pairs.is_empty() {
        Vec::new()
    } else {
        store.history(None, &pairs).await?
    };
    // Per serial and component, the observations in time order (the store sorts by time).
    let mut timelines: BTreeMap<(&str, &str), Vec<&HistoryRow>> = BTreeMap::new();
    for h in &history {
        timelines
            .entry((h.serial.as_str(), h.component.as_str()))
            .or_default()
            .push(h);
    }
    let t_us: Vec<i64> = ticks.iter().map(|t| t.timestamp_micros()).collect();
    // exposed[vuln][tick] = set of serials.
    let mut exposed: Vec<Vec<BTreeSet<&str>>> =
        vec![vec![BTreeSet::new(); ticks.len()]; names.len()];
    for ((serial, _), obs) in &timelines {
        let mut at = 0usize;
        for (ti, &t) in t_us.iter().enumerate() {
            while at < obs.len() && obs[at].time_us <= t {
                at += 1;
            }
            if at == 0 {
                continue;
            }
            let h = obs[at - 1];
            let Some(list) =
                exposes.get(&(h.product.clone(), h.component.clone(), h.version.clone()))
            else {
                continue;
            };
            for vi in list {
                if t >= published[*vi] {
                    exposed[*vi][ti].insert(serial);
                }
            }
        }
    }
    let mut by_severity: BTreeMap<String, Vec<BTreeSet<&str>>> = BTreeMap::new();
    for (vi, name) in names.iter().enumerate() {
        let sev = vulns
            .get(name)
            .map_or("unknown", |v| v.severity.as_str())
            .to_owned();
        let e = by_severity
            .entry(sev)
            .or_insert_with(|| vec![BTreeSet::new(); ticks.len()]);
        for (ti, set) in exposed[vi].iter().enumerate() {
            e[ti].extend(set.iter().copied());
        }
    }
    let mut per: Vec<VulnSeries> = names
        .iter()
        .enumerate()
        .map(|(vi, name)| VulnSeries {
            name: name.clone(),
            severity: vulns
                .get(name)
                .map_or("unknown".into(), |v| v.severity.clone()),
            devices: exposed[vi].iter().map(|s| s.len() as u64).collect(),
        })
        .collect();
    per.sort_by(|a, b| {
        (
            std::cmp::Reverse(a.devices.last().copied().unwrap_or(0)),
            severity_rank(&a.severity),
            &a.name,
        )
            .cmp(&(
                std::cmp::Reverse(b.devices.last().copied().unwrap_or(0)),
                severity_rank(&b.severity),
                &b.name,
            ))
    });
    per.truncate(8);
    Ok(Series {
        ticks: ticks
            .iter()
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .collect(),
        by_severity: by_severity
            .into_iter()
            .map(|(k, v)| (k, v.iter().map(|s| s.len() as u64).collect()))
            .collect(),
        by_vulnerability: per,
    })
}

// --- CSV ---------------------------------------------------------------------------------------

/// The device rows of an exposure answer as CSV, every cell through `fieldkit_inert::csv_cell`
/// (a serial or site typed as `=HYPERLINK(…)` on a laptop stays text in a spreadsheet).
pub fn exposure_csv(vulnerability: &str, rows: &[DeviceRow]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "vulnerability",
        "serial",
        "product",
        "model",
        "customer",
        "site",
        "component",
        "version",
        "releases",
        "build",
        "exposed",
        "vex_state",
        "fixed_in",
        "may_install",
        "why_not",
        "last_seen",
    ];
    let _ = w.write_record(header);
    for d in rows {
        let build = match d.build {
            Build::Matches => "released build",
            Build::Differs => "not the released build",
            Build::NotCompared => "not compared",
        };
        let cells = [
            vulnerability.to_owned(),
            d.serial.clone(),
            d.product.clone(),
            d.model.clone(),
            d.customer.clone(),
            d.site.clone(),
            d.component.clone(),
            d.version.clone(),
            d.releases.join(" "),
            build.to_owned(),
            d.exposed.to_string(),
            d.vex_state.clone(),
            d.fix.fixed_in.clone().unwrap_or_default(),
            d.fix
                .installable
                .as_ref()
                .map(|i| i.release.clone())
                .unwrap_or_default(),
            d.fix
                .why_not
                .as_ref()
                .map(|i| i.because.clone())
                .unwrap_or_default(),
            d.last_seen.clone(),
        ];
        let _ = w.write_record(
            cells
                .iter()
                .map(|c| fieldkit_inert::csv_cell(c).into_owned()),
        );
    }
    w.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(granted: &[(&str, &str)]) -> Context {
        Context {
            held: Arc::new(Held {
                material: None,
                releases: Vec::new(),
                by_id: HashMap::new(),
                wildcards: HashMap::new(),
                granted: granted
                    .iter()
                    .map(|(s, c)| ((*s).to_owned(), (*c).to_owned()))
                    .collect(),
            }),
            now: Utc::now(),
        }
    }

    fn row(serial: &str, site: &str, customer: &str, exposed: bool) -> DeviceSite {
        DeviceSite {
            serial: serial.into(),
            site: site.into(),
            customer: customer.into(),
            exposed,
        }
    }

    fn sites(c: &Counts) -> Vec<(&str, &str, u64, u64)> {
        c.by_site
            .iter()
            .map(|s| (s.site.as_str(), s.customer.as_str(), s.devices, s.exposed))
            .collect()
    }

    #[test]
    fn a_device_counts_once_however_many_of_its_components_match() {
        let cx = context(&[("D1", "Acme"), ("D2", "Acme"), ("D3", "Acme")]);
        let c = cx.count(&[
            // D1's app (not exposed) and netcore (exposed), at one site.
            row("D1", "North", "", false),
            row("D1", "North", "", true),
            row("D2", "North", "", false),
            // The record names a customer: it wins over the entitlements'.
            row("D3", "South", "Named", true),
        ]);
        assert_eq!((c.total, c.exposed), (3, 2));
        assert_eq!(
            sites(&c),
            [("North", "Acme", 2, 1), ("South", "Named", 1, 1)]
        );
    }

    #[test]
    fn a_device_seen_at_two_sites_counts_at_each_and_once_in_all() {
        let cx = context(&[]);
        let c = cx.count(&[
            row("D1", "North", "", true),
            row("D1", "South", "", false),
            row("D2", "South", "Beta", false),
        ]);
        assert_eq!((c.total, c.exposed), (2, 1));
        assert_eq!(
            sites(&c),
            [
                ("North", "", 1, 1),
                ("South", "", 1, 0),
                ("South", "Beta", 1, 0)
            ]
        );
    }
}
