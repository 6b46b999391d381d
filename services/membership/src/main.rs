//! `selfhelp-membership`: the membership service as its own process.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    selfhelp_platform::service::main(selfhelp_membership::run).await
}
