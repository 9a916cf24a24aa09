//! Logging set-up. Log lines carry ids (request id, route template, status), never
//! request contents; see `api::guard`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `log.level` is not a valid filter.
    #[error("log.level: not a valid filter: {0}")]
    Filter(String),
    /// A subscriber was already installed.
    #[error("logging was already initialised")]
    AlreadySet,
}

/// Installs the global subscriber, writing to standard error.
pub fn init(log: &LogSettings) -> Result<(), TelemetryError> {
    let filter =
        EnvFilter::try_new(&log.level).map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let result = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadySet)
}
