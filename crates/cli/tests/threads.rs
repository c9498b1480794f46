//! Driver-level tests of the scheduler of simulated threads (`ntmem_wdk::sched`): a
//! system thread that waits for requests later scenario steps bring, blocks, resumes
//! and serves them; a requesting thread that waits for it; unload stopping it; and
//! what a run reports when threads wait for ever or outlive their driver.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{driver_file as driver, stop};
use serde_json::Value;

/// Runs `ntmem run <args> --json` with `CFLAGS` set to `cflags`, failing the test if it
/// takes more than a minute (a run whose threads all wait must end, not hang).
fn run_json(args: &[&str], cflags: &str) -> Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .args(args)
        .arg("--json")
        .env("CFLAGS", cflags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ntmem runs");
    let start = Instant::now();
    while child.try_wait().expect("waitable").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("ntmem run {args:?} ({cflags}) did not end within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

/// `thread_queue.c` with `scenario` and `cflags`.
fn queue(scenario: &str, cflags: &str) -> Value {
    let c = driver("thread_queue.c");
    let toml = driver(scenario);
    run_json(&[c.to_str().expect("utf-8"), "--scenario", toml.to_str().expect("utf-8")], cflags)
}

/// Each step's (status, output).
fn steps(v: &Value) -> Vec<(u64, String)> {
    let steps = v["steps"].as_array().cloned().unwrap_or_default();
    steps
        .iter()
        .map(|s| (s["status"].as_u64().unwrap_or(u64::MAX), s["output"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// The pool tags the run left allocated, with how many blocks each.
fn leaks(v: &Value) -> Vec<(String, i64)> {
    let rows = v["leaks"].as_array().cloned().unwrap_or_default();
    rows.iter().map(|l| (l["tag"].as_str().unwrap_or("").to_string(), l["diff"].as_i64().unwrap_or(0))).collect()
}

#[test]
fn a_system_thread_serves_requests_that_later_steps_bring_and_unload_stops_it() {
    let v = queue("thread_queue.toml", "");
    assert_eq!(v["exit"], 0, "{v}");
    assert_eq!(
        v["debug_output"],
        "entry: thread created\n\
         thread: started, context ok 1, mine 1, IRQL 0\n\
         thread: request 1 (a1) done at 0 ms, IRQL 0\n\
         thread: request 2 sleeps at 0 ms\n\
         cancelled in thread 0\n\
         thread: request 2 (b2) done at 100 ms, IRQL 0\n\
         thread: answers 7\n\
         thread: woken for a request that was cancelled\n\
         requester: answered 00000000, value -7, same thread 1\n\
         thread: request 3 (d4) done at 150 ms, IRQL 0\n\
         thread: stop\n\
         unload: thread ended 00000000\n",
        "{v}"
    );
    let cancelled = 0xC000_0120;
    assert_eq!(
        steps(&v),
        vec![
            (0, "a101".to_string()),
            (0, "b202".to_string()),
            (cancelled, String::new()),
            (u64::MAX, String::new()),
            (0, "0700".to_string()),
            (u64::MAX, String::new()),
            (0, "d403".to_string()),
        ],
        "{v}"
    );
    assert!(v["steps"].as_array().expect("steps").iter().all(|s| s["ok"] == true), "{v}");
    assert_eq!(v["steps"][3]["note"], "IoCancelIrp returned TRUE; step 3's request completed", "{v}");
    assert!(leaks(&v).is_empty(), "{v}");
    assert_eq!(v["threads_left"], serde_json::json!([]), "{v}");
}

#[test]
fn a_work_item_blocks_in_its_worker_thread_until_a_later_step_releases_it() {
    let v = queue("thread_worker.toml", "");
    assert_eq!(v["exit"], 0, "{v}");
    assert_eq!(
        v["debug_output"],
        "entry: thread created\n\
         thread: started, context ok 1, mine 1, IRQL 0\n\
         worker: waits, id 12, system 1, not the thread 1\n\
         thread: request 1 (a1) done at 0 ms, IRQL 0\n\
         worker: released at 5 ms\n\
         thread: stop\n\
         unload: thread ended 00000000\n",
        "{v}"
    );
    let done = steps(&v);
    assert_eq!((done[0].clone(), done[1].clone()), ((0, "dd00".to_string()), (0, "a101".to_string())), "{v}");
    assert_eq!(v["steps"][0]["note"], "completed after it was left pending", "{v}");
    assert!(leaks(&v).is_empty(), "{v}");
}

#[test]
fn the_same_driver_and_scenario_give_the_same_report() {
    let a = queue("thread_queue.toml", "");
    let b = queue("thread_queue.toml", "");
    assert_eq!(a, b);
}

#[test]
fn a_run_whose_threads_all_wait_for_ever_ends_with_a_report_naming_every_waiter() {
    let v = queue("thread_queue.toml", "-DUNLOAD_FORGETS_STOP");
    assert_eq!(v["exit"], 4, "{v}");
    let halt = &v["halt"];
    assert_eq!(halt["kind"], "wait_never_ends", "{v}");
    assert_eq!((halt["routine"].as_str(), halt["object_type"].as_u64()), (Some("KeWaitForSingleObject"), Some(6)));
    let waiters: Vec<(String, String, u64)> = halt["waiters"]
        .as_array()
        .expect("waiters")
        .iter()
        .map(|w| {
            let s = |k: &str| w[k].as_str().unwrap_or("").to_string();
            (s("thread"), s("routine"), w["object_type"].as_u64().unwrap_or(99))
        })
        .collect();
    assert_eq!(
        waiters,
        vec![
            ("system thread".to_string(), "KeWaitForMultipleObjects".to_string(), 5),
            ("requesting thread".to_string(), "KeWaitForSingleObject".to_string(), 6),
        ],
        "{v}"
    );
    let system = &halt["waiters"][0];
    assert_eq!(system["thread_address"], halt["object"], "the unload waits on that thread's object: {v}");
    assert_ne!(system["start_routine"], 0, "{v}");
    assert_eq!(v["steps"].as_array().map(Vec::len), Some(7), "every step ran before the unload: {v}");
}

#[test]
fn a_thread_still_waiting_when_its_driver_unloads_is_reported() {
    let v = queue("thread_queue.toml", "-DUNLOAD_LEAVES_THREAD");
    assert_eq!(v["exit"], 1, "{v}");
    let left = v["threads_left"].as_array().expect("threads_left");
    assert_eq!(left.len(), 1, "{v}");
    assert_eq!(
        (left[0]["thread"].as_str(), left[0]["routine"].as_str()),
        (Some("system thread"), Some("KeWaitForMultipleObjects"))
    );
    assert_ne!(left[0]["resume_ip"], 0, "{v}");
    assert_eq!(leaks(&v), vec![("Thre".to_string(), 1)], "its own reference keeps the thread object: {v}");
}

#[test]
fn a_thread_that_would_run_again_in_its_unloaded_image_is_0xce() {
    let v = queue("thread_queue.toml", "-DUNLOAD_LEAVES_THREAD -DPOLL_MS=100");
    let (code, p) = stop(&v);
    assert_eq!((code, p[1], p[3]), (0xCE, 8, 0), "{v}");
    assert_eq!(p[0], p[2], "the address it resumes at, fetched: {v}");
    assert_eq!(v["bugcheck"]["driver"], "thread_queue.sys", "{v}");
}

#[test]
fn an_access_violation_in_a_system_thread_stops_the_machine_with_0x7e() {
    let v = queue("thread_crash.toml", "-DCRASH_IN_THREAD");
    let (code, p) = stop(&v);
    assert_eq!((v["exit"].as_u64(), code, p[0]), (Some(3), 0x7E, 0xC000_0005), "{v}");
    let analysis = v["bugcheck"]["analysis"].as_str().unwrap_or("");
    assert!(analysis.contains("FAILURE_BUCKET_ID:  0x7E_thread_queue!Loop"), "{v}");
    assert_eq!(steps(&v).len(), 2, "the run stops at the step whose request crashed the thread: {v}");
    assert_eq!(steps(&v)[0], (0, "a101".to_string()), "{v}");
}

#[test]
fn a_system_thread_that_never_returns_is_a_timeout_naming_it() {
    let c = driver("thread_queue.c");
    let toml = driver("thread_crash.toml");
    let args = [c.to_str().expect("utf-8"), "--scenario", toml.to_str().expect("utf-8"), "--timeout", "0.3"];
    let v = run_json(&args, "-DHANG_IN_THREAD");
    assert_eq!((v["exit"].as_u64(), v["halt"]["kind"].as_str()), (Some(4), Some("timeout")), "{v}");
    let routine = v["halt"]["routine"].as_str().unwrap_or("");
    assert!(routine.starts_with("the system thread started at 0x"), "{v}");
    assert_eq!(steps(&v).len(), 2, "{v}");
}

/// Microsoft's general/cancel/sys sample (a polling system thread fed by a semaphore),
/// where a copy of Windows-driver-samples is at `NTMEM_SAMPLES` (default
/// `/tmp/samples`); skipped without one.
#[test]
fn microsofts_cancel_sample_with_its_polling_thread_runs_clean() {
    let root = std::env::var("NTMEM_SAMPLES").unwrap_or_else(|_| "/tmp/samples".to_string());
    let sample = Path::new(&root).join("general/cancel/sys");
    if !sample.join("cancel.c").exists() {
        eprintln!("skipped: no {}", sample.display());
        return;
    }
    let toml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../drivers/samples/cancel.toml");
    let v = run_json(&[sample.to_str().expect("utf-8"), "--scenario", toml.to_str().expect("utf-8")], "");
    assert_eq!(v["exit"], 0, "{v}");
    assert_eq!(steps(&v)[2], (0, "ffffffff".to_string()), "the read polled, slept 500 ms, then completed: {v}");
    assert_eq!(steps(&v)[3].0, 0xC000_0120, "{v}");
}
