//! `assisters eval injection|moderation FILE…`: measures the gateway's own
//! scanners, with the settings `serve` would use (config file, environment,
//! and the settings stored in the data dir), on labelled JSON Lines
//! (`{"text": …, "label": 0|1}`). Prints one JSON object per file and one
//! for the total: `file`, `count`, `precision`, `recall`,
//! `false_positive_rate` (`null` where undefined).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use super::output;
use crate::config::{Config, Overrides};
use crate::safety::injection::Detector;
use crate::safety::moderation::Moderator;
use crate::safety::Policy;
use crate::settings::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Injection,
    Moderation,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: u64,
    fp: u64,
    tn: u64,
    fn_: u64,
}

impl Counts {
    fn add(&mut self, label: bool, predicted: bool) {
        match (label, predicted) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (false, false) => self.tn += 1,
            (true, false) => self.fn_ += 1,
        }
    }

    fn merge(&mut self, o: &Counts) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.tn += o.tn;
        self.fn_ += o.fn_;
    }

    fn line(&self, file: &str) -> Line {
        let ratio =
            |a: u64, b: u64| (b > 0).then(|| ((a as f64 / b as f64) * 10_000.0).round() / 10_000.0);
        Line {
            file: file.to_owned(),
            count: self.tp + self.fp + self.tn + self.fn_,
            precision: ratio(self.tp, self.tp + self.fp),
            recall: ratio(self.tp, self.tp + self.fn_),
            false_positive_rate: ratio(self.fp, self.fp + self.tn),
        }
    }
}

/// One output line, fields in this order; `null` where undefined.
#[derive(serde::Serialize)]
struct Line {
    file: String,
    count: u64,
    precision: Option<f64>,
    recall: Option<f64>,
    false_positive_rate: Option<f64>,
}

/// The settings `serve` would run with: config layers, then what the admin
/// API stored (read-only; nothing is created or migrated).
fn settings(config: Option<&Path>, data_dir: Option<PathBuf>) -> anyhow::Result<Settings> {
    let overrides = Overrides {
        data_dir,
        ..Overrides::default()
    };
    let config = Config::load(config, &overrides)?;
    let mut settings = Settings::from_config(&config);
    let db = config.data_dir().join("gateway.db");
    if db.exists() {
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .with_context(|| format!("opening {}", db.display()))?;
        let stored = crate::store::settings::all(&conn)?;
        if !stored.is_empty() {
            let patch = Value::Object(stored.into_iter().collect());
            settings = settings.patched(&patch).map_err(anyhow::Error::msg)?;
        }
    }
    Ok(settings)
}

pub fn run(
    kind: Kind,
    files: &[PathBuf],
    config: Option<&Path>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let settings = settings(config, data_dir)?;
    let policy = Policy::resolve(&settings.safety, None);
    let moderator = Moderator::new().map_err(anyhow::Error::msg)?;
    let detector = Detector::new().map_err(anyhow::Error::msg)?;
    if kind == Kind::Moderation && !settings.safety.external.is_empty() {
        tracing::warn!(
            "external moderators are not called by eval; the built-in engine is measured"
        );
    }
    let predict = |text: &str| -> bool {
        match kind {
            Kind::Injection => detector.scan(text).score >= policy.injection_threshold,
            Kind::Moderation => moderator
                .scan(text)
                .flagged(policy.moderation_threshold)
                .next()
                .is_some(),
        }
    };
    let mut total = Counts::default();
    for path in files {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut counts = Counts::default();
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
            let text = v
                .get("text")
                .and_then(Value::as_str)
                .with_context(|| format!("{}:{}: no string `text` field", path.display(), n + 1))?;
            let label = match v.get("label").and_then(Value::as_i64) {
                Some(1) => true,
                Some(0) => false,
                _ => anyhow::bail!("{}:{}: `label` must be 0 or 1", path.display(), n + 1),
            };
            counts.add(label, predict(text));
        }
        output::line(&serde_json::to_string(
            &counts.line(&path.display().to_string()),
        )?)?;
        total.merge(&counts);
    }
    output::line(&serde_json::to_string(&total.line("total"))?)
}
