//! `fieldkit profiles`.

use fieldkit_core::Home;
use serde::Serialize;

use crate::output::Output;

#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    vendor: &'a str,
    model: &'a str,
    kind: &'a str,
    family: fieldkit_profile::Family,
    components: Vec<&'a str>,
}

pub(crate) fn run(home: &Home, out: &Output) -> anyhow::Result<()> {
    let profiles = home.profiles()?;
    let rows: Vec<Row> = profiles
        .iter()
        .map(|p| Row {
            id: p.id(),
            vendor: &p.vendor,
            model: &p.model,
            kind: &p.kind,
            family: p.family(),
            components: p
                .components
                .iter()
                .map(|c| c.name.get_ref().as_str())
                .collect(),
        })
        .collect();
    out.print(&rows, || {
        rows.iter()
            .map(|r| {
                format!(
                    "{:<22} {} {} ({}), components: {}\n",
                    r.id,
                    r.vendor,
                    r.model,
                    r.kind,
                    r.components.join(", ")
                )
            })
            .collect()
    });
    Ok(())
}
