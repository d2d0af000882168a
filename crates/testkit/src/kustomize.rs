//! `kubectl kustomize`, which renders `deploy/` (the release manifest, the components and the
//! example overlays). Components (`kind: Component`) need kustomize v3.7+, i.e. kubectl 1.21+;
//! Debian's kubernetes-client (1.20) embeds kustomize v2, which ignores them.
//!
//! As with [`promtool`](crate::promtool): `$CERTKEEPER_KUBECTL` names the kubectl and makes it
//! required (a missing file, or a kubectl whose kustomize cannot render a component, is an
//! error); without it, `kubectl` is looked up on PATH, and a test may skip, saying why, when
//! there is none or it cannot render a component.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::readers::{optional_tool, run};

const VARIABLE: &str = "CERTKEEPER_KUBECTL";
const INSTALL: &str = "install a kubectl 1.21+ (kustomize v4+, with components); scripts/test sets it when `kubectl kustomize` renders a component";

/// The kubectl whose `kustomize` renders components: `Ok(Err(why))` when `CERTKEEPER_KUBECTL`
/// is unset and PATH has none that can (the caller skips, printing `why`).
pub fn kustomize_kubectl() -> Result<std::result::Result<PathBuf, String>> {
    let required = std::env::var_os(VARIABLE).is_some_and(|v| !v.is_empty());
    let Some(kubectl) = optional_tool(VARIABLE, "kubectl", INSTALL)? else {
        return Ok(Err(format!("no kubectl on PATH and {VARIABLE} unset; {INSTALL}")));
    };
    match renders_components(&kubectl) {
        Ok(()) => Ok(Ok(kubectl)),
        Err(e) if required => Err(e.context(format!("{VARIABLE}={}; {INSTALL}", kubectl.display()))),
        Err(e) => Ok(Err(format!("{e:#} ({VARIABLE} unset; {INSTALL})"))),
    }
}

/// Whether `kubectl kustomize` renders an overlay that adds an object through a component.
pub fn renders_components(kubectl: &Path) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("certkeeper-kustomize")
        .tempdir()
        .context("temp dir")?;
    let component = dir.path().join("component");
    std::fs::create_dir(&component).context("creating the probe's component")?;
    std::fs::write(
        component.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [probe.yaml]\n",
    )?;
    std::fs::write(
        component.join("probe.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: component-probe}\n",
    )?;
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\ncomponents: [component]\n",
    )?;
    let rendered = kustomize(kubectl, dir.path())
        .with_context(|| format!("{} kustomize cannot render a component", kubectl.display()))?;
    if !rendered.contains("component-probe") {
        bail!(
            "{} kustomize ignores components (kustomize before v3.7?): rendered {rendered:?}",
            kubectl.display()
        );
    }
    Ok(())
}

/// `kubectl kustomize dir`: the rendered YAML stream.
pub fn kustomize(kubectl: &Path, dir: &Path) -> Result<String> {
    let dir = dir.to_str().context("a directory whose path is not UTF-8")?;
    let out = run(kubectl, &["kustomize", dir], b"")?;
    String::from_utf8(out.stdout).context("kubectl kustomize printed non-UTF-8")
}
