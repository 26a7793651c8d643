//! Signals that stop training at the next batch boundary: Ctrl-C (twice: at once), SIGTERM
//! (preemption, `scancel`) and SIGUSR1 (Slurm's warning before a time limit).

/// The signal that asked this process to stop (0: none yet).
pub static STOP_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// First Ctrl-C: stop at the next batch boundary (the current epoch is lost, earlier ones are
/// kept). Second Ctrl-C: exit at once. SIGTERM (preemption, `scancel`) and SIGUSR1 (Slurm's
/// warning before a time limit) stop at the next batch boundary too.
pub fn install_ctrl_c() -> burn::train::Interrupter {
    use std::sync::atomic::Ordering;
    let interrupter = burn::train::Interrupter::new();
    let handle = interrupter.clone();
    let _ = ctrlc::set_handler(move || {
        if handle.should_stop() {
            // `_exit`, not `exit`: exit handlers would tear libtorch down under the training
            // thread, whose next kernel call then panics and records the run as failed. Quit
            // as a kill would; the run resumes from its last complete epoch.
            // SAFETY: ends the process at once; nothing runs after it.
            unsafe { libc::_exit(130) }
        }
        STOP_SIGNAL.store(libc::SIGINT, Ordering::SeqCst);
        eprintln!("\nstopping at the next batch boundary (Ctrl-C again to quit now)");
        handle.stop(Some("Ctrl-C"));
    });
    let handle = interrupter.clone();
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGUSR1,
    ]) {
        std::thread::spawn(move || {
            for signal in signals.forever() {
                STOP_SIGNAL.store(signal, Ordering::SeqCst);
                let why = if signal == libc::SIGUSR1 {
                    "SIGUSR1 (time limit near)"
                } else {
                    "SIGTERM"
                };
                eprintln!("{why}: stopping at the next batch boundary");
                handle.stop(Some(why));
            }
        });
    }
    interrupter
}

/// Whether Slurm warned this process of its time limit (SIGUSR1).
pub fn warned_of_time_limit() -> bool {
    STOP_SIGNAL.load(std::sync::atomic::Ordering::SeqCst) == libc::SIGUSR1
}
