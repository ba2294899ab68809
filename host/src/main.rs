//! The `spillway` command: parse, run, print one error and map it to an exit code.

use clap::Parser;

fn main() {
    let cli = spillway::cli::Cli::parse();
    spillway::cli::init_logging(&cli);
    if let Err(error) = cli.execute() {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
