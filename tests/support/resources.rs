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
