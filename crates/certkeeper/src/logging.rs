//! The log output of `certkeeper run` and `certkeeper controller`: text or JSON lines on
//! standard output, coloured only for a person at a terminal.
//!
//! ANSI colour codes are written only when standard output is a terminal and `NO_COLOR`
//! (<https://no-color.org>) is unset or empty: a log file, a pipe, journald or a container
//! runtime's log collector gets plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Whether log lines may carry colour: `terminal` is whether the output is a terminal,
/// `no_color` the value of `NO_COLOR`, if set.
pub fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber: `filter`, text or flattened JSON, colour per [`colour`].
pub fn init(filter: EnvFilter, json: bool) {
    let ansi = colour(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_at_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new(""))));
    }
}
