//! The `cinematch` command: a thin layer over the `cinematch` library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
