//! `selfhelp export` and `selfhelp import`: a region's directory as Open
//! Referral UK JSON, out of listings and into it. The file is an ORUK `Page`
//! of `service` documents, the shape the ORUK API's `/services` answers with
//! (all on one page); `import` also takes a bare JSON array of services, or a
//! CSV of groups, one a row, which it turns into such documents.

use std::io::Write;
use std::path::PathBuf;

use selfhelp_proto::listings::v1 as pb;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use serde_json::{Value, json};

use crate::ops::{Deployment, describe};
use selfhelp_core::directory_file::{services_from_csv, services_in};

/// Services per export page and per import call.
const BATCH: usize = 100;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The file to write (`-`: standard output).
    #[arg(long, short, default_value = "-")]
    out: PathBuf,
    #[command(flatten)]
    deployment: Deployment,
}

pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let mut listings = ListingsServiceClient::new(args.deployment.channel("listings").await?);
    let mut services = Vec::new();
    let mut page = 1;
    loop {
        let request = args.deployment.request(pb::ExportOpenReferralRequest {
            page,
            per_page: BATCH as i32,
        })?;
        let answer = listings
            .export_open_referral(request)
            .await
            .map_err(describe)?
            .into_inner();
        let mut doc: Value = serde_json::from_str(&answer.page_json)?;
        let last = doc["last_page"].as_bool().unwrap_or(true);
        let total = doc["total_items"].as_u64().unwrap_or(0);
        if let Some(contents) = doc["contents"].as_array_mut() {
            services.append(contents);
        }
        eprintln!("exported {} of {total} groups", services.len());
        if last {
            break;
        }
        page += 1;
    }
    let total = services.len();
    let file = json!({
        "total_items": total,
        "total_pages": 1,
        "page_number": 1,
        "size": total,
        "first_page": true,
        "last_page": true,
        "empty": total == 0,
        "contents": services,
    });
    let text = serde_json::to_string_pretty(&file)?;
    if args.out.as_os_str() == "-" {
        println!("{text}");
    } else {
        std::fs::write(&args.out, text + "\n")
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", args.out.display()))?;
        eprintln!("{total} groups written to {}", args.out.display());
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// An ORUK JSON file: a `Page` of `service` documents (what `selfhelp
    /// export` and the ORUK API's `/services` give) or an array of them; or,
    /// when it ends in `.csv`, a CSV of groups (see docs/web-and-open-referral.md
    /// for its columns).
    file: PathBuf,
    /// Check every document and report; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    deployment: Deployment,
}

/// Counts by outcome, for the progress line and the summary.
#[derive(Default)]
struct Tally {
    imported: usize,
    would_import: usize,
    already: usize,
    refused: Vec<pb::ImportResult>,
}

impl Tally {
    fn add(&mut self, result: pb::ImportResult) {
        match pb::ImportOutcome::try_from(result.outcome) {
            Ok(pb::ImportOutcome::Imported) => self.imported += 1,
            Ok(pb::ImportOutcome::WouldImport) => self.would_import += 1,
            Ok(pb::ImportOutcome::AlreadyPresent) => self.already += 1,
            _ => self.refused.push(result),
        }
    }

    fn line(&self, dry_run: bool) -> String {
        let done = if dry_run {
            format!("{} would be imported", self.would_import)
        } else {
            format!("{} imported", self.imported)
        };
        format!(
            "{done}, {} already there, {} refused",
            self.already,
            self.refused.len()
        )
    }
}

pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", args.file.display()))?;
    let services = if args
        .file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        services_from_csv(&text).map_err(anyhow::Error::msg)?
    } else {
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", args.file.display()))?;
        services_in(doc).map_err(anyhow::Error::msg)?
    };
    let total = services.len();
    let mut listings = ListingsServiceClient::new(args.deployment.channel("listings").await?);
    let mut tally = Tally::default();
    let mut err = std::io::stderr().lock();
    for (n, batch) in services.chunks(BATCH).enumerate() {
        let request = args.deployment.request(pb::ImportOpenReferralRequest {
            services_json: batch.iter().map(Value::to_string).collect(),
            dry_run: args.dry_run,
        })?;
        let answer = listings
            .import_open_referral(request)
            .await
            .map_err(describe)?
            .into_inner();
        for result in answer.results {
            tally.add(result);
        }
        let seen = (n * BATCH + batch.len()).min(total);
        writeln!(err, "{seen}/{total}: {}", tally.line(args.dry_run))?;
    }
    for r in &tally.refused {
        let name = if r.name.is_empty() {
            "(no name)"
        } else {
            &r.name
        };
        println!("refused {:?} {name}:", r.source_id);
        for problem in &r.problems {
            println!("  {problem}");
        }
    }
    println!("{}", tally.line(args.dry_run));
    anyhow::ensure!(
        tally.refused.is_empty(),
        "{} of {total} documents refused (listed above)",
        tally.refused.len()
    );
    Ok(())
}
