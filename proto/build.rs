//! Compiles the contracts with protox (pure Rust), so no system `protoc` is needed.
use std::path::PathBuf;

use prost::Message;

const FILES: &[&str] = &[
    "selfhelp/common/v1/common.proto",
    "selfhelp/events/v1/events.proto",
    "selfhelp/listings/v1/listings.proto",
    "selfhelp/membership/v1/membership.proto",
    "selfhelp/notifications/v1/notifications.proto",
    "selfhelp/operations/v1/operations.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=selfhelp");
    let fds = protox::compile(FILES, ["."])?;
    // Served by gRPC server reflection.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("selfhelp_descriptor.bin"), fds.encode_to_vec())?;
    // Type names let event code read `ce-dataschema` from the message type itself.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds_with_config(fds, config)?;
    Ok(())
}
