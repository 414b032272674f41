//! The CSV split loader on arbitrary bytes, with and without a label map: it must return
//! rows or an error naming the line, never panic.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let labels = BTreeMap::from([("neg".to_string(), 0), ("pos".to_string(), 1)]);
    // The columns of the repository's CSV files, so the seeds parse past their header.
    for labels in [None, Some(&labels)] {
        let _ = orchestrate::tasks::dataset::read_csv_bytes(Path::new("fuzz.csv"), data, "review", "label", labels);
    }
});
