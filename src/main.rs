#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

// The server allocates a few small strings per decision; mimalloc serves them faster than
// glibc's allocator (see the load benchmark in the README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = turnstile::cli::Cli::parse();
    match turnstile::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
