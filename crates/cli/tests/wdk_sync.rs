//! Driver-level tests of mutexes, multiple waits, work items, system threads and
//! handles (issue 11 item 3, issue 12 item 2): C drivers run on a simulated machine,
//! their results and the bugchecks of their misuse asserted.

mod common;

use common::{run_cflags as run, stop};
use serde_json::Value;

#[test]
fn mutexes_recurse_release_and_multiple_waits_satisfy_as_windows_does() {
    let v = run("mutexes.c", "", &[]);
    assert_eq!(v["exit"], 0, "{v}");
    assert_eq!(
        v["debug_output"],
        "mutex: state 1\nwait 00000000 state 0 owner-is-me 1 apcs-disabled 1\nagain 00000000 state -1\n\
         release -1\nrelease 0, state 1, apcs-disabled 0\nnot owned: c0000046\n\
         fast: IRQL 1 count 0 owner-is-me 1 try 0\nreleased: IRQL 0 count 1\ntry 1: IRQL 1\nunsafe: IRQL 0 count 0\n\
         guarded: IRQL 0 apcs-disabled 1 try 0\nguarded released: apcs-disabled 0\n\
         any: 00000001, events 0 0 1\nall (poll): 00000102, event 2 still 1\nall: 00000000 at 30 ms\n\
         semaphore 1, event 0 0\nany: 00000001 (the semaphore)\nany: 00000102 at 40 ms\n\
         shared: 2, exclusive 0, active 1, try exclusive 0\nexclusive: 1, count 2, flag 0080\n\
         released: active 0, flag 0000, delete 00000000\n",
        "{v}"
    );
}

#[test]
fn reacquiring_a_fast_mutex_the_thread_owns_is_mutex_already_owned() {
    let v = run("mutexes.c", "-DREACQUIRE_FAST", &[]);
    let (code, p) = stop(&v);
    assert_eq!((v["exit"].as_u64(), code), (Some(3), 0xBF), "{v}");
    assert_eq!((p[2], p[3]), (0, 0), "{v}");
    assert_ne!(p[0], 0, "the mutex's address");
    assert_ne!(p[1], 0, "the thread");
}

#[test]
fn a_fast_mutex_at_dispatch_level_is_irql_not_greater_or_equal() {
    let v = run("mutexes.c", "-DFAST_AT_DISPATCH", &[]);
    assert_eq!(stop(&v), (0x09, vec![2, 1, 0, 0]), "{v}");
}

#[test]
fn four_objects_without_a_wait_block_array_is_maximum_wait_objects_exceeded() {
    let v = run("mutexes.c", "-DTOO_MANY_OBJECTS", &[]);
    assert_eq!(stop(&v), (0x0C, vec![0, 0, 0, 0]), "{v}");
}

#[test]
fn releasing_a_mutex_not_owned_raises_status_mutant_not_owned() {
    let v = run("mutexes.c", "-DRELEASE_NOT_OWNED", &[]);
    let (code, p) = stop(&v);
    assert_eq!((code, p[0]), (0x7E, 0xC000_0046), "unhandled in DriverEntry's system thread: {v}");
}

#[test]
fn releasing_a_resource_not_held_is_resource_not_owned() {
    let v = run("mutexes.c", "-DRESOURCE_NOT_OWNED", &[]);
    let (code, p) = stop(&v);
    assert_eq!((code, p[2], p[3]), (0xE3, 0, 0), "{v}");
    assert!(p[0] != 0 && p[1] != 0, "the resource and the thread: {v}");
}

#[test]
fn a_thread_waiting_for_a_resource_its_waiter_holds_is_a_wait_that_never_ends() {
    let v = run("mutexes.c", "-DRESOURCE_DEADLOCK", &[]);
    assert_eq!(v["exit"], 4, "{v}");
    assert_eq!(v["halt"]["routine"], "ExAcquireResourceSharedLite", "{v}");
}

/// The pool tags the run left allocated, with how many blocks each.
fn leaks(v: &Value) -> Vec<(String, i64)> {
    let rows = v["leaks"].as_array().cloned().unwrap_or_default();
    rows.iter().map(|l| (l["tag"].as_str().unwrap_or("").to_string(), l["diff"].as_i64().unwrap_or(0))).collect()
}

#[test]
fn a_system_thread_runs_inside_the_wait_for_it_and_work_items_and_other_threads_after_driver_entry() {
    let v = run("threads.c", "", &[]);
    assert_eq!(v["exit"], 0, "{v}");
    assert_eq!(
        v["debug_output"],
        "create: 00000000, process 0000000000000004, kernel handle 1\nas an event: c0000024\n\
         as a file: c0000024, as a process: c0000024, bad handle: c0000008\n\
         as a thread: 00000000, not mine 1\nthread running before the wait: 0\n\
         thread: context 0000000000001234, IRQL 0, priority was 8, system 1, other thread 1\n\
         thread ended: 00000000, ran 1, signalled 1\nqueued at IRQL 0\n\
         io work item: device ok 1, context 0000000000005678, IRQL 0, worker 1\n\
         ex work item: parameter 0000000000009ABC, IRQL 0\n\
         detached thread: context 000000000000DEF0, IRQL 0, apcs-disabled 0\nunload: thread ran 1\n",
        "{v}"
    );
    assert!(leaks(&v).is_empty(), "{v}");
}

#[test]
fn a_thread_handle_never_closed_leaks_the_thread_object() {
    let v = run("threads.c", "-DLEAK_HANDLE", &[]);
    assert_eq!(leaks(&v), vec![("Thre".to_string(), 1)], "{v}");
}

#[test]
fn a_work_item_never_freed_is_a_leak() {
    let v = run("threads.c", "-DLEAK_WORKITEM", &[]);
    assert_eq!(leaks(&v), vec![("IoWk".to_string(), 1)], "{v}");
}

#[test]
fn a_work_item_returning_with_a_mutex_is_system_exit_owned_mutex() {
    let v = run("threads.c", "-DWORKER_HOLDS_MUTEX", &[]);
    let (code, p) = stop(&v);
    assert_eq!((code, p[3]), (0x39, 0), "{v}");
    assert!(p[0] != 0 && p[1] != 0 && p[2] != 0, "routine, device, item: {v}");
}

#[test]
fn a_thread_waiting_for_what_nothing_can_signal_ends_the_run() {
    let v = run("threads.c", "-DTHREAD_WAITS_FOREVER", &[]);
    assert_eq!(v["exit"], 4, "{v}");
    assert_eq!((v["halt"]["kind"].as_str(), v["halt"]["object_type"].as_u64()), (Some("wait_never_ends"), Some(0)));
}

#[test]
fn an_exception_no_handler_takes_in_a_system_thread_is_0x7e() {
    let v = run("threads.c", "-DTHREAD_FAULTS", &[]);
    let (code, p) = stop(&v);
    assert_eq!((code, p[0]), (0x7E, 0xC000_0005), "{v}");
}

#[test]
fn driver_entry_returning_inside_a_critical_region_is_apc_index_mismatch() {
    let v = run("threads.c", "-DCRITICAL_REGION_KEPT", &[]);
    let (code, p) = stop(&v);
    assert_eq!((code, p[1], p[2], p[3]), (0x01, 0, 0xFFFF, 1), "{v}");
    assert_ne!(p[0], 0, "DriverEntry's address: {v}");
}

#[test]
fn closing_a_handle_twice_is_invalid_kernel_handle() {
    let v = run("threads.c", "-DCLOSE_TWICE", &[]);
    assert_eq!(stop(&v), (0x93, vec![0xFFFF_FFFF_8000_0004, 1, 0, 0]), "{v}");
}

#[test]
fn dereferencing_a_deleted_thread_object_is_reference_by_pointer() {
    let v = run("threads.c", "-DDEREFERENCE_TWICE", &[]);
    let (code, p) = stop(&v);
    assert_eq!((code, p[2], p[3]), (0x18, 0, 0), "{v}");
}
