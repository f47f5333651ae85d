//! Benchmark placeholder; see hack/bench.sh.
fn main() {
    eprintln!("credsync-bench: not built yet");
    std::process::exit(1);
}
