//! Peak resident memory of a task: the kernel's high-water mark (`VmHWM`), reset when a task
//! starts with no other task running, read when it ends. With `-j 1` (and in each Slurm job)
//! that is the task's own peak; tasks that overlap share the process's, so each one's value
//! is the peak of the process while it ran (an upper bound on its own).

use std::sync::Mutex;

static RUNNING: Mutex<usize> = Mutex::new(0);

/// A task's measurement window; [`PeakWindow::finish`] reads the peak.
pub struct PeakWindow {
    open: bool,
}

impl PeakWindow {
    pub fn start() -> Self {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if *running == 0 {
            reset_peak();
        }
        *running += 1;
        Self { open: true }
    }

    /// Peak resident bytes since the window opened (`None` where the kernel does not say).
    pub fn finish(mut self) -> Option<u64> {
        let peak = peak_rss_bytes();
        self.close();
        peak
    }

    fn close(&mut self) {
        if std::mem::take(&mut self.open) {
            let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
            *running = running.saturating_sub(1);
        }
    }
}

impl Drop for PeakWindow {
    fn drop(&mut self) {
        self.close();
    }
}

/// Writing 5 to `clear_refs` resets `VmHWM` to the current RSS (Linux ≥ 4.0). Where that is
/// refused the mark is the process's peak so far, still an upper bound. The freed memory
/// malloc keeps goes back first, or the window would start from the earlier tasks' peak.
fn reset_peak() {
    crate::util::release_freed_memory();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `VmHWM` from `/proc/self/status`, in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("VmHWM:")
}

fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_field_kib(&status, field).map(|kib| kib * 1024)
}

fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window resets the mark only when no other is open, so these tests take turns.
    static ONE_WINDOW_AT_A_TIME: Mutex<()> = Mutex::new(());

    #[test]
    fn the_peak_follows_an_allocation_and_resets_for_the_next_window() {
        let _turn = ONE_WINDOW_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let window = PeakWindow::start();
        let block = vec![1u8; 256 << 20];
        std::hint::black_box(&block);
        let peak = window.finish().expect("Linux reports VmHWM");
        assert!(peak >= 256 << 20, "peak {peak} holds the 256 MiB block");
        drop(block);
        let after = PeakWindow::start().finish().unwrap();
        assert!(
            after + (128 << 20) < peak,
            "a new window starts from the current RSS: {after} vs {peak}"
        );
    }

    /// With the allocator keeping freed blocks (as `main` sets it), 256 MiB freed by one task
    /// stays resident until the next window returns it.
    #[test]
    fn memory_an_earlier_task_freed_does_not_count_in_the_next_window() {
        let _turn = ONE_WINDOW_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        crate::util::keep_freed_memory();
        let blocks: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 4 << 20]).collect();
        std::hint::black_box(&blocks);
        let held = status_bytes("VmRSS:").expect("Linux reports VmRSS");
        drop(blocks);
        let kept = status_bytes("VmRSS:").unwrap();
        assert!(
            kept + (128 << 20) > held,
            "the allocator keeps freed blocks: {kept} vs {held}"
        );
        let next = PeakWindow::start().finish().unwrap();
        assert!(
            next + (128 << 20) < held,
            "the next window starts without the freed blocks: {next} vs {held}"
        );
    }

    #[test]
    fn status_lines_parse_in_kib() {
        assert_eq!(
            status_field_kib("Name:\tx\nVmHWM:\t  12345 kB\n", "VmHWM:"),
            Some(12345)
        );
        assert_eq!(status_field_kib("Name:\tx\n", "VmHWM:"), None);
    }
}
