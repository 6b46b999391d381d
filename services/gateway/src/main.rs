//! `selfhelp-gateway`: the HTTP front door as its own process.

use std::path::PathBuf;

#[derive(Debug, clap::Parser)]
struct Args {
    /// TOML configuration file; `SELFHELP_*` environment variables override it.
    #[arg(long, env = "SELFHELP_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    use clap::Parser;
    let args = Args::parse();
    let config: selfhelp_gateway::Config =
        match selfhelp_platform::config::load_checked(args.config.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("configuration error: {e:#}");
                return std::process::ExitCode::from(2);
            }
        };
    selfhelp_platform::telemetry::init(&config.log);
    if let Err(e) = selfhelp_platform::otel::init(&config.traces, "selfhelp-gateway") {
        tracing::error!(error = %format!("{e:#}"), "cannot send traces");
        return std::process::ExitCode::from(2);
    }
    let listener = match tokio::net::TcpListener::bind(&config.http.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %config.http.listen, error = %e, "cannot listen");
            return std::process::ExitCode::FAILURE;
        }
    };
    let shutdown =
        selfhelp_platform::Shutdown::from_future(selfhelp_platform::shutdown::os_signal());
    match selfhelp_gateway::run(config, listener, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "gateway stopped with an error");
            std::process::ExitCode::FAILURE
        }
    }
}
