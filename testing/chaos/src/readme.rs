//! The README's campaign figures, generated from the runs' summaries so they
//! never go stale by hand.

use std::path::Path;

use anyhow::Context;

use crate::run::Summary;

const START: &str = "<!-- chaos:start -->";
const END: &str = "<!-- chaos:end -->";

/// Aggregates the summaries in `summaries` (JSON lines) and rewrites the text
/// between the markers in `readme`. Returns the new section.
pub fn update(summaries: &Path, readme: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(summaries)
        .with_context(|| format!("reading {}", summaries.display()))?;
    let runs: Vec<Summary> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", summaries.display()))?;
    anyhow::ensure!(!runs.is_empty(), "{} has no runs", summaries.display());
    let section = render(&runs);
    let document =
        std::fs::read_to_string(readme).with_context(|| format!("reading {}", readme.display()))?;
    let (Some(start), Some(end)) = (document.find(START), document.find(END)) else {
        anyhow::bail!("{} has no {START} … {END} markers", readme.display());
    };
    anyhow::ensure!(
        start < end,
        "the markers in {} are out of order",
        readme.display()
    );
    let updated = format!(
        "{}{START}\n{section}{}",
        &document[..start],
        &document[end..]
    );
    std::fs::write(readme, updated).with_context(|| format!("writing {}", readme.display()))?;
    Ok(section)
}

fn render(runs: &[Summary]) -> String {
    let (real, planted): (Vec<&Summary>, Vec<&Summary>) =
        runs.iter().partition(|r| r.planted_bug.is_none());
    let sum = |f: fn(&Summary) -> u64| real.iter().map(|r| f(r)).sum::<u64>();
    let seeds_min = real.iter().map(|r| r.seed).min().unwrap_or(0);
    let seeds_max = real.iter().map(|r| r.seed).max().unwrap_or(0);
    let mut sizes: Vec<usize> = real.iter().map(|r| r.servers).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let sizes: Vec<String> = sizes.iter().map(usize::to_string).collect();
    let mut faults: Vec<String> = real.iter().flat_map(|r| r.faults_enabled.clone()).collect();
    faults.sort();
    faults.dedup();
    let mut bugs: Vec<String> = planted
        .iter()
        .filter_map(|r| r.planted_bug.clone())
        .collect();
    bugs.sort();
    bugs.dedup();
    let caught = planted.iter().filter(|r| r.anomalies > 0).count();
    let planted_anomalies: u64 = planted.iter().map(|r| r.anomalies).sum();
    format!(
        "| runs | seeds | servers | seconds per run | faults | operations | indeterminate | watch events | lease renewals | TTL renewals | faults injected | anomalies | undecided keys |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n\
         | {} | {seeds_min}–{seeds_max} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n\
         \n\
         Planted-bug runs ({}): {}, caught: {caught} ({planted_anomalies} anomalies reported).\n",
        real.len(),
        sizes.join(", "),
        real.iter().map(|r| r.duration_secs).max().unwrap_or(0),
        faults.join(", "),
        sum(|r| r.ops),
        sum(|r| r.indeterminate),
        sum(|r| r.watch_events),
        sum(|r| r.lease_renewals),
        sum(|r| r.ttl_renewals),
        sum(|r| r.faults),
        sum(|r| r.anomalies),
        sum(|r| r.undecided),
        if bugs.is_empty() { "none".to_owned() } else { bugs.join(", ") },
        planted.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(seed: u64, planted: Option<&str>, anomalies: u64) -> Summary {
        Summary {
            seed,
            duration_secs: 60,
            servers: 3,
            faults_enabled: vec!["kill".to_owned()],
            planted_bug: planted.map(str::to_owned),
            ops: 100,
            indeterminate: 5,
            faults: 10,
            anomalies,
            undecided: 0,
            watch_events: 0,
            lease_renewals: 7,
            ttl_renewals: 30,
        }
    }

    #[test]
    fn summaries_from_before_the_ttl_holders_still_parse() {
        let old = r#"{"seed":1,"duration_secs":60,"servers":3,"faults_enabled":["kill"],"planted_bug":null,"ops":100,"indeterminate":5,"faults":10,"anomalies":0,"undecided":0,"watch_events":3,"lease_renewals":7}"#;
        let run: Summary = serde_json::from_str(old).expect("an older summary");
        assert_eq!((run.lease_renewals, run.ttl_renewals), (7, 0));
    }

    #[test]
    fn planted_runs_are_counted_apart_from_real_ones() {
        let runs = [
            summary(1, None, 0),
            summary(2, None, 0),
            summary(9, Some("stale-reads"), 4),
        ];
        let text = render(&runs);
        assert!(
            text.contains("| 2 | 1–2 | 3 | 60 | kill | 200 | 10 | 0 | 14 | 60 | 20 | 0 | 0 |"),
            "{text}"
        );
        assert!(
            text.contains("Planted-bug runs (stale-reads): 1, caught: 1 (4 anomalies"),
            "{text}"
        );
    }
}
