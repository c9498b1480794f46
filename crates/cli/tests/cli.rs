//! The `ntmem` command as a user runs it: exit statuses, JSON shapes, messages.

use std::process::{Command, Output};

use serde_json::Value;

fn ntmem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ntmem")).args(args).output().expect("ntmem runs")
}

fn json(args: &[&str]) -> Value {
    let out = ntmem(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

const GB: u64 = 1 << 30;
const TB: u64 = 1 << 40;

#[test]
fn machines_lists_table_1_and_vista_with_the_seeds_numbers() {
    let v = json(&["machines", "--json"]);
    assert_eq!((v["exit"].as_u64(), v["schema_version"].is_u64()), (Some(0), true), "one object: {v}");
    let rows = v["machines"].as_array().unwrap();
    assert_eq!(rows.len(), 23);
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("{name}"));
    let check = |name: &str, arch: &str, va: u64, max: u64| {
        let r = row(name);
        assert_eq!(r["arch"], arch, "{name}");
        assert_eq!(r["virtual_address_space"], va, "{name}");
        assert_eq!(r["max_physical_memory"], max, "{name}");
        for key in ["os", "edition", "page_size"] {
            assert!(!r[key].is_null(), "{name} lacks {key}");
        }
    };
    check("ws03sp1-enterprise-x64", "x64", 16 * TB, TB);
    check("ws03sp1-datacenter", "x86", 4 * GB, 128 * GB);
    check("ws03sp1-web", "x86", 4 * GB, 2 * GB);
    check("ws03-enterprise", "x86", 4 * GB, 32 * GB);
    check("ws03-datacenter-ia64", "ia64", 16 * TB, 512 * GB);
    check("xp-64bit-ia64", "ia64", 16 * TB, 128 * GB);
    check("w2k-advanced-server", "x86", 4 * GB, 8 * GB);
    check("vista-x64", "x64", 16 * TB, 128 * GB);
    check("win8-x64", "x64", 16 * TB, 512 * GB);
    assert_eq!(row("xp-64bit-ia64")["page_size"], 8192);
    assert_eq!(row("xp-professional")["page_size"], 4096);
}

#[test]
fn xp_with_3gb_puts_user_space_below_0xbfff0000() {
    let v = json(&["layout", "--machine", "XP Professional", "--boot", "/3GB", "--json"]);
    assert_eq!(v["user_end"], 0xBFFE_FFFFu64);
    assert_eq!(v["user_probe_address"], 0xBFFF_0000u64);
    assert_eq!(v["system_start"], 0xC000_0000u64);
    assert_eq!(v["system_end"], 0xFFFF_FFFFu64);
    let regions = v["regions"].as_array().unwrap();
    assert!(regions.iter().any(|r| r["name"] == "paged pool"));
    for r in regions {
        assert!(r["start"].as_u64() <= r["end"].as_u64(), "{r}");
    }
}

#[test]
fn layout_draws_an_svg() {
    let path = std::env::temp_dir().join(format!("ntmem-layout-{}.svg", std::process::id()));
    let out = ntmem(&["layout", "--svg", path.to_str().unwrap()]);
    assert!(out.status.success());
    let svg = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("nonpaged pool") && svg.trim_end().ends_with("</svg>"));
}

#[test]
fn boot_reports_memory_pools_and_ptes() {
    let v = json(&["boot", "--json"]);
    for key in [
        "ram",
        "free_pages",
        "largest_free_run_below_4g",
        "largest_free_run",
        "nonpaged_pool_max",
        "paged_pool_max",
        "system_ptes",
    ] {
        assert!(v[key].as_u64().is_some_and(|n| n > 0), "{key}: {v}");
    }
    assert_eq!(v["ram"], 8 * GB);
    let x86 = json(&["boot", "--machine", "xp-professional", "--ram", "4G", "--json"]);
    assert!(x86["usable_ram"].as_u64().unwrap() < 4 * GB, "the PCI hole takes RAM below 4 GB");
}

#[test]
fn run_without_a_driver_runs_the_demos() {
    let out = ntmem(&["run"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    for demo in ["nic.c", "ioctl.c", "contig.c", "wdlock.c"] {
        assert!(text.contains(&format!("demo: drivers/{demo}")), "{text}");
    }
    assert!(text.contains("RecvLookasideList Depth 34/256"), "the depth followed demand: {text}");
    // The NIC is started with its resources and reaches its registers (seed §8).
    assert!(text.contains("IRP_MN_START_DEVICE   STATUS_SUCCESS"), "{text}");
    assert!(text.contains("nic: CSR memory BAR at physical 0xc0000000 mapped at"), "{text}");
    assert!(text.contains("nic: SCB command read through the memory mapping: 0x0010"), "{text}");
    assert!(text.contains("METHOD_OUT_DIRECT MDL of 15 bytes"), "{text}");
    assert!(text.contains("physically contiguous and below 4 GB: yes"), "{text}");
    assert!(
        text.contains("wdlock: contiguous 1073741824 bytes: FAILED at MmAllocateContiguousMemorySpecifyCache"),
        "{text}"
    );
    assert_eq!(text.matches("Result         clean (exit 0)").count(), 4, "{text}");
    let json: serde_json::Value = serde_json::from_slice(&ntmem(&["run", "--json"]).stdout).unwrap();
    assert_eq!(json["exit"], 0);
    assert_eq!(json["demos"].as_array().unwrap().len(), 4);
}

#[test]
fn bad_input_is_refused_with_status_2_and_what_is_valid() {
    let cases: &[(&[&str], &str)] = &[
        (&["boot", "--machine", "windows-me"], "xp-professional"),
        (&["boot", "--ram", "8T"], "1 TB"),
        (&["boot", "--ram", "lots"], "K, M, G or T"),
        (&["layout", "--machine", "w2k-professional", "--boot", "/3GB"], "/3GB"),
        (&["layout", "--machine", "ws03sp1-enterprise-x64", "--boot", "/3GB"], "/3GB"),
        (&["boot", "--boot", "/TURBO"], "/MAXMEM"),
        (&["boot", "--processors", "0"], "processor"),
        (&["boot", "--frobnicate"], "--frobnicate"),
    ];
    for (args, hint) in cases {
        let out = ntmem(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(hint), "{args:?}: {err}");
    }
}

#[test]
fn api_lists_every_export_with_its_dll_and_irql_rule() {
    let v = json(&["api", "--json"]);
    assert_eq!((v["exit"].as_u64(), v["schema_version"].is_u64()), (Some(0), true), "one object: {v}");
    let rows = v["exports"].as_array().unwrap();
    assert_eq!(rows.len(), ntmem_wdk::exports::EXPORTS.len());
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("{name}"));
    assert_eq!(row("IoCreateDevice")["irql"], "PASSIVE_LEVEL");
    assert_eq!(row("IoCreateDevice")["dll"], "ntoskrnl.exe");
    assert_eq!(row("WRITE_PORT_UCHAR")["dll"], "HAL.dll");
    assert_eq!(row("KfRaiseIrql")["component"], "Ke");
    let text = String::from_utf8(ntmem(&["api"]).stdout).unwrap();
    assert!(text.contains(&format!("{} exports", rows.len())), "{text}");
}

/// `ntmem build`: a real PE32+ native image for x64 whose every import is in the
/// export table; `-D` reaches the compiler; an unchanged build comes from the
/// cache, byte for byte; a compile error is exit 2 with the compiler's message.
#[test]
fn build_makes_a_windows_x64_driver_image_and_caches_it() {
    let dir = std::env::temp_dir().join(format!("ntmem-build-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join("cache");
    let source = dir.join("d.c");
    std::fs::write(
        &source,
        "#include <ntddk.h>\n#ifndef GREETING\n#error GREETING must come from -D\n#endif\n\
         NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r) {\n\
         UNREFERENCED_PARAMETER(d); UNREFERENCED_PARAMETER(r);\n\
         PVOID p = ExAllocatePoolWithTag(NonPagedPool, 64, 'dliB');\n\
         DbgPrint(\"%s %p\\n\", GREETING, p); ExFreePoolWithTag(p, 'dliB'); return STATUS_SUCCESS; }\n",
    )
    .unwrap();
    let build = |out: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ntmem"))
            .arg("build")
            .arg(&source)
            .arg("-o")
            .arg(dir.join(out))
            .args(extra)
            .env("NTMEM_CACHE", &cache)
            .output()
            .unwrap()
    };
    let first = build("a.sys", &["-D", "GREETING=\"hi\"", "--json"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let v: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(v["cached"], false);
    let bytes = std::fs::read(dir.join("a.sys")).unwrap();
    let image = ntmem_pe::DriverImage::parse(&bytes).unwrap();
    assert_eq!(image.subsystem, ntmem_pe::Subsystem::Native);
    let imported: Vec<(String, String)> =
        image.imports.iter().flat_map(|d| d.functions.iter().map(|f| (d.name.clone(), f.name.clone()))).collect();
    assert!(imported.iter().any(|(_, n)| n == "ExAllocatePoolWithTag"), "{imported:?}");
    for (dll, name) in &imported {
        assert!(ntmem_wdk::exports::find(dll, name).is_some(), "{dll}!{name} is exported by ntmem");
    }
    let again = build("b.sys", &["-D", "GREETING=\"hi\"", "--json"]);
    let v: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["cached"], true);
    assert_eq!(std::fs::read(dir.join("b.sys")).unwrap(), bytes);
    let missing = build("c.sys", &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("GREETING must come from -D"));
    // A routine ntmem does not declare: the compiler's message, then where the list is.
    let undeclared = build("d.sys", &["-D", "GREETING=KeNotARealRoutine()"]);
    let err = String::from_utf8_lossy(&undeclared.stderr);
    assert_eq!(undeclared.status.code(), Some(2), "{err}");
    assert!(err.contains("KeNotARealRoutine") && err.contains("`ntmem api`"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every subcommand's help is true: it runs, and says what a newcomer needs (what
/// `run` does without a driver, every exit status, the verifier's option names).
#[test]
fn help_texts_tell_what_each_command_does() {
    for command in ["run", "machines", "layout", "boot", "build", "api"] {
        let out = ntmem(&[command, "--help"]);
        assert!(out.status.success(), "{command} --help");
        assert!(!out.stdout.is_empty(), "{command} --help prints its help");
    }
    let help = String::from_utf8(ntmem(&["run", "--help"]).stdout).unwrap();
    assert!(help.contains("Without a driver, runs the demo drivers"), "{help}");
    assert!(!help.contains("prints its summary"), "{help}");
    for status in [
        "0 clean",
        "1 DriverEntry failed, a scenario step failed",
        "2 a usage",
        "3 the machine bugchecked",
        "4 a driver routine",
        "5 an internal error",
        "74 standard output",
    ] {
        assert!(help.contains(status), "exit status {status:?} undocumented: {help}");
    }
    for option in ["special_pool (0x1)", "irql (0x2)", "pool_tracking (0x8)", "dma (0x80)", "misc (0x800)"] {
        assert!(help.contains(option), "{option} missing: {help}");
    }
}

#[test]
fn errors_name_machines_as_machine_takes_them() {
    let out = ntmem(&["boot", "--machine", "w2k-professional", "--boot", "/3GB"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("w2k-professional") && err.contains("xp-professional"), "{err}");
}
