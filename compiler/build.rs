//! Generates the parser from `grammar/dnspolicy.lalrpop` (the grammar lives
//! outside this crate so the language reference and the grammar sit together).

fn main() {
    let grammar_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../grammar");
    println!(
        "cargo:rerun-if-changed={}",
        grammar_dir.join("dnspolicy.lalrpop").display()
    );
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    lalrpop::Configuration::new()
        .set_in_dir(&grammar_dir)
        .set_out_dir(out_dir)
        .process()
        .expect("grammar/dnspolicy.lalrpop must be a valid LALRPOP grammar");
}
