//! `selfhelp-listings`: the listings service as its own process.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    selfhelp_platform::service::main(selfhelp_listings::run).await
}
