//! `dnspolicy`: check, evaluate, compile and serve DNS traffic policies.
//! The CLI is thin: it reads files and flags, calls the compiler or the
//! runtime crate, and prints.

mod check_cmd;
mod compile_cmd;
mod eval_cmd;
mod fleet_cmd;
mod fmt_cmd;
mod import_cmd;
mod lsp;
mod oci_cmd;
mod output;
mod serve_cmd;
mod test_answer;
mod test_cmd;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// dnspolicy — a policy language and toolchain for DNS traffic steering.
///
/// Write rules such as `if {client.region} == "CN-BJ" { then rewrite
/// "cdn-bj.example.com" ttl 300 }` in a `.dsl` file, check them with
/// `dnspolicy check`, and try them on a query with `dnspolicy eval`.
#[derive(Parser, Debug)]
#[command(
    name = "dnspolicy",
    version,
    about,
    long_about,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check policy files: syntax, names and types. Exit 0 when clean, 1 on
    /// errors, 2 on usage or I/O errors.
    Check(CheckArgs),
    /// Evaluate a policy for one query and print the verdict as JSON on the
    /// last line of stdout (`null` when no rule decided).
    Eval(Box<EvalArgs>),
    /// Compile a policy for another backend: `--target wasm` writes a WASM
    /// plugin module (`dnspolicy serve` loads it like any plugin), `wat`
    /// prints it as text, `clif` prints the JIT's Cranelift IR.
    Compile(CompileArgs),
    /// Run the DNS server. With no arguments it serves the embedded example
    /// (127.0.0.1:5353, admin on 127.0.0.1:9153): www.example.com is steered
    /// by region to cdn-bj or cdn-global.example.com.
    Serve(Box<serve_cmd::ServeArgs>),
    /// Run policy unit tests (`*.test.toml`): every case on the
    /// interpreter, the JIT and the WASM module; a backend that disagrees
    /// fails. Exit 0 when all pass, 1 on a failure, 2 on usage or I/O errors.
    Test(TestArgs),
    /// Rewrite policies in the canonical layout (comments kept); `--check`
    /// lists the files that are not, exit 1 if any.
    Fmt(fmt_cmd::FmtArgs),
    /// Convert other policy formats: `import rpz ZONEFILE... [-o OUT]`
    /// (Response Policy Zones, first = highest precedence).
    Import(import_cmd::ImportArgs),
    /// Plugin sets as OCI artifacts: `oci push DIR REF`, `oci pull REF DIR`,
    /// `oci inspect REF` (plain HTTP only with --insecure).
    Oci(oci_cmd::OciArgs),
    /// Push a plugin set to a fleet's etcd as its next version (checked
    /// first, one transaction): `push DIR --etcd URL --set NAME
    /// [--if-version N] [--canary NODE,…|N%]`. See docs/fleet.md.
    Push(fleet_cmd::PushArgs),
    /// Push an earlier version's files again as the set's next version.
    Rollback(fleet_cmd::RollbackArgs),
    /// Roll a staged (canary) version out to every node, if every canary
    /// runs it.
    Promote(fleet_cmd::PromoteArgs),
    /// The fleet of a set: which node serves which version, who refused the
    /// latest and why, who is gone (`--format json` for scripts).
    Status(fleet_cmd::StatusArgs),
    /// Run the language server on stdin/stdout (diagnostics as you type,
    /// hover on context paths, completion of paths and keywords).
    Lsp,
}

/// How diagnostics are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Rendered for people, with source excerpts (colour only on a terminal).
    Human,
    /// One JSON object per diagnostic per line, on stdout, for editors and scripts.
    Json,
}

/// When to use colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when stderr is a terminal.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "EXAMPLES:\n  \
    dnspolicy test examples/                    # every *.test.toml under examples/\n  \
    dnspolicy test examples/geo.test.toml --format junit > report.xml\n\n\
    A test file names its policy (default: NAME.dsl beside NAME.test.toml) and\n\
    its cases; see grammar/REFERENCE.md, \"Policy tests\".")]
struct TestArgs {
    /// Test files, or directories searched for *.test.toml.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Output: human, json, or junit (XML).
    #[arg(long, value_enum, default_value_t = test_cmd::TestFormat::Human)]
    format: test_cmd::TestFormat,
}

#[derive(clap::Args, Debug)]
struct CheckArgs {
    /// Files to check: policies (`.dsl`), Lua (`.lua`) and WASM (`.wasm`,
    /// `.wat`) plugins, plugin metadata (`.yaml`).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Diagnostics format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// When to colour human-readable output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Also print each policy's static cost bound per query: the most rule
    /// bodies and helper calls one query can reach after the rule index.
    #[arg(long)]
    cost: bool,
}

/// A policy and a query context to evaluate it in.
#[derive(clap::Args, Debug)]
#[command(after_help = "EXAMPLES:\n  \
    dnspolicy eval examples/seed.dsl --vars '{\"user\":{\"age\":20},\"order\":{\"total\":150}}'\n  \
    dnspolicy eval examples/geo.dsl --query www.example.com --region CN-BJ --explain\n  \
    dnspolicy eval examples/geo.dsl --query www.example.com --client 198.51.100.7 --type AAAA\n  \
    dnspolicy eval examples/http/routes.dsl --http 'GET /api?region=cn-sh' --header 'X-User-Tier: premium'\n\n\
    Fields not given are missing: every comparison that reads them is false.")]
pub struct EvalArgs {
    /// The policy file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Injected variables as a JSON object: nested (`{"user":{"age":20}}`) or dotted (`{"user.age":20}`).
    #[arg(long, value_name = "JSON", conflicts_with = "vars_file")]
    pub vars: Option<String>,
    /// Read injected variables from a JSON file.
    #[arg(long, value_name = "F")]
    pub vars_file: Option<PathBuf>,
    /// The question name (`query.name`).
    #[arg(long, value_name = "NAME")]
    pub query: Option<String>,
    /// The question type (`query.type`); defaults to A when --query is given.
    #[arg(long = "type", value_name = "TYPE", requires = "query")]
    pub qtype: Option<String>,
    /// The client's source address (`client.ip`; also `client.subnet` as its /24 or /56 unless --ecs is given).
    #[arg(long, value_name = "IP")]
    pub client: Option<String>,
    /// EDNS Client Subnet (`client.subnet`), e.g. 198.51.100.0/24.
    #[arg(long, value_name = "CIDR")]
    pub ecs: Option<String>,
    /// GeoIP region, ISO 3166-2 (`client.region`), e.g. CN-BJ.
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// GeoIP country, ISO 3166-1 alpha-2 (`client.country`), e.g. CN.
    #[arg(long, value_name = "C")]
    pub country: Option<String>,
    /// GeoIP city (`client.city`).
    #[arg(long, value_name = "CITY")]
    pub city: Option<String>,
    /// Autonomous system number (`client.asn`).
    #[arg(long, value_name = "N")]
    pub asn: Option<i64>,
    /// Transport (`query.transport`).
    #[arg(long, value_name = "T", value_parser = ["udp", "tcp"])]
    pub transport: Option<String>,
    /// Evaluation time as Unix seconds (`time.*`); defaults to now.
    #[arg(long, value_name = "UNIX")]
    pub time: Option<i64>,
    /// An HTTP request line for an HTTP policy (`http.method`, `http.path`,
    /// `http.query.*`): `'GET /api?region=cn-sh'` (the method defaults to GET).
    #[arg(long, value_name = "REQUEST", conflicts_with = "query")]
    pub http: Option<String>,
    /// A request header (`http.header.*`, `http.cookie.*` from `Cookie`,
    /// `http.host` from `Host`), repeatable: `--header 'X-User-Tier: premium'`.
    #[arg(long = "header", value_name = "'NAME: VALUE'", requires = "http")]
    pub headers: Vec<String>,
    /// Print which rule and which conditions decided, before the verdict.
    #[arg(long)]
    pub explain: bool,
    /// The backend that evaluates: native code (Cranelift JIT), the
    /// reference interpreter, or the policy compiled to WASM and run in
    /// wasmtime. `--explain` always traces the interpreter.
    #[arg(long, value_enum, default_value_t = Backend::Jit)]
    pub backend: Backend,
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// What `compile` produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// A WASM plugin module (binary), ABI version 1 (grammar/WASM-ABI.md).
    Wasm,
    /// The same module as WebAssembly text.
    Wat,
    /// The Cranelift IR of the JIT backend, printed for inspection.
    Clif,
}

/// The backend `eval` runs the policy on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The reference interpreter.
    Interp,
    /// The policy compiled to native code with Cranelift.
    Jit,
    /// The policy compiled to WASM and run in wasmtime, as the server would.
    Wasm,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "EXAMPLES:\n  \
    dnspolicy compile examples/geo.dsl --target wasm -o /tmp/geo.wasm\n  \
    dnspolicy compile examples/geo.dsl --target wat | less\n  \
    dnspolicy compile examples/geo.dsl --target clif")]
/// `dnspolicy compile` arguments.
pub struct CompileArgs {
    /// The policy file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// What to produce.
    #[arg(long, value_enum)]
    pub target: Target,
    /// Where to write it (`-`: stdout; a binary module is not written to a
    /// terminal).
    #[arg(short = 'o', long = "output", value_name = "OUT", default_value = "-")]
    pub output: PathBuf,
    /// Colour in diagnostics.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(a) => check_cmd::run(&a.files, a.format, a.color, a.cost),
        Command::Eval(a) => eval_cmd::run(&a),
        Command::Compile(a) => compile_cmd::run(&a),
        Command::Serve(a) => serve_cmd::run(*a),
        Command::Test(a) => test_cmd::run(&a.paths, a.format),
        Command::Fmt(a) => fmt_cmd::run(&a),
        Command::Import(a) => import_cmd::run(a),
        Command::Oci(a) => oci_cmd::run(a),
        Command::Push(a) => fleet_cmd::push(a),
        Command::Rollback(a) => fleet_cmd::rollback(a),
        Command::Promote(a) => fleet_cmd::promote(a),
        Command::Status(a) => fleet_cmd::status(a),
        Command::Lsp => lsp::run(),
    }
}
