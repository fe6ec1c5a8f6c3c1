//! The post-market commands of `fieldkit-hub`: parsing and printing only; every decision is
//! `fieldkit_hub::postmarket`'s.
//!
//! Each command takes `--json` (one JSON document on stdout) or prints text for a person. Text
//! that came from a file (an advisory's summary, a VEX author, a site typed on a laptop) is
//! printed with control characters escaped, so no file can drive the terminal.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use fieldkit_hub::Store;
use fieldkit_hub::postmarket::answers::{self, Context};
use fieldkit_hub::postmarket::api::{ExposureAnswer, answer};
use fieldkit_hub::postmarket::import::{self, Context as ImportContext, Report};
use fieldkit_hub::postmarket::query::{ExposureParams, UpToDateParams};
use fieldkit_hub::postmarket::trust::{self, Pinned, RootSummary};
use fieldkit_hub::postmarket::vexrecord::Decision;
use serde::Serialize;

use crate::Db;

/// `--json`.
#[derive(Args, Clone, Copy)]
pub(crate) struct Json {
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub(crate) enum TrustCmd {
    /// Pin the manufacturer's trust root (first time), or accept the next rotation of it.
    Pin {
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        out: Json,
        /// The root file (`root.json`).
        file: PathBuf,
    },
    /// Show the hub's current trust root.
    Show {
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        out: Json,
    },
}

#[derive(Subcommand)]
pub(crate) enum ImportCmd {
    /// Import files.
    Import {
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        out: Json,
        /// Who is importing (recorded with VEX documents; default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
pub(crate) enum VexCmd {
    /// Import VEX documents (CycloneDX VEX, OpenVEX, CSAF 2.0).
    Import {
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        out: Json,
        /// Who is importing (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Record a decision about a vulnerability in a product (signed by the hub, with its
    /// author).
    Decide {
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        out: Json,
        /// Who decides.
        #[arg(long)]
        by: String,
        /// The vulnerability (any of its ids).
        #[arg(long)]
        vulnerability: String,
        /// The product: a purl, with `@VERSION` or `@vers:SCHEME/CONSTRAINTS` for a range.
        #[arg(long)]
        product: String,
        /// Limit the decision to this subcomponent (a purl); repeatable.
        #[arg(long = "subcomponent")]
        subcomponents: Vec<String>,
        /// not_affected, affected, fixed or under_investigation.
        #[arg(long)]
        status: String,
        /// For not_affected: component_not_present, vulnerable_code_not_present,
        /// vulnerable_code_not_in_execute_path,
        /// vulnerable_code_cannot_be_controlled_by_adversary or inline_mitigations_already_exist.
        #[arg(long)]
        justification: Option<String>,
        /// Why, in words.
        #[arg(long)]
        impact: Option<String>,
        /// What to do.
        #[arg(long)]
        action: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum LicenceCmd {
    /// The licence report: releases whose components the policy flags or denies.
    Report {
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        out: Json,
        /// Judge by this policy file instead of the hub's.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Set the hub's licence policy (TOML, as `fieldkit package build --licence-policy`).
    SetPolicy {
        #[command(flatten)]
        db: Db,
        /// The policy file.
        file: PathBuf,
    },
}

/// `exposure`'s arguments.
#[derive(Args)]
pub(crate) struct ExposureArgs {
    #[command(flatten)]
    db: Db,
    #[command(flatten)]
    out: Json,
    /// A vulnerability id or alias.
    #[arg(long, conflicts_with_all = ["component", "device"])]
    id: Option<String>,
    /// A purl, `purl@VERSION` or `purl@vers:SCHEME/CONSTRAINTS`.
    #[arg(long, conflicts_with = "device")]
    component: Option<String>,
    /// A device serial.
    #[arg(long)]
    device: Option<String>,
    /// Device rows per page.
    #[arg(long)]
    limit: Option<u32>,
    /// Device rows to skip.
    #[arg(long)]
    offset: Option<u64>,
}

/// `uptodate`'s arguments.
#[derive(Args)]
pub(crate) struct UpToDateArgs {
    #[command(flatten)]
    db: Db,
    #[command(flatten)]
    out: Json,
    /// Only this product.
    #[arg(long)]
    product: Option<String>,
    /// Only this customer.
    #[arg(long)]
    customer: Option<String>,
    /// Only this site.
    #[arg(long)]
    site: Option<String>,
    /// Device rows per page.
    #[arg(long)]
    limit: Option<u32>,
    /// Device rows to skip.
    #[arg(long)]
    offset: Option<u64>,
}

/// Text from files and laptops reaches the terminal as text (`fieldkit_inert::terminal`).
fn t(s: &str) -> String {
    fieldkit_inert::terminal(s).into_owned()
}

fn print<T: Serialize>(
    out: Json,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if out.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text(value));
    }
    Ok(())
}

async fn open(db: &Db) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    Ok(fieldkit_hub::open_store(&db.db).await?)
}

fn operator(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "operator".into())
}

fn report_text(r: &Report) -> String {
    let mut s = String::new();
    for f in &r.files {
        s.push_str(&format!("{}: {}: {}\n", t(&f.file), f.result, t(&f.detail)));
        for k in &f.skipped {
            s.push_str(&format!("  skipped {}\n", t(k)));
        }
    }
    if let Some(a) = &r.analysis {
        s.push_str(&format!(
            "analysis: {} advisories, {} vulnerabilities, {} releases, {} release components affected ({} exposed), {} VEX statements\n",
            a.advisories, a.vulnerabilities, a.releases, a.matches, a.exposed, a.vex_statements
        ));
        if !a.vex_unverified.is_empty() {
            s.push_str(&format!(
                "warning: VEX records {:?} do not verify under the hub's key and are left out\n",
                a.vex_unverified
            ));
        }
    }
    s
}

fn finish(out: Json, r: &Report) -> anyhow::Result<()> {
    print(out, r, report_text)?;
    if r.any_refused() {
        bail!(
            "{} of {} file(s) refused",
            r.files.iter().filter(|f| f.result == "refused").count(),
            r.files.len()
        );
    }
    Ok(())
}

fn paths(files: &[PathBuf]) -> Vec<&Path> {
    files.iter().map(PathBuf::as_path).collect()
}

pub(crate) async fn trust_cmd(cmd: TrustCmd) -> anyhow::Result<()> {
    match cmd {
        TrustCmd::Pin { db, out, file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let store = open(&db).await?;
            let pinned = trust::pin(store.postmarket(), &bytes).await?;
            let root = trust::root(store.postmarket()).await?;
            #[derive(Serialize)]
            struct Out {
                #[serde(flatten)]
                pinned: Pinned,
                root: RootSummary,
            }
            let o = Out {
                pinned,
                root: RootSummary::of(&root),
            };
            print(out, &o, |o| {
                let what = match o.pinned {
                    Pinned::Pinned { version } => format!("pinned trust root version {version}"),
                    Pinned::Rotated { version } => {
                        format!("rotated to trust root version {version}")
                    }
                    Pinned::Unchanged { version } => {
                        format!("trust root version {version} is already the hub's")
                    }
                };
                format!("{what}\n{}", root_text(&o.root))
            })
        }
        TrustCmd::Show { db, out } => {
            let store = open(&db).await?;
            let root = trust::root(store.postmarket()).await?;
            print(out, &RootSummary::of(&root), root_text)
        }
    }
}

fn root_text(r: &RootSummary) -> String {
    let mut s = format!(
        "version {}, expires {}, security releases {}\n",
        r.version,
        r.expires,
        if r.security_updates_without_entitlement {
            "install without an entitlement"
        } else {
            "need an entitlement"
        }
    );
    for (role, (threshold, keys)) in &r.roles {
        s.push_str(&format!("  {role} (threshold {threshold}):\n"));
        for k in keys {
            s.push_str(&format!("    {k}\n"));
        }
    }
    s
}

pub(crate) async fn releases_cmd(cmd: ImportCmd) -> anyhow::Result<()> {
    let ImportCmd::Import { db, out, by, files } = cmd;
    signed_import(Signed::Releases, db, out, by, files).await
}

pub(crate) async fn advisories_cmd(cmd: ImportCmd) -> anyhow::Result<()> {
    let ImportCmd::Import { db, out, by, files } = cmd;
    signed_import(Signed::Advisories, db, out, by, files).await
}

/// The imports the hub records as its own signed decisions, in the operator's name.
enum Signed {
    Releases,
    Advisories,
    Vex,
}

async fn signed_import(
    kind: Signed,
    db: Db,
    out: Json,
    by: Option<String>,
    files: Vec<PathBuf>,
) -> anyhow::Result<()> {
    let hub = db.identity()?;
    let store = open(&db).await?;
    let by = operator(by);
    let cx = ImportContext {
        hub: &hub,
        by: &by,
        now: chrono::Utc::now(),
    };
    let (pm, files) = (store.postmarket(), paths(&files));
    let r = match kind {
        Signed::Releases => import::releases(pm, cx, &files).await?,
        Signed::Advisories => import::advisories(pm, cx, &files).await?,
        Signed::Vex => import::vex(pm, cx, &files).await?,
    };
    finish(out, &r)
}

pub(crate) async fn entitlements_cmd(cmd: ImportCmd) -> anyhow::Result<()> {
    let ImportCmd::Import { db, out, files, .. } = cmd;
    let store = open(&db).await?;
    let r = import::entitlements(store.postmarket(), &paths(&files)).await?;
    finish(out, &r)
}

pub(crate) async fn recalls_cmd(cmd: ImportCmd) -> anyhow::Result<()> {
    let ImportCmd::Import { db, out, files, .. } = cmd;
    let store = open(&db).await?;
    let r = import::recalls(store.postmarket(), &paths(&files)).await?;
    finish(out, &r)
}

pub(crate) async fn vex_cmd(cmd: VexCmd) -> anyhow::Result<()> {
    match cmd {
        VexCmd::Import { db, out, by, files } => {
            signed_import(Signed::Vex, db, out, by, files).await
        }
        VexCmd::Decide {
            db,
            out,
            by,
            vulnerability,
            product,
            subcomponents,
            status,
            justification,
            impact,
            action,
        } => {
            let hub = db.identity()?;
            let store = open(&db).await?;
            let d = Decision {
                vulnerability,
                product,
                subcomponents,
                status,
                justification,
                impact,
                action,
            };
            let cx = ImportContext {
                hub: &hub,
                by: &by,
                now: chrono::Utc::now(),
            };
            let (record, analysis) = import::decide(store.postmarket(), cx, &d).await?;
            #[derive(Serialize)]
            struct Out {
                record: i64,
                analysis: fieldkit_hub::postmarket::analysis::Summary,
            }
            print(out, &Out { record, analysis }, |o| {
                format!(
                    "recorded VEX decision {} by {}, signed by the hub; {} release components affected, {} exposed\n",
                    o.record,
                    t(&by),
                    o.analysis.matches,
                    o.analysis.exposed
                )
            })
        }
    }
}

pub(crate) async fn exposure_cmd(a: ExposureArgs) -> anyhow::Result<()> {
    let params = ExposureParams {
        id: a.id,
        component: a.component,
        device: a.device,
        limit: a.limit.map(|n| n.to_string()),
        offset: a.offset.map(|n| n.to_string()),
    };
    let q = params.to_query()?;
    let store = open(&a.db).await?;
    let cx = Context::load(store.postmarket(), chrono::Utc::now()).await?;
    let Some(ans) = answer(store.postmarket(), &cx, q).await? else {
        bail!(
            "{}",
            match (&params.id, &params.device) {
                (Some(id), _) => format!("no advisory with id or alias {:?} is imported", t(id)),
                (_, Some(s)) => format!("no field record shows device {:?}", t(s)),
                _ => "nothing found".into(),
            }
        );
    };
    print(a.out, &ans, exposure_text)
}

fn fix_text(f: &answers::Fix) -> String {
    match (&f.fixed_in, &f.installable, &f.why_not) {
        (None, _, _) => "no fixing release known".into(),
        (Some(_), Some(i), _) => format!("may install {}", i.release),
        (Some(r), None, Some(w)) => format!("fixed in {r}, may not install it: {}", t(&w.because)),
        (Some(r), None, None) => format!("fixed in {r}"),
    }
}

fn exposure_text(a: &ExposureAnswer) -> String {
    let mut s = String::new();
    let devices = |s: &mut String, rows: &answers::Page<answers::DeviceRow>| {
        s.push_str(&format!(
            "devices ({} of {}, from {}):\n",
            rows.rows.len(),
            rows.total,
            rows.offset + 1
        ));
        for d in &rows.rows {
            s.push_str(&format!(
                "  {}  {} {} {}{}  at {} ({})  {}  {}\n",
                t(&d.serial),
                t(&d.product),
                t(&d.component),
                t(&d.version),
                if d.build == answers::Build::Differs {
                    " (not the released build)"
                } else {
                    ""
                },
                t(&d.site),
                if d.customer.is_empty() {
                    "customer unknown".into()
                } else {
                    t(&d.customer)
                },
                if d.exposed {
                    "EXPOSED".to_owned()
                } else {
                    format!("not exposed ({})", d.vex_state)
                },
                fix_text(&d.fix)
            ));
        }
    };
    match a {
        ExposureAnswer::Vulnerability(v) => {
            let x = &v.vulnerability;
            s.push_str(&format!(
                "{} ({}{}){}: {}\n  ids: {}\n",
                t(&x.name),
                x.severity,
                x.score.map(|n| format!(" {n}")).unwrap_or_default(),
                if x.withdrawn { " WITHDRAWN" } else { "" },
                t(&x.summary),
                t(&x.ids.join(", "))
            ));
            s.push_str(&format!(
                "affects {} release component(s):\n",
                v.releases.len()
            ));
            for r in &v.releases {
                s.push_str(&format!(
                    "  {}  {}  [{} by {}: {}]{}{}\n",
                    t(&r.release),
                    t(&r.component),
                    r.verdict,
                    r.matched_by,
                    t(&r.because),
                    r.vex
                        .as_ref()
                        .map(|x| format!(
                            "  VEX {} by {}{}",
                            x.state,
                            t(&x.author),
                            x.justification
                                .as_ref()
                                .map(|j| format!(" ({j})"))
                                .unwrap_or_default()
                        ))
                        .unwrap_or_default(),
                    if r.exposed { "" } else { "  (not exposed)" }
                ));
            }
            s.push_str(&format!(
                "{} device(s) run an affected release, {} exposed\n",
                v.devices, v.exposed
            ));
            for site in &v.by_site {
                s.push_str(&format!(
                    "  {} ({}): {} device(s), {} exposed\n",
                    t(&site.site),
                    t(&site.customer),
                    site.devices,
                    site.exposed
                ));
            }
            devices(&mut s, &v.rows);
        }
        ExposureAnswer::Component(c) => {
            s.push_str(&format!(
                "{}: in {} release component(s), run by {} device(s)\n",
                t(&c.component),
                c.releases.len(),
                c.devices
            ));
            for r in &c.releases {
                let vulns: Vec<String> = r
                    .vulnerabilities
                    .iter()
                    .map(|v| {
                        format!(
                            "{} {}{}",
                            t(&v.name),
                            v.severity,
                            if v.exposed { "" } else { " (cleared by VEX)" }
                        )
                    })
                    .collect();
                s.push_str(&format!(
                    "  {}  {}  {}\n",
                    t(&r.release),
                    t(&r.component),
                    if vulns.is_empty() {
                        "no known vulnerability".into()
                    } else {
                        vulns.join(", ")
                    }
                ));
            }
            devices(&mut s, &c.rows);
        }
        ExposureAnswer::Device(d) => {
            s.push_str(&format!(
                "{} ({} {}) at {} ({})\n",
                t(&d.serial),
                t(&d.product),
                t(&d.model),
                t(&d.site),
                if d.customer.is_empty() {
                    "customer unknown".into()
                } else {
                    t(&d.customer)
                }
            ));
            for c in &d.components {
                s.push_str(&format!(
                    "  {} {}: {} ({} SBOM components)\n",
                    t(&c.component),
                    t(&c.version),
                    if c.releases.is_empty() {
                        "no release the hub holds".into()
                    } else {
                        t(&c.releases.join(", "))
                    },
                    c.sbom.len()
                ));
            }
            s.push_str(&format!("{} vulnerabilit(ies):\n", d.vulnerabilities.len()));
            for v in &d.vulnerabilities {
                s.push_str(&format!(
                    "  {} ({}) in {} [{}]: {}  {}\n",
                    t(&v.vulnerability.name),
                    v.vulnerability.severity,
                    t(&v.component),
                    if v.matched.exposed {
                        "EXPOSED".to_owned()
                    } else {
                        v.matched
                            .vex
                            .as_ref()
                            .map_or("not exposed".into(), |x| x.state.clone())
                    },
                    t(&v.matched.component),
                    fix_text(&v.fix)
                ));
            }
            s.push_str("history:\n");
            for h in &d.history {
                s.push_str(&format!(
                    "  {}  {} {}  at {}  ({}{})\n",
                    h.time,
                    t(&h.component),
                    t(&h.version),
                    t(&h.site),
                    t(&h.event),
                    if h.package.is_empty() {
                        String::new()
                    } else {
                        format!(", from {}", t(&h.package))
                    }
                ));
            }
        }
    }
    s
}

pub(crate) async fn uptodate_cmd(a: UpToDateArgs) -> anyhow::Result<()> {
    let params = UpToDateParams {
        product: a.product,
        customer: a.customer,
        site: a.site,
        limit: a.limit.map(|n| n.to_string()),
        offset: a.offset.map(|n| n.to_string()),
    };
    let (filter, limit, offset) = params.to_query()?;
    let store = open(&a.db).await?;
    let cx = Context::load(store.postmarket(), chrono::Utc::now()).await?;
    let r = answers::up_to_date(store.postmarket(), &cx, &filter, limit, offset).await?;
    print(a.out, &r, |r| {
        let mut s = String::new();
        for l in &r.lines {
            s.push_str(&format!(
                "{} {}: {} device(s), {} on the newest release they may install, {} behind, {} on a release the hub does not hold (newest held: {})\n",
                t(&l.product),
                t(&l.component),
                l.devices,
                l.current,
                l.behind,
                l.unknown,
                l.newest.as_deref().map(t).unwrap_or_else(|| "none".into())
            ));
        }
        for b in r.by_site.iter().filter(|b| b.behind > 0) {
            s.push_str(&format!(
                "  {} {} at {} ({}): {} of {} behind\n",
                t(&b.product),
                t(&b.component),
                t(&b.site),
                t(&b.customer),
                b.behind,
                b.devices
            ));
        }
        s.push_str(&format!(
            "behind ({} of {}):\n",
            r.rows.rows.len(),
            r.rows.total
        ));
        for d in &r.rows.rows {
            s.push_str(&format!(
                "  {}  {} {} {} -> {} ({})  at {}{}\n",
                t(&d.serial),
                t(&d.product),
                t(&d.component),
                t(&d.version),
                t(&d.to),
                t(&d.newest_installable),
                t(&d.site),
                d.blocked
                    .as_ref()
                    .map(|b| format!("; not {}: {}", t(&b.release), t(&b.because)))
                    .unwrap_or_default()
            ));
        }
        s
    })
}

pub(crate) async fn licences_cmd(cmd: LicenceCmd) -> anyhow::Result<()> {
    match cmd {
        LicenceCmd::Report { db, out, policy } => {
            let store = open(&db).await?;
            let pm = store.postmarket();
            let (policy, source) = match policy {
                Some(p) => {
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read {}", p.display()))?;
                    (
                        fieldkit_licence::Policy::parse(&text)
                            .with_context(|| format!("{}", p.display()))?,
                        p.display().to_string(),
                    )
                }
                None => answers::licence_policy(pm).await?,
            };
            let cx = Context::load(pm, chrono::Utc::now()).await?;
            let r = answers::licences(pm, &cx, &policy, &source).await?;
            print(out, &r, |r| {
                let mut s = format!("licence policy: {}\n", t(&r.policy));
                for rel in &r.releases {
                    s.push_str(&format!(
                        "{}: {} ({} components, {} device(s))\n",
                        t(&rel.release),
                        rel.verdict,
                        rel.components,
                        rel.devices
                    ));
                    for f in &rel.findings {
                        s.push_str(&format!(
                            "  {} {} ({}): {}\n",
                            f.verdict,
                            t(&f.component),
                            t(&f.purl),
                            t(&f.because.join("; "))
                        ));
                    }
                }
                s
            })
        }
        LicenceCmd::SetPolicy { db, file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            fieldkit_licence::Policy::parse(&text)
                .with_context(|| format!("{}", file.display()))?;
            let store = open(&db).await?;
            store
                .postmarket()
                .set_setting(answers::LICENCE_POLICY, &text)
                .await?;
            println!("the hub's licence policy is now {}", file.display());
            Ok(())
        }
    }
}
