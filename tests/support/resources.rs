//! Resources that CI provides and a developer's machine may lack: Slurm (tests/slurm/start.sh),
//! a tmpfs mount (root), the default model (scripts/setup.sh). A test that finds its resource
//! missing prints why and passes without checking anything — unless
//! `ORCHESTRATE_REQUIRE_<NAME>` is set, as scripts/test.sh (what CI runs) sets them all; then
//! the absence is a failure, so that CI cannot pass a test it never ran.

/// Whether the resource `name` (`SLURM`, `TMPFS`, `MINILM`) is here: `missing` is `None` when
/// it is, or why not.
pub fn available(name: &str, missing: Option<String>) -> bool {
    let Some(why) = missing else {
        return true;
    };
    let require = format!("ORCHESTRATE_REQUIRE_{name}");
    assert!(std::env::var_os(&require).is_none(), "{require} is set, but {why}");
    eprintln!("skipped: {why} (with {require}=1 this fails)");
    false
}

/// The Python of the Hugging Face checks (`$ORCHESTRATE_HF_PYTHON`, else `.venv-hf`, made by
/// scripts/setup-hf.sh) when it can import `module`; a missing one is the resource `HF`.
pub fn hf_python(module: &str) -> Option<std::path::PathBuf> {
    let python = std::env::var_os("ORCHESTRATE_HF_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-hf/bin/python"));
    let usable = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = (!usable).then(|| format!("{} cannot import {module}: run scripts/setup-hf.sh", python.display()));
    available("HF", missing).then_some(python)
}
