//! Systematic low resources simulation's options (issue 14 item 5): the record-only
//! ("what-if") run, the exclusion list of stack ids, and `--jobs N`, which fans the
//! campaign's runs out over child processes without changing a byte of the report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn driver(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(name)
}

fn run(name: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ntmem")).arg("run").arg(driver(name)).args(extra).output().expect("ntmem runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

/// The sites a record-only run of `name` reaches.
fn recorded(name: &str) -> Vec<Value> {
    let out = run(name, &["--systematic-record", "--json"]);
    json(&out)["systematic_record"].as_array().expect("the sites").clone()
}

#[test]
fn record_only_runs_once_fails_nothing_and_lists_every_site_reached() {
    let out = run("low_resources.c", &["--systematic-record", "--json"]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    let sites = v["systematic_record"].as_array().unwrap();
    let routines: Vec<&str> = sites.iter().map(|s| s["routine"].as_str().unwrap()).collect();
    assert_eq!(routines, ["ExAllocatePoolWithTag", "ExAllocatePoolWithTag", "IoAllocateMdl"], "{v}");
    for s in sites {
        let site = s["site"].as_str().unwrap();
        assert!(site.starts_with("low_resources!DriverEntry+0x") && site.contains("low_resources.c @ "), "{s}");
        assert_eq!((s["excluded"].as_bool(), s["systematic"].as_bool()), (Some(false), Some(false)), "{s}");
    }
    let mut ids: Vec<u64> = sites.iter().map(|s| s["stack_id"].as_u64().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one id per stack: {v}");
    let baseline = &v["baseline"];
    assert!(
        baseline["debug_output"]
            .as_str()
            .unwrap()
            .contains("site A failed 0 of 20, site B failed 0 of 20, MDL allocated"),
        "nothing failed: {baseline}"
    );
    assert_eq!(baseline["verifier_state"]["counters"]["faults_injected"], 0);
    let t = text(&run("low_resources.c", &["--systematic-record"]));
    assert!(t.contains("low_resources.sys, record only: 3 allocation site(s) reached, none failed"), "{t}");
    for (n, id) in ids.iter().enumerate() {
        assert!(t.contains(&format!("{:>3}  {id:#018x}  ", n + 1)), "site {n} with its id: {t}");
    }
}

#[test]
fn an_excluded_stack_is_listed_and_never_failed_from_the_flag_or_the_scenario() {
    let sites = recorded("unchecked.c");
    assert_eq!(sites.len(), 2, "{sites:?}");
    let unchecked = sites.iter().find(|s| s["site"].as_str().unwrap().contains("unchecked.c @ 29]")).unwrap();
    let id = format!("{:#x}", unchecked["stack_id"].as_u64().unwrap());
    let out = run("unchecked.c", &["--verifier", "systematic_low_resources", "--systematic-exclude", &id, "--json"]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "the one unchecked site is spared: {v}");
    let campaign = &v["systematic"];
    assert_eq!(campaign["sites"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(campaign["sites"][0]["outcome"], "handled");
    assert_eq!(campaign["excluded"][0]["stack_id"], unchecked["stack_id"], "{v}");
    assert_eq!(campaign["excluded"][0]["excluded"], true);
    let t = text(&run("unchecked.c", &["--verifier", "systematic_low_resources", "--systematic-exclude", &id]));
    assert!(
        t.contains(&format!("(stack id {:#018x}): excluded, not failed", unchecked["stack_id"].as_u64().unwrap())),
        "{t}"
    );

    // The scenario key, in decimal.
    let dir = std::env::temp_dir().join(format!("ntmem-vf-systematic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("exclude.toml");
    let toml = format!(
        "verifier = [\"systematic_low_resources\"]\nsystematic_exclude = [\"{}\"]\n",
        unchecked["stack_id"].as_u64().unwrap()
    );
    std::fs::write(&scenario, toml).unwrap();
    let out = run("unchecked.c", &["--scenario", scenario.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["systematic"]["excluded"][0]["stack_id"], unchecked["stack_id"]);
    let out = run("unchecked.c", &["--scenario", scenario.to_str().unwrap(), "--systematic-record", "--json"]);
    let marked: Vec<bool> =
        json(&out)["systematic_record"].as_array().unwrap().iter().map(|s| s["excluded"].as_bool().unwrap()).collect();
    assert_eq!(marked, [false, true], "the record marks it");
    let _ = std::fs::remove_dir_all(&dir);

    let bad = run("unchecked.c", &["--verifier", "systematic_low_resources", "--systematic-exclude", "0xzz"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("is not a stack id"), "{}", text(&bad));
}

#[test]
fn a_site_run_fails_only_its_stack_and_says_what_followed() {
    let sites = recorded("unchecked.c");
    let id = format!("{:#x}", sites[1]["stack_id"].as_u64().unwrap());
    let out = run("unchecked.c", &["--verifier", "systematic_low_resources", "--systematic-target", &id]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "the child reports; the campaign judges: {v}");
    assert_eq!((v["outcome"].as_str(), v["exit"].as_u64()), (Some("bugcheck"), Some(3)), "{v}");
    assert!(v["faulting"].as_str().unwrap().contains("unchecked.c @ 30]"), "{v}");
    let first = format!("{:#x}", sites[0]["stack_id"].as_u64().unwrap());
    let out = run("unchecked.c", &["--verifier", "systematic_low_resources", "--systematic-target", &first]);
    assert_eq!(json(&out)["outcome"], "handled", "{}", text(&out));
}

#[test]
fn jobs_fan_the_runs_out_over_processes_and_the_report_is_the_same_byte_for_byte() {
    for name in ["unchecked.c", "low_resources.c"] {
        for format in [&[][..], &["--json"][..]] {
            let campaign = |jobs: &str| {
                let args = [&["--verifier", "systematic_low_resources", "--jobs", jobs][..], format].concat();
                run(name, &args)
            };
            let one = campaign("1");
            let three = campaign("3");
            assert_eq!(one.status.code(), three.status.code(), "{}", text(&three));
            assert!(!one.stdout.is_empty());
            assert_eq!(
                String::from_utf8_lossy(&one.stdout),
                String::from_utf8_lossy(&three.stdout),
                "{name} {format:?}: --jobs 3 reports what --jobs 1 does"
            );
        }
    }
    let bad = run("unchecked.c", &["--verifier", "systematic_low_resources", "--jobs", "0"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}
