//! A seed replays exactly: the same history, faults and simulated time on every run. (In its
//! own test binary: simulations must not run at the same time in one process, see
//! `scenario::run`.)

use concord_sim::scenario::{run, Options};

#[test]
fn a_seed_runs_the_same_every_time() {
    let opts = Options::new(7, 3);
    let a = run(&opts).expect("seed 7 passes");
    let b = run(&opts).expect("seed 7 passes again");
    assert_eq!(a.digest, b.digest, "the two runs' histories differ");
    assert_eq!(a.completed, b.completed);
    assert_eq!(a.faults, b.faults);
    assert_eq!(a.sim_time, b.sim_time);
    // Snapshots are written and streamed inline, at fixed points of simulated time.
    assert!(a.snapshots_installed > 0, "seed 7 installs a snapshot");
    assert_eq!(
        (a.snapshots_written, a.snapshots_installed),
        (b.snapshots_written, b.snapshots_installed)
    );
    let other = run(&Options::new(8, 3)).expect("seed 8 passes");
    assert_ne!(
        a.digest, other.digest,
        "different seeds gave the same history"
    );
}
