//! The experiment-file loader (TOML → spans → declarations → DAG → sweeps → parameters) on
//! arbitrary text: it must return an error, never panic or hang.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // A directory that does not exist: includes and data paths resolve to nothing.
        let _ = orchestrate::spec::load_str(Path::new("/nonexistent/fuzz.toml"), text);
    }
});
