use super::*;

#[test]
fn counts_per_function_and_stops_with_first_reason() {
    let f = InFlight::default();
    let s = f.insert("a", 1, "echo");
    let b = f.insert("b", 2, "echo");
    assert_eq!(f.running("echo"), 2);
    assert_eq!(f.running("other"), 0);
    assert!(f.stop("a", StopReason::Cancel));
    assert!(!f.stop("zzz", StopReason::Cancel));
    f.release_all();
    assert_eq!(s.reason(), StopReason::Cancel);
    assert!(s.token().is_cancelled());
    assert_eq!(f.busy(), 2);
    f.handler_done("a", &s);
    f.handler_done("a", &s);
    f.handler_done("ghost", &s);
    f.handler_done("b", &s);
    assert_eq!((f.busy(), f.len()), (1, 2), "a's slot is free, its lease still held; b is not a's");
    f.remove("a", &s);
    f.remove("a", &s);
    f.remove("b", &s);
    assert_eq!(f.running("echo"), 1);
    assert_eq!(f.busy(), 1, "removing a run whose handler returned frees nothing twice");
    assert_eq!(f.leases(), vec![("b".to_string(), 2)]);
    f.remove("b", &b);
    assert_eq!((f.busy(), f.len()), (0, 0));
}

pub(super) fn run(id: &str, priority: i32) -> Run {
    Run {
        run_id: id.into(),
        function: "f".into(),
        status: plinth_core::RunStatus::Running,
        attempt: 1,
        max_attempts: 1,
        input: serde_json::Value::Null,
        output: None,
        error: None,
        created_at: 0,
        started_at: Some(0),
        finished_at: None,
        next_attempt_at: None,
        correlation_id: "c".into(),
        idempotency_key: None,
        trigger: plinth_core::Trigger::Api,
        waiting_for: None,
        priority,
        cancel_requested: false,
        attempts: None,
        flow_key: None,
        held_by: None,
        traceparent: None,
        tracestate: None,
    }
}

#[test]
fn runs_waiting_here_start_by_priority_then_in_order() {
    let f = InFlight::default();
    let (_, first) = f.admit(run("busy", 0), 1).expect("the free slot");
    for (id, p) in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", -1)] {
        assert!(f.admit(run(id, p), 1).is_none(), "{id} waits: the slot is taken");
    }
    assert_eq!((f.busy(), f.waiting(), f.len()), (1, 5, 6));
    let mut order = Vec::new();
    let (mut done, mut stop) = ("busy".to_string(), first);
    while let Some((next, next_stop)) = f.handler_done(&done, &stop) {
        f.remove(&done, &stop);
        order.push(next.run_id.clone());
        (done, stop) = (next.run_id, next_stop);
    }
    assert_eq!(order, ["b", "d", "a", "c", "e"]);
    f.remove(&done, &stop);
    assert_eq!((f.busy(), f.waiting(), f.len()), (0, 0, 0));
}

#[test]
fn only_runs_waiting_long_enough_are_taken_out() {
    let f = InFlight::default();
    let (_, busy) = f.admit(run("busy", 0), 1).expect("the free slot");
    assert!(f.take_overdue(std::time::Duration::ZERO).is_empty(), "nothing waits");
    assert!(f.admit(run("old", 0), 1).is_none());
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert!(f.admit(run("new", 0), 1).is_none());
    assert!(f.take_overdue(std::time::Duration::from_secs(60)).is_empty(), "none waited a minute");
    let taken: Vec<String> = f.take_overdue(std::time::Duration::from_millis(20)).into_iter().map(|(r, _)| r.run_id).collect();
    assert_eq!(taken, ["old"]);
    assert_eq!(f.waiting(), 1, "the newer run still waits");
    assert_eq!(f.len(), 3, "the run taken out keeps its lease until its end is written");
    let (next, _) = f.handler_done("busy", &busy).expect("the newer run gets the slot");
    assert_eq!(next.run_id, "new");
}

#[test]
fn an_old_admission_leaves_a_new_one_of_the_same_run_alone() {
    let f = InFlight::default();
    let (_, busy) = f.admit(run("busy", 0), 1).expect("the free slot");
    assert!(f.admit(run("r", 0), 1).is_none(), "r waits");
    let (_, old) = f.take_overdue(std::time::Duration::ZERO).pop().expect("r given back");
    // r is claimed again by this node before the give-back's task forgets it.
    f.handler_done("busy", &busy);
    f.remove("busy", &busy);
    let (_, new) = f.admit(run("r", 0), 1).expect("r starts on the free slot");
    f.remove("r", &old);
    assert_eq!((f.len(), f.busy(), f.leases()), (1, 1, vec![("r".to_string(), 1)]), "the new admission stays");
    assert_eq!(f.running("f"), 1, "r counted once, busy's count gone");
    assert!(f.handler_done("r", &old).is_none());
    assert_eq!(f.busy(), 1, "the old admission frees no slot of the new one");
    f.handler_done("r", &new);
    f.remove("r", &new);
    assert_eq!((f.len(), f.busy()), (0, 0));
}

#[test]
fn ends_being_written_fill_the_room_on_their_own_and_are_counted_once() {
    let f = InFlight::default();
    let a = f.insert("a", 1, "echo");
    let b = f.insert("b", 1, "echo");
    assert!(f.load().full(2), "two handlers at work fill a room of two");
    assert!(!f.load().full(3));
    f.handler_done("a", &a);
    f.handler_done("a", &a);
    assert_eq!((f.load().busy, f.load().ending), (1, 1), "a's end counted once, however often it is told");
    f.handler_done("b", &b);
    let load = f.load();
    assert_eq!((load.held(), load.ending), (0, 2), "no slot held, two ends unwritten");
    assert!(load.full(2), "as many ends as the room: the node takes no more");
    assert!(!load.full(3));
    assert!(f.remove("a", &a), "an end written gives room back");
    assert!(!f.load().full(2));
    assert_eq!(f.load().ending, 1);
}

#[test]
fn removing_what_was_not_an_end_being_written_gives_no_room() {
    let f = InFlight::default();
    let a = f.insert("a", 1, "echo");
    assert!(!f.remove("a", &Stop::default()), "a stale admission removes nothing");
    assert!(!f.remove("ghost", &a), "nor does a run that is not here");
    assert_eq!(f.len(), 1);
    assert!(!f.remove("a", &a), "a run removed before its handler returned was no end being written");
    assert_eq!((f.len(), f.load().ending, f.load().busy), (0, 0, 0));
    let b = f.insert("b", 1, "echo");
    f.handler_done("b", &b);
    let c = f.insert("b", 2, "echo");
    assert_eq!(f.load().ending, 0, "an admission replaced takes its end's count with it");
    assert!(!f.remove("b", &b), "the old admission is gone");
    f.handler_done("b", &c);
    assert!(f.remove("b", &c));
    assert_eq!(f.load(), Load { busy: 0, waiting: 0, away: 0, ending: 0 });
}

#[test]
fn adopting_takes_in_an_unknown_run_and_leaves_a_held_one_alone() {
    let f = InFlight::default();
    let held = f.admit(run("held", 0), 2).expect("a free slot").1;
    assert!(matches!(f.adopt(run("held", 0), 2), Adopted::Held), "a run the node holds is not taken in twice");
    assert_eq!((f.len(), f.busy(), f.running("f")), (1, 1, 1), "nothing changed");
    assert!(!held.token().is_cancelled(), "the held attempt goes on");

    match f.adopt(run("lost", 0), 2) {
        Adopted::Start(r, _) => assert_eq!(r.run_id, "lost"),
        other => panic!("a free slot starts the run at once: {other:?}"),
    }
    assert!(matches!(f.adopt(run("late", 0), 2), Adopted::Waits), "with both slots taken it waits for one");
    assert_eq!((f.len(), f.busy(), f.waiting()), (3, 2, 1));
    let mut leases = f.leases();
    leases.sort();
    assert_eq!(leases.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["held", "late", "lost"], "all three renewed");
    assert!(matches!(f.adopt(run("late", 0), 2), Adopted::Held), "a run waiting here is held too");
}
