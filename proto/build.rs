//! Compiles the contracts with protox (pure Rust), so no system `protoc` is needed.
use std::path::PathBuf;

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

const FILES: &[&str] = &[
    "selfhelp/common/v1/common.proto",
    "selfhelp/events/v1/events.proto",
    "selfhelp/listings/v1/listings.proto",
    "selfhelp/membership/v1/membership.proto",
    "selfhelp/notifications/v1/notifications.proto",
    "selfhelp/operations/v1/operations.proto",
];

/// Listings' `Group`, which its second server generation sends already encoded.
const GROUP: &str = ".selfhelp.listings.v1.Group";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=selfhelp");
    let fds = protox::compile(FILES, ["."])?;
    // Served by gRPC server reflection.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("selfhelp_descriptor.bin"), fds.encode_to_vec())?;
    served_listings(&fds, &out_dir)?;
    // Type names let event code read `ce-dataschema` from the message type itself.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds_with_config(fds, config)?;
    Ok(())
}

/// Listings' server a second time (ADR 25), into `served/`: every message is
/// the published one, except `Group`, which is `listings::served::EncodedGroup`,
/// and the answers that carry groups, generated again around it. Only the
/// listings module of that output is compiled.
fn served_listings(
    fds: &FileDescriptorSet,
    out_dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let listings: Vec<&FileDescriptorProto> = fds
        .file
        .iter()
        .filter(|f| f.package() == "selfhelp.listings.v1")
        .collect();
    if listings.is_empty() {
        return Err("listings.proto is not in the descriptor set".into());
    }
    let carrying = messages_carrying_group(&listings);
    let mut builder = tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .out_dir(out_dir.join("served"))
        .extern_path(GROUP, "crate::listings::served::EncodedGroup");
    let mut others: Vec<&str> = fds
        .file
        .iter()
        .map(|f| f.package())
        .filter(|p| p.starts_with("selfhelp.") && *p != "selfhelp.listings.v1")
        .collect();
    others.sort_unstable();
    others.dedup();
    for package in others {
        let module = package.trim_start_matches("selfhelp.").replace('.', "::");
        builder = builder.extern_path(format!(".{package}"), format!("crate::{module}"));
    }
    let published = "crate::listings::v1";
    for message in listings.iter().flat_map(|f| &f.message_type) {
        let name = format!(".selfhelp.listings.v1.{}", message.name());
        if name != GROUP && !carrying.contains(&name) {
            builder = builder.extern_path(&name, format!("{published}::{}", message.name()));
        }
    }
    for e in listings.iter().flat_map(|f| &f.enum_type) {
        builder = builder.extern_path(
            format!(".selfhelp.listings.v1.{}", e.name()),
            format!("{published}::{}", e.name()),
        );
    }
    std::fs::create_dir_all(out_dir.join("served"))?;
    builder.compile_fds(fds.clone())?;
    Ok(())
}

/// The listings messages with a `Group` in them, however deep.
fn messages_carrying_group(listings: &[&FileDescriptorProto]) -> Vec<String> {
    fn fields(message: &DescriptorProto) -> Vec<String> {
        let mut names: Vec<String> = message
            .field
            .iter()
            .filter_map(|f| f.type_name.clone())
            .collect();
        for nested in &message.nested_type {
            names.extend(fields(nested));
        }
        names
    }
    let all: Vec<(String, Vec<String>)> = listings
        .iter()
        .flat_map(|f| &f.message_type)
        .map(|m| (format!(".selfhelp.listings.v1.{}", m.name()), fields(m)))
        .collect();
    let mut carrying = vec![GROUP.to_string()];
    loop {
        let more: Vec<String> = all
            .iter()
            .filter(|(name, _)| !carrying.contains(name))
            .filter(|(_, types)| types.iter().any(|t| carrying.contains(t)))
            .map(|(name, _)| name.clone())
            .collect();
        if more.is_empty() {
            carrying.retain(|name| name != GROUP);
            return carrying;
        }
        carrying.extend(more);
    }
}
