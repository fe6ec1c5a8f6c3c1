//! `fieldkit ports`.

use fieldkit_core::Home;

use crate::output::Output;

pub(crate) fn run(home: &Home, out: &Output) -> anyhow::Result<()> {
    let profiles = home.profiles()?;
    let ports = fieldkit_link::discover(&profiles)?;
    out.print(&ports, || {
        if ports.is_empty() {
            return "No serial ports found. Plug in the service cable, or start a simulated device with `fieldkit sim --profile ID`.\n".into();
        }
        let mut s = String::new();
        for p in &ports {
            let usb = match (p.vid, p.pid) {
                (Some(v), Some(d)) => format!("{v:04x}:{d:04x}"),
                _ => "-".into(),
            };
            s += &format!(
                "{:<16} {:<9} {:<10} {:<28} {}\n",
                p.path,
                p.kind,
                usb,
                p.product.as_deref().unwrap_or("-"),
                p.profile.as_deref().unwrap_or("(no matching profile)")
            );
        }
        s
    });
    Ok(())
}
