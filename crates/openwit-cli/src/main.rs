fn main() -> std::process::ExitCode {
    openwit_cli::main_with(Vec::new())
}
