use clap::Parser as _;
use mlplatform_webhook::{config, server};

fn main() -> std::process::ExitCode {
    // One crypto provider for every TLS user in the process (server and kube client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = config::Args::parse();
    let result: anyhow::Result<()> =
        server::runtime()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| {
                runtime.block_on(async {
                    config::init_tracing(args.log_format, &args.log_level)?;
                    server::run(args, server::shutdown_signal()).await?;
                    Ok(())
                })
            });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // Our errors already carry their causes in one line; the chain would repeat them.
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
