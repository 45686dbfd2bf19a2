//! Process-wide logging setup.

/// Logs to stdout, filtered by `RUST_LOG` (default `info`).
pub fn init_stdout() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}
