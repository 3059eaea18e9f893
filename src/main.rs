//! The `wecom-archive` command line: parse, then hand over to [`wecom_archive::cli`]-style
//! modules in `src/cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
