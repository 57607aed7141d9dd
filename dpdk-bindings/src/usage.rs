//! Keeps EAL's usage text out of the appliance's output.
//!
//! When `rte_eal_init` refuses an argument it prints the reason on stderr (`EAL: core 2
//! unavailable`) and then its whole usage text, about 100 lines, on stdout. Under systemd both
//! land in the journal, and the one line that says what is wrong scrolls away. So standard
//! output is sent to a scratch file while EAL initialises, and what EAL wrote there is
//! passed on without the usage block.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{FromRawFd, RawFd};

/// Runs `f` with file descriptor 1 on a scratch file, then passes on to the real standard
/// output what was written there, less EAL's usage text. When the scratch file cannot be
/// set up, `f` runs with standard output as it is.
pub(crate) fn without_eal_usage<T>(f: impl FnOnce() -> T) -> T {
    let Some(redirect) = Redirect::start() else {
        return f();
    };
    let result = f();
    let captured = redirect.finish();
    let kept = strip_usage(&captured);
    if !kept.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(kept.as_bytes());
        let _ = out.flush();
    }
    result
}

/// Standard output moved to a memory file; `finish` moves it back.
struct Redirect {
    saved: RawFd,
    scratch: File,
}

impl Redirect {
    fn start() -> Option<Redirect> {
        // SAFETY: memfd_create with a NUL-terminated name and valid flags; it returns a new
        // descriptor or -1.
        let fd = unsafe { libc::memfd_create(c"eal-stdout".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: fd is a descriptor we just opened and own from here on.
        let scratch = unsafe { File::from_raw_fd(fd) };
        // SAFETY: fflush(NULL) flushes every C stream; dup of descriptor 1 returns a new
        // descriptor or -1, touching nothing else.
        let saved = unsafe {
            libc::fflush(std::ptr::null_mut());
            libc::dup(1)
        };
        if saved < 0 {
            return None;
        }
        // SAFETY: both descriptors are open; dup2 atomically points 1 at the scratch file.
        if unsafe { libc::dup2(fd, 1) } < 0 {
            // SAFETY: saved is ours and unused elsewhere.
            unsafe { libc::close(saved) };
            return None;
        }
        Some(Redirect { saved, scratch })
    }

    /// Puts standard output back and returns what was written meanwhile.
    fn finish(mut self) -> String {
        // SAFETY: flushes C's buffered stdout into the scratch file, then points descriptor 1
        // back at the saved one and closes the saved copy, which nothing else uses.
        unsafe {
            libc::fflush(std::ptr::null_mut());
            libc::dup2(self.saved, 1);
            libc::close(self.saved);
        }
        let mut text = String::new();
        if self.scratch.seek(SeekFrom::Start(0)).is_ok() {
            let mut bytes = Vec::new();
            let _ = self.scratch.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    }
}

/// `text` without EAL's usage block: from the line `Usage: <program> [options]` up to the
/// next `EAL:` message (or the end), and without blank lines.
fn strip_usage(text: &str) -> String {
    let mut kept = String::new();
    let mut in_usage = false;
    for line in text.split_inclusive('\n') {
        if line.starts_with("Usage: ") {
            in_usage = true;
        } else if line.starts_with("EAL:") {
            in_usage = false;
        }
        if !in_usage && !line.trim().is_empty() {
            kept.push_str(line);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What DPDK 22.11 printed on stdout for `--lcores 0-2` on a 2-CPU machine (cut short).
    const REFUSED: &str = "\nUsage: appliance [options]\n\nEAL common options:\n  \
        -c COREMASK         Hexadecimal bitmask of cores to run on\n  -l CORELIST \
        List of cores to run on\n\nEAL Linux options:\n  --socket-mem        Memory to \
        allocate on sockets (comma separated values)\n\n";

    #[test]
    fn the_usage_block_is_dropped() {
        assert_eq!(strip_usage(REFUSED), "");
    }

    #[test]
    fn other_output_is_kept() {
        let text = "EAL: Detected CPU lcores: 2\n\nUsage: appliance [options]\n  -c COREMASK\n\
                    EAL: after the usage\nplain line\n";
        assert_eq!(
            strip_usage(text),
            "EAL: Detected CPU lcores: 2\nEAL: after the usage\nplain line\n"
        );
        assert_eq!(
            strip_usage("no newline at the end"),
            "no newline at the end"
        );
    }
}
