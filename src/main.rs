//! Placeholder binary until the real CLI (clap) lands; it only wires
//! `orchestrate inspect MODEL [--method full|head]` to `model::inspect::run`.
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model, method) = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["inspect", model] => (model.to_string(), "full".to_string()),
        ["inspect", model, "--method", method] => (model.to_string(), method.to_string()),
        _ => {
            eprintln!("usage: orchestrate inspect MODEL [--method full|head]");
            return ExitCode::from(2);
        }
    };
    match orchestrate::model::inspect::run(&model, &method) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
