//! Results as a Markdown section, and writing that section into the README
//! between markers, so the README's figures always come from a run.

use std::path::Path;

use anyhow::Context;

/// One benchmark's results, ready for the README.
pub struct Section {
    /// Names the README markers: `<!-- bench:NAME:start -->` … `<!-- bench:NAME:end -->`.
    pub name: &'static str,
    pub markdown: String,
}

/// A Markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

pub fn write_readme_section(readme: &Path, section: &Section) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(readme)
        .with_context(|| format!("cannot read {}", readme.display()))?;
    let start = format!("<!-- bench:{}:start -->", section.name);
    let end = format!("<!-- bench:{}:end -->", section.name);
    let (Some(a), Some(b)) = (text.find(&start), text.find(&end)) else {
        anyhow::bail!("{} has no {start} … {end} markers", readme.display());
    };
    anyhow::ensure!(a < b, "{start} comes after {end} in {}", readme.display());
    let updated = format!(
        "{}{start}\n{}{end}{}",
        &text[..a],
        section.markdown,
        &text[b + end.len()..]
    );
    std::fs::write(readme, updated).with_context(|| format!("cannot write {}", readme.display()))
}
