//! The `kubectl-nodepatch` binary: the kubectl plugin (`kubectl nodepatch …`). All of it lives in
//! [`nodepatch::plugin`].
fn main() -> std::process::ExitCode {
    nodepatch::plugin::main()
}
