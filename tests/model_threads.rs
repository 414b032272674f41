//! Torch threads: as set, else the available cores. Its own test binary, because the
//! thread count is process-global and other tests load models in parallel.

mod support;

use orchestrate::model::{self, DeviceChoice, LoadOptions};

#[test]
fn threads_default_to_available_cores() {
    let dir = support::models::fixture("tiny-bert");
    let opts = LoadOptions {
        device: DeviceChoice::Cpu,
        threads: Some(1),
        ..LoadOptions::default()
    };
    model::load(dir.to_str().unwrap(), &opts).unwrap();
    assert_eq!(tch::get_num_threads(), 1);
    let opts = LoadOptions { threads: None, ..opts };
    model::load(dir.to_str().unwrap(), &opts).unwrap();
    let cores = std::thread::available_parallelism().unwrap().get() as i32;
    assert_eq!(tch::get_num_threads(), cores);
}
