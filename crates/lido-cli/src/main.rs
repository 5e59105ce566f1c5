//! `lido`: size a pool with a benchmark, check a database, serve health and
//! metrics, advise on indexes.
#![forbid(unsafe_code)]

mod advise;
mod args;
mod bench;
mod check;
mod dburl;
mod serve;
mod util;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    install_panic_hook();
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            args::Command::Advise(a) => Ok(advise::run(a).await),
            args::Command::Bench(b) => bench::run(b).await,
            args::Command::Check(c) => Ok(check::run(c).await),
            args::Command::Serve(s) => serve::run(s).await,
        }
    });
    // Don't wait for stray blocking tasks (SQLite threads, DNS lookups).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", util::one_line(&e));
            ExitCode::from(1)
        }
    }
}

const SUBCOMMANDS: [&str; 4] = ["advise", "bench", "check", "serve"];

/// Help and version print as clap writes them; anything wrong with the
/// arguments is one `error:` line on stderr (what was wrong, clap's tip,
/// where to read more) and exit code 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let code = u8::try_from(e.exit_code()).unwrap_or(2);
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(code);
    }
    let sub = std::env::args()
        .skip(1)
        .find(|a| SUBCOMMANDS.contains(&a.as_str()));
    let rendered = e.render().to_string();
    eprintln!("error: {}", util::usage_line(&rendered, sub.as_deref()));
    ExitCode::from(code)
}

/// A bug must still end in one line, not a backtrace.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        eprintln!("error: internal error (a bug in lido, please report it): {what}{at}");
    }));
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "off",
        1 => "lido=info",
        2 => "lido=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIDO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
