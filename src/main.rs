fn main() -> std::process::ExitCode {
    sula::cli::main()
}
