use super::*;

fn at(start: Instant, ms: u64) -> Instant {
    start + Duration::from_millis(ms)
}

#[test]
fn measured_from_the_change_to_the_last_ack() {
    let t0 = Instant::now();
    let mut c = Convergence::default();
    c.changed(Some(t0));
    // CDS goes out; the proxy ACKs; LDS goes out; the proxy ACKs.
    assert_eq!(c.polled(1, true, at(t0, 150)), None);
    assert_eq!(c.polled(0, true, at(t0, 160)), None);
    assert_eq!(c.polled(1, true, at(t0, 200)), None);
    assert_eq!(
        c.polled(0, false, at(t0, 230)),
        Some(Duration::from_millis(230))
    );
    // Once only.
    assert_eq!(c.polled(0, false, at(t0, 300)), None);
}

#[test]
fn a_change_that_sends_nothing_is_not_measured() {
    let t0 = Instant::now();
    let mut c = Convergence::default();
    c.changed(Some(t0));
    assert_eq!(c.polled(0, false, at(t0, 10)), None);
    // The next change starts afresh.
    c.changed(Some(at(t0, 500)));
    assert_eq!(c.polled(2, true, at(t0, 600)), None);
    assert_eq!(
        c.polled(0, false, at(t0, 700)),
        Some(Duration::from_millis(200))
    );
}

#[test]
fn a_nacked_change_is_not_measured() {
    let t0 = Instant::now();
    let mut c = Convergence::default();
    c.changed(Some(t0));
    c.nacked(); // of an older response: the change still counts
    assert_eq!(c.polled(1, true, at(t0, 100)), None);
    c.nacked();
    assert_eq!(c.polled(0, false, at(t0, 120)), None);
}

#[test]
fn later_changes_fold_into_the_pending_one() {
    let t0 = Instant::now();
    let mut c = Convergence::default();
    c.changed(Some(t0));
    assert_eq!(c.polled(1, true, at(t0, 100)), None);
    c.changed(Some(at(t0, 150)));
    assert_eq!(c.polled(1, true, at(t0, 250)), None);
    assert_eq!(
        c.polled(0, false, at(t0, 300)),
        Some(Duration::from_millis(300))
    );
}

#[test]
fn snapshots_without_a_change_time_start_nothing() {
    let mut c = Convergence::default();
    c.changed(None);
    assert_eq!(c.polled(1, true, Instant::now()), None);
    assert_eq!(c.polled(0, false, Instant::now()), None);
}
