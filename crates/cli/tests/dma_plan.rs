//! `ntmem dma-plan` as a user runs it (seed 001): help, verdicts, the JSON object,
//! exit statuses, refused input.

use std::process::{Command, Output};

use serde_json::Value;

fn ntmem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ntmem")).args(args).output().expect("ntmem runs")
}

/// The JSON object and the exit status.
fn plan(args: &[&str]) -> (Value, i32) {
    let mut all = vec!["dma-plan", "--json"];
    all.extend_from_slice(args);
    let out = ntmem(&all);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (v, out.status.code().unwrap_or(-1))
}

#[test]
fn help_names_the_locks_the_flags_and_the_exit_statuses() {
    let out = ntmem(&["dma-plan", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "WDC_DMAContigBufLock",
        "WDC_DMASGBufLock",
        "--size",
        "--contiguous",
        "--sg",
        "--address-width",
        "--fragment",
        "--system-pages",
        "--nonpaged-pool-size",
        "0 the lock succeeds",
        "1 it fails",
        "2 a usage",
    ] {
        assert!(help.contains(needle), "{needle} missing: {help}");
    }
    let top = String::from_utf8(ntmem(&["--help"]).stdout).unwrap();
    assert!(top.contains("dma-plan"), "{top}");
}

#[test]
fn seed_001_a_1_gb_contiguous_lock_on_fragmented_xp_fails_for_want_of_contiguous_memory() {
    let (v, status) = plan(&["--machine", "xp-professional", "--ram", "2G", "--size", "1G", "--fragment", "5"]);
    assert_eq!(status, 1, "{v}");
    assert_eq!((v["exit"].as_u64(), v["schema_version"].is_u64()), (Some(1), true), "one object: {v}");
    assert_eq!(v["verdict"], "fails");
    assert_eq!(v["mode"], "contiguous");
    assert_eq!(v["size"], 1u64 << 30);
    assert_eq!(v["address_width"], 32);
    assert_eq!(v["failed_step"], "contiguous_allocation");
    assert_eq!(v["failed_routine"], "MmAllocateContiguousMemorySpecifyCache");
    let f = &v["failure"];
    assert_eq!(f["kind"], "not_enough_contiguous_memory", "{f}");
    assert_eq!(f["pages"], 262_144);
    let largest = f["largest_run"].as_u64().unwrap();
    assert!(largest > 0 && largest < 262_144);
    assert_eq!(v["fragmentation"]["largest_free_run_below_4gb"], largest);
    assert!(v["reason"].as_str().unwrap().contains("not enough physically contiguous memory"));
    let suggestions = v["suggestions"].as_array().unwrap();
    let by_flags =
        |flags: &str| suggestions.iter().find(|s| s["flags"] == flags).unwrap_or_else(|| panic!("{flags}: {v}"));
    let smaller = suggestions.iter().find(|s| s["flags"].as_str().unwrap().starts_with("--size")).unwrap();
    assert_eq!(smaller["succeeds"], true);
    // Before fragmentation the run is there, but x86 cannot map 1 GB of system PTEs.
    let at_boot = by_flags("--fragment 0");
    assert_eq!((&at_boot["succeeds"], &at_boot["failed_step"]), (&Value::Bool(false), &"contiguous_allocation".into()));
    assert!(at_boot["reason"].as_str().unwrap().contains("system PTEs"), "{at_boot}");
    assert_eq!(by_flags("--sg")["failed_step"], "mdl_allocation");
    for s in suggestions {
        assert_eq!(s["succeeds"].as_bool().unwrap(), s["failed_step"].is_null(), "{s}");
    }
}

#[test]
fn scatter_gather_fails_at_the_mdl_on_xp_and_at_system_ptes_on_vista_x86() {
    let (v, status) = plan(&["--machine", "xp-professional", "--ram", "2G", "--size", "1G", "--sg"]);
    assert_eq!(status, 1);
    assert_eq!(v["failure"]["kind"], "mdl_too_large");
    assert_eq!(v["failure"]["limit"], 67_079_168);
    let (v, _) = plan(&["--machine", "vista-x86", "--ram", "3G", "--size", "1G", "--sg"]);
    assert_eq!(v["failed_step"], "kernel_mapping", "{v}");
    let f = &v["failure"];
    assert_eq!((f["kind"].as_str(), f["pages"].as_u64()), (Some("no_system_ptes"), Some(262_144)));
    assert!(f["free"].as_u64() <= f["total"].as_u64());
    assert_eq!(f["total"], v["system_ptes_total"]);
}

#[test]
fn a_buffer_that_locks_exits_0_with_its_page_list_and_no_suggestions() {
    let (v, status) =
        plan(&["--machine", "xp-professional", "--ram", "2G", "--size", "4M", "--fragment", "5", "--contiguous"]);
    assert_eq!((status, v["exit"].as_u64()), (0, Some(0)), "{v}");
    assert_eq!(v["verdict"], "locks");
    assert_eq!(v["page_list"]["pages"], 1024);
    assert_eq!(v["page_list"]["entries"], 1);
    assert!(v["suggestions"].as_array().unwrap().is_empty());
    assert!(v["failure"].is_null());
    let (v, status) = plan(&["--machine", "vista-x64", "--ram", "4G", "--size", "1G", "--sg", "--address-width", "64"]);
    assert_eq!((status, v["verdict"].as_str()), (0, Some("locks")), "{v}");
    let text = String::from_utf8(ntmem(&["dma-plan", "--machine", "xp-professional", "--size", "4M"]).stdout).unwrap();
    assert!(text.contains("verdict        locks"), "{text}");
}

#[test]
fn bad_input_is_refused_with_status_2_as_one_json_object() {
    for args in [
        vec!["--size", "0"],
        vec!["--size", "5G"],
        vec!["--size", "lots"],
        vec!["--size", "1M", "--address-width", "48"],
        vec!["--size", "1M", "--fragment", "95"],
        vec!["--size", "1M", "--machine", "xp-nonesuch"],
        vec!["--size", "1M", "--sg", "--contiguous"],
        vec!["--size", "1M", "--system-pages", "many"],
    ] {
        let (v, status) = plan(&args);
        assert_eq!(status, 2, "{args:?}: {v}");
        assert_eq!(v["exit"], 2, "{args:?}");
        assert!(v["error"].is_string(), "{args:?}: {v}");
    }
}

#[test]
fn system_pages_sets_the_system_pte_count_on_32_bit_editions() {
    let out = ntmem(&["boot", "--machine", "xp-professional", "--ram", "2G", "--system-pages", "100000", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["system_ptes"], 100_000, "{v}");
}

/// The WinDriver demo (drivers/wdlock.c with drivers/wdlock.toml: XP, 2 GB, 5 %
/// fragmented) and `dma-plan` on the same machine give the same verdict for each of
/// its four locks, and the driver names the routine the plan names.
#[test]
fn the_windriver_demo_and_dma_plan_agree() {
    let drivers = concat!(env!("CARGO_MANIFEST_DIR"), "/../../drivers");
    let out =
        ntmem(&["run", &format!("{drivers}/wdlock.c"), "--scenario", &format!("{drivers}/wdlock.toml"), "--json"]);
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["exit"], 0, "{run}");
    let steps = run["steps"].as_array().unwrap();
    let debug = run["debug_output"].to_string();
    let machine = ["--machine", "xp-professional", "--ram", "2G", "--fragment", "5"];
    for (step, size, sg) in [(1, "1G", false), (2, "1G", true), (3, "4M", false), (4, "32M", true)] {
        let mut args = machine.to_vec();
        args.extend(["--size", size]);
        if sg {
            args.push("--sg");
        }
        let (v, _) = plan(&args);
        let status = steps[step]["status"].as_u64().unwrap();
        match v["failed_step"].as_str() {
            None => assert_eq!(status, 0, "step {step}: {v}"),
            Some("contiguous_allocation") => assert_eq!(status, 0xC000_0017, "step {step}"),
            Some("mdl_allocation" | "kernel_mapping") => assert_eq!(status, 0xC000_009A, "step {step}"),
            Some(other) => panic!("step {step}: unexpected {other}"),
        }
        if let Some(routine) = v["failed_routine"].as_str() {
            assert!(debug.contains(&format!("FAILED at {routine}")), "step {step}: {routine} not in {debug}");
        }
    }
}
