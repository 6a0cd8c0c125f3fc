//! `assisters usage` (rollups, CSV / JSON Lines export) and `assisters
//! crypto` (master key status and rotation).

use clap::Subcommand;
use hyper::Method;
use serde_json::Value;

use super::{encode, output, AdminClient};

#[derive(Debug, Subcommand)]
pub enum UsageCmd {
    /// Show usage per bucket, key and model.
    Show {
        #[command(flatten)]
        filter: UsageFilterArgs,
        #[arg(long)]
        json: bool,
    },
    /// Export usage as CSV or JSON Lines.
    Export {
        #[command(flatten)]
        filter: UsageFilterArgs,
        /// `csv` or `jsonl`.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct UsageFilterArgs {
    /// `day` (kept 90 days by default) or `hour` (kept 48 hours).
    #[arg(long, default_value = "day")]
    granularity: String,
    /// RFC 3339 time, e.g. 2026-11-01T00:00:00Z.
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    until: Option<String>,
    #[arg(long)]
    key: Option<String>,
    #[arg(long)]
    model: Option<String>,
}

impl UsageFilterArgs {
    fn query(&self, format: &str) -> String {
        let mut q = vec![
            format!("granularity={}", encode(&self.granularity)),
            format!("format={}", encode(format)),
        ];
        for (k, v) in [
            ("since", &self.since),
            ("until", &self.until),
            ("key_id", &self.key),
            ("model", &self.model),
        ] {
            if let Some(v) = v {
                q.push(format!("{k}={}", encode(v)));
            }
        }
        format!("/admin/usage?{}", q.join("&"))
    }
}

#[derive(Debug, Subcommand)]
pub enum CryptoCmd {
    /// Key versions and how many stored bodies each seals.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Add a new master key version; new data is sealed with it and old
    /// request bodies are re-encrypted in the background.
    Rotate {
        #[arg(long)]
        json: bool,
    },
}

pub async fn usage(c: &AdminClient, cmd: UsageCmd) -> anyhow::Result<()> {
    match cmd {
        UsageCmd::Show { filter, json } => {
            let v = c.call(Method::GET, &filter.query("json"), None).await?;
            output::usage(v.get("data").unwrap_or(&Value::Null), json)
        }
        UsageCmd::Export {
            filter,
            format,
            output: file,
        } => {
            if format != "csv" && format != "jsonl" {
                anyhow::bail!("--format must be csv or jsonl");
            }
            let text = c.text(&filter.query(&format)).await?;
            match file {
                Some(path) => Ok(std::fs::write(path, text)?),
                None => {
                    use std::io::Write;
                    Ok(std::io::stdout().write_all(text.as_bytes())?)
                }
            }
        }
    }
}

pub async fn crypto(c: &AdminClient, cmd: CryptoCmd) -> anyhow::Result<()> {
    let (v, json) = match cmd {
        CryptoCmd::Status { json } => (c.call(Method::GET, "/admin/crypto", None).await?, json),
        CryptoCmd::Rotate { json } => (
            c.call(Method::POST, "/admin/crypto/rotate", None).await?,
            json,
        ),
    };
    let num = |f: &str| v.get(f).and_then(Value::as_u64).unwrap_or(0);
    let storage = &v["storage"];
    let mut human = format!(
        "Master key version {} in use (versions held: {}), kept in {} ({}). {} stored bodies \
         still sealed under an older version{}.",
        num("current_version"),
        v.get("versions").map(Value::to_string).unwrap_or_default(),
        storage["location"].as_str().unwrap_or("?"),
        storage["kind"].as_str().unwrap_or("?"),
        num("reencrypt_pending"),
        if v.get("reencrypting") == Some(&Value::Bool(true)) {
            "; re-encrypting now"
        } else {
            ""
        }
    );
    if let Some(w) = storage["warning"].as_str() {
        human.push_str("\nWarning: ");
        human.push_str(w);
    }
    output::line_or_json(&v, json, &human)
}
