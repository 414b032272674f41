//! The `orchestrate` command line: parses arguments and calls `orchestrate::commands`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{CommandFactory, Parser, Subcommand};
use orchestrate::commands::view::{render, View};
use orchestrate::commands::{self, RunArgs, Settings};
use orchestrate::reporter::Mode;
use orchestrate::spec::executor::ExecutorKind;

#[derive(Parser)]
#[command(
    name = "orchestrate",
    version,
    about = "Declarative, cached, reproducible experiment pipelines"
)]
struct Cli {
    /// Artifact cache directory.
    #[arg(long, global = true, env = "ORCHESTRATE_CACHE_DIR", default_value = "cache")]
    cache_dir: PathBuf,
    /// Where `run` and `report` write <experiment>.{md,csv,json,html} and plots.
    #[arg(long, global = true, env = "ORCHESTRATE_REPORTS_DIR", default_value = "reports")]
    reports_dir: PathBuf,
    /// Print only the results table and errors.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Machine-readable output: JSON lines for `run`, JSON documents otherwise.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds between plain progress lines when stderr is not a terminal (logs, CI, Slurm).
    #[arg(long, global = true, env = "ORCHESTRATE_PROGRESS_INTERVAL", default_value_t = 30.0, value_parser = parse_interval)]
    progress_interval: f64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the experiments' tasks that are not cached, then print the comparison table.
    Run {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override a value of the experiment file: `tasks.lora.r=8`, `defaults.seed=43`,
        /// `tasks.lora.sweep.r=[4,8]` (TOML values; repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Run only this task (a name, a sweep member or a declared name) and its inputs.
        #[arg(long)]
        only: Vec<String>,
        /// Independent tasks to run at once.
        #[arg(short, long, default_value_t = 1)]
        jobs: usize,
        /// Show what would run, and why, without running anything.
        #[arg(long)]
        dry_run: bool,
        /// Stop starting tasks after the first failure.
        #[arg(long)]
        fail_fast: bool,
        /// Where tasks run (default: the experiment's `[executor] kind`, else local).
        #[arg(long, value_enum)]
        executor: Option<ExecutorKind>,
        /// Slurm: submit the jobs and return; follow later with `status --follow`.
        #[arg(long)]
        detach: bool,
        /// Report every run instead of mean ± std over seeds.
        #[arg(long)]
        runs: bool,
    },
    /// Show each task's key and whether it is cached or will run, and why.
    Plan {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override a value of the experiment file: `tasks.lora.r=8`, `defaults.seed=43`,
        /// `tasks.lora.sweep.r=[4,8]` (TOML values; repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// The plan plus the jobs of the experiment's latest Slurm run.
    Status {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override a value of the experiment file: `tasks.lora.r=8`, `defaults.seed=43`,
        /// `tasks.lora.sweep.r=[4,8]` (TOML values; repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Wait for the run's jobs, showing progress, then print the report.
        #[arg(long)]
        follow: bool,
    },
    /// Run one task whose inputs are cached (what Slurm jobs execute).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        experiment: PathBuf,
        #[arg(long)]
        task: String,
        #[arg(long)]
        key: String,
        /// Override a value of the experiment file: `tasks.lora.r=8`, `defaults.seed=43`,
        /// `tasks.lora.sweep.r=[4,8]` (TOML values; repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Explain why a task would run: its key, its parts and what changed.
    Why {
        task: String,
        /// The experiment file.
        #[arg(short, long, default_value = "experiments/lab.toml")]
        experiment: PathBuf,
        /// Override a value of the experiment file: `tasks.lora.r=8`, `defaults.seed=43`,
        /// `tasks.lora.sweep.r=[4,8]` (TOML values; repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Regenerate the comparison tables, HTML and plots from the cache; runs nothing.
    Report {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override a value of the experiment file: `tasks.lora.r=8`, `defaults.seed=43`,
        /// `tasks.lora.sweep.r=[4,8]` (TOML values; repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Every run on its own line instead of mean ± std over seeds.
        #[arg(long)]
        runs: bool,
        /// Put the experiments side by side in one report (reports/compare-<a>-<b>.*).
        #[arg(long)]
        compare: bool,
    },
    /// Remove artifacts that none of the given experiments references.
    Gc {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        dry_run: bool,
    },
    /// List the artifacts in the cache.
    Ls,
    /// Print a model's module tree and its parameter counts, as `print(model)` and PEFT do.
    Inspect {
        /// A model folder, a hub id in the Hugging Face cache, or a bare config.json.
        model: String,
        /// The tuning method: full, head, bitfit, lora, ia3, qlora, prompt_tuning, prefix_tuning or adapter.
        #[arg(long, default_value = "full")]
        method: String,
        /// A parameter of the method, as in the experiment file: `--set r=6 --set lora_alpha=12
        /// --set target_modules=q_lin,k_lin,v_lin`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Print a shell completion script: `orchestrate completions bash > ~/.local/share/bash-completion/completions/orchestrate`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Re-hash every artifact in the cache against its manifest; exit 1 if any is corrupt.
    Verify,
    /// Time one tuning method's training step by phase (forward, backward, update) on a
    /// full random batch: `orchestrate bench-step models/all-MiniLM-L6-v2 --method lora --set r=6`.
    #[command(hide = true)]
    BenchStep {
        model: String,
        #[arg(long, default_value = "full")]
        method: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// `fp32` or `bf16`.
        #[arg(long, default_value = "fp32")]
        precision: String,
        #[arg(long, default_value_t = 8)]
        batch: i64,
        #[arg(long, default_value_t = 256)]
        seq: i64,
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        #[arg(long, default_value_t = 5)]
        steps: usize,
    },
    /// Measure matmul GFLOP/s through libtorch (the MFU denominator of bench/run.sh).
    #[command(hide = true)]
    BenchMatmul {
        /// `float32` or `bfloat16`.
        #[arg(long, default_value = "float32", value_parser = parse_dtype)]
        dtype: orchestrate::model::Dtype,
        /// Torch threads (default: the available cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Seconds to time each shape for.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
}

fn parse_interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(seconds),
        _ => Err(format!("expected a number of seconds >= 0, got {text:?}")),
    }
}

fn parse_dtype(text: &str) -> Result<orchestrate::model::Dtype, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| format!("expected float32 or bfloat16, got {text:?}"))
}

impl Command {
    /// The `--set` overrides of the commands that read experiment files.
    fn experiment_overrides(&self) -> &[String] {
        match self {
            Command::Run { sets, .. }
            | Command::Plan { sets, .. }
            | Command::Status { sets, .. }
            | Command::Worker { sets, .. }
            | Command::Why { sets, .. }
            | Command::Report { sets, .. } => sets,
            _ => &[],
        }
    }
}

static CANCEL: AtomicBool = AtomicBool::new(false);

/// Prints a command's view as `mode` wants it; returns whether the command succeeded.
fn show<V: View>(view: &V, mode: Mode) -> anyhow::Result<bool> {
    let text = render(view, mode)?;
    print!("{}", text.stdout);
    eprint!("{}", text.stderr);
    Ok(view.ok())
}

fn main() -> ExitCode {
    orchestrate::util::keep_freed_memory();
    let cli = Cli::parse();
    let mode = if cli.json {
        Mode::Json
    } else if cli.quiet {
        Mode::Quiet
    } else {
        Mode::Human
    };
    let mut settings = Settings::new(cli.cache_dir, cli.reports_dir, mode);
    settings.progress_interval = std::time::Duration::from_secs_f64(cli.progress_interval);
    match commands::parse_overrides(cli.command.experiment_overrides()) {
        Ok(overrides) => settings.overrides = overrides,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    }
    let _ = ctrlc::set_handler(|| {
        if CANCEL.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "interrupting: running tasks stop at their next step, nothing partial is kept (Ctrl-C again to quit now)"
        );
    });
    let result = match cli.command {
        Command::Run {
            files,
            only,
            jobs,
            dry_run,
            fail_fast,
            executor,
            detach,
            runs,
            ..
        } => {
            let args = RunArgs {
                only,
                jobs,
                dry_run,
                fail_fast,
                cancel: &CANCEL,
                executor,
                detach,
                individual_runs: runs,
            };
            let mut ok = true;
            commands::run(&settings, &files, &args, &mut |view| {
                ok &= show(&view, mode)?;
                Ok(())
            })
            .map(|()| ok)
        }
        Command::Plan { files, .. } => commands::plan_command(&settings, &files).and_then(|v| show(&v, mode)),
        Command::Status { files, follow, .. } => {
            let mut ok = true;
            commands::status(&settings, &files, follow, &CANCEL, &mut |view| {
                ok &= show(&view, mode)?;
                Ok(())
            })
            .map(|()| ok)
        }
        Command::Worker {
            experiment, task, key, ..
        } => commands::worker(&settings, &experiment, &task, &key, &CANCEL),
        Command::Why { task, experiment, .. } => {
            commands::why(&settings, &experiment, &task).and_then(|v| show(&v, mode))
        }
        Command::Report {
            files, runs, compare, ..
        } => commands::report(
            &settings,
            &files,
            commands::ReportOptions {
                individual_runs: runs,
                compare,
            },
        )
        .and_then(|v| show(&v, mode)),
        Command::Gc { files, dry_run } => commands::gc(&settings, &files, dry_run).and_then(|v| show(&v, mode)),
        Command::Ls => commands::ls(&settings).and_then(|v| show(&v, mode)),
        Command::Inspect { model, method, sets } => {
            commands::inspect(&model, &method, &sets).and_then(|v| show(&v, mode))
        }
        Command::BenchStep {
            model,
            method,
            sets,
            precision,
            batch,
            seq,
            threads,
            warmup,
            steps,
        } => serde_json::from_value(serde_json::Value::String(precision.clone()))
            .map_err(|_| anyhow::anyhow!("--precision {precision:?}: expected fp32 or bf16"))
            .and_then(|precision| {
                let setup = orchestrate::bench::StepSetup {
                    batch,
                    seq,
                    precision,
                    threads,
                    warmup,
                    steps,
                };
                commands::bench_step(&model, &method, &sets, setup)
            })
            .and_then(|v| show(&v, mode)),
        Command::BenchMatmul {
            threads,
            seconds,
            dtype,
        } => orchestrate::bench::matmul(threads, seconds, dtype).and_then(|v| show(&v, mode)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "orchestrate", &mut std::io::stdout());
            Ok(true)
        }
        Command::Verify => commands::verify(&settings).and_then(|v| show(&v, mode)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            if err.downcast_ref::<orchestrate::spec::error::SpecError>().is_some() {
                eprintln!("error: {err}");
                ExitCode::from(2)
            } else {
                eprintln!("error: {err:#}");
                ExitCode::from(1)
            }
        }
    }
}
