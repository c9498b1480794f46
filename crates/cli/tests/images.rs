//! Drivers as Windows images (issue 10): pageable and discardable sections behave as
//! Windows' loader makes them, and a `.sys` built outside ntmem — by a plain clang and
//! lld-link run, with its own declarations and its own import library — runs; one that
//! imports a routine ntmem lacks is refused, naming it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ntmem_toolchain::Toolchain;
use serde_json::Value;

fn ntmem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ntmem")).args(args).output().expect("ntmem runs")
}

fn driver(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(name).display().to_string()
}

fn json(args: &[&str]) -> (Value, i32) {
    let out = ntmem(args);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (v, out.status.code().expect("exit status"))
}

fn parameters(v: &Value) -> Vec<u64> {
    v["bugcheck"]["parameters"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap()).collect()
}

#[test]
fn calling_init_code_after_driver_entry_is_page_fault_in_nonpaged_area_at_that_address() {
    let (v, code) = json(&["run", &driver("init_discarded.c"), "--json"]);
    assert_eq!(code, 3, "{v}");
    assert!(v["debug_output"].as_str().unwrap().contains("INIT code answers 42 during DriverEntry"), "{v}");
    assert_eq!(v["bugcheck"]["code"], 0x50, "{v}");
    let p = parameters(&v);
    // An instruction fetch of the freed page: the address is the faulting IP.
    assert_eq!((p[1], p[2], p[3]), (8, p[0], 0), "{v}");
    assert_eq!(v["bugcheck"]["driver"], "init_discarded.sys");
}

#[test]
fn paged_code_run_at_dispatch_level_after_a_trim_is_0xd1_at_its_address() {
    let (v, code) = json(&["run", &driver("page_at_dispatch.c"), "--json", "--verifier", "irql"]);
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["bugcheck"]["code"], 0xD1, "{v}");
    let p = parameters(&v);
    assert_eq!((p[1], p[2], p[3]), (2, 8, p[0]), "{v}");
    // Without the trim the page is still resident: no fault.
    let (v, code) = json(&["run", &driver("page_at_dispatch.c"), "--json"]);
    assert_eq!(code, 0, "{v}");
}

#[test]
fn a_global_lookaside_list_works_and_globals_are_system_memory() {
    let (v, code) = json(&["run", &driver("global_lookaside.c"), "--json"]);
    assert_eq!(code, 0, "{v}");
    let out = v["debug_output"].as_str().unwrap();
    assert!(out.contains("global in system space 1, valid 1, physical offset matches 1, value 7"), "{out}");
    assert!(out.contains("2 processors, build 3790"), "{out}");
    assert!(out.contains("global_lookaside: deleted"), "{out}");
}

const FOREIGN: &str = r#"
/* No ntmem header: the declarations a driver built elsewhere carries. */
__declspec(dllimport) void *ExAllocatePoolWithTag(int PoolType, unsigned long long Bytes, unsigned long Tag);
__declspec(dllimport) void ExFreePoolWithTag(void *P, unsigned long Tag);
__declspec(dllimport) unsigned long DbgPrint(const char *Format, ...);
#ifdef MISSING
__declspec(dllimport) void KeNotARealRoutine(void);
__declspec(dllimport) void HalNeither(void);
#endif

long DriverEntry(void *DriverObject, void *RegistryPath)
{
    char *p = ExAllocatePoolWithTag(0, 64, 'ngrF');
    (void)DriverObject;
    (void)RegistryPath;
    if (!p)
        return 0xC000009AL;
    p[63] = 1;
    DbgPrint("foreign: %s at %p\n", "allocated", p);
    ExFreePoolWithTag(p, 'ngrF');
#ifdef MISSING
    KeNotARealRoutine();
    HalNeither();
#endif
    return 0;
}
"#;

/// Builds FOREIGN with clang and lld-link directly (ntmem's flags are not used: the
/// plainest msvc-target build), against an import library made from its own .def.
fn build_foreign(name: &str, defines: &[&str]) -> PathBuf {
    let t = Toolchain::find().expect("clang 19, lld-link and llvm-dlltool (see README)");
    let dir = std::env::temp_dir().join(format!("ntmem-foreign-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("foreign.c"), FOREIGN).unwrap();
    let mut def = String::from("LIBRARY ntoskrnl.exe\nEXPORTS\nExAllocatePoolWithTag\nExFreePoolWithTag\nDbgPrint\n");
    if !defines.is_empty() {
        def.push_str("KeNotARealRoutine\n");
    }
    std::fs::write(dir.join("nt.def"), def).unwrap();
    std::fs::write(dir.join("hal.def"), "LIBRARY HAL.dll\nEXPORTS\nHalNeither\n").unwrap();
    let ok = |c: &mut Command| {
        let out = c.output().unwrap();
        assert!(out.status.success(), "{c:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let mut cc = Command::new(t.clang());
    cc.current_dir(&dir).args([
        "--target=x86_64-pc-windows-msvc",
        "-O2",
        "-Wno-multichar",
        "-c",
        "foreign.c",
        "-o",
        "foreign.obj",
    ]);
    cc.args(defines.iter().map(|d| format!("-D{d}")));
    ok(&mut cc);
    for lib in ["nt", "hal"] {
        ok(Command::new(t.dlltool())
            .current_dir(&dir)
            .args(["-m", "i386:x86-64", "-d", &format!("{lib}.def"), "-l"])
            .arg(format!("{lib}.lib")));
    }
    let out = dir.join(format!("{name}.sys"));
    ok(Command::new(t.lld_link())
        .current_dir(&dir)
        .args([
            "/driver",
            "/subsystem:native",
            "/entry:DriverEntry",
            "/nodefaultlib",
            "foreign.obj",
            "nt.lib",
            "hal.lib",
        ])
        .arg(format!("/out:{}", out.display())));
    out
}

#[test]
fn a_sys_built_by_a_plain_clang_and_lld_link_runs() {
    let sys = build_foreign("foreign", &[]);
    let (v, code) = json(&["run", sys.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["driver"], "foreign.sys");
    assert!(v["debug_output"].as_str().unwrap().starts_with("foreign: allocated at "), "{v}");
    let _ = std::fs::remove_dir_all(sys.parent().unwrap());
}

#[test]
fn a_sys_importing_routines_ntmem_lacks_exits_2_naming_each_and_its_dll() {
    let sys = build_foreign("missing", &["MISSING"]);
    let out = ntmem(&["run", sys.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("ntoskrnl.exe!KeNotARealRoutine"), "{err}");
    assert!(err.contains("HAL.dll!HalNeither"), "{err}");
    assert!(err.contains("`ntmem api` lists"), "{err}");
    let _ = std::fs::remove_dir_all(sys.parent().unwrap());
}

#[test]
fn a_stop_in_driver_code_names_each_frame_with_its_source_line() {
    let (v, code) = json(&["run", &driver("nested_fault.c"), "--json"]);
    assert_eq!(code, 3, "{v}");
    let analysis = &v["bugcheck"]["symbols"]["analysis"];
    let frames: Vec<(String, u64)> = analysis["stack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["call_site"]["function"].as_str().unwrap().to_string(), r["call_site"]["line"].as_u64().unwrap()))
        .collect();
    // Inner faults on line 6; Outer called it on line 11; DriverEntry called Outer on 19.
    let expected = [("Inner", 6), ("Outer", 11), ("DriverEntry", 19)].map(|(f, l)| (f.to_string(), l));
    assert_eq!(frames, expected, "{v}");
    assert_eq!(analysis["symbol_name"], "nested_fault!Inner+9", "{v}");
    assert_eq!(analysis["image_name"], "nested_fault.sys");
    let text = v["bugcheck"]["analysis"].as_str().unwrap();
    assert!(text.contains("FAILURE_BUCKET_ID:  0x7E_nested_fault!Inner"), "{text}");
    assert!(text.contains("nested_fault (private pdb symbols)  nested_fault.pdb"), "{text}");
}

#[test]
fn a_stop_a_routine_makes_names_the_drivers_call_not_the_line_after_it() {
    let (v, code) = json(&["run", &driver("double_free.c"), "--json"]);
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["bugcheck"]["code"], 0xC2, "{v}");
    let frame = &v["bugcheck"]["symbols"]["analysis"]["faulting_frame"];
    // The second ExFreePoolWithTag is on line 15; its return address is on line 16.
    assert_eq!((frame["function"].as_str(), frame["line"].as_u64()), (Some("DriverEntry"), Some(15)), "{v}");
}

#[test]
fn drivers_are_compiled_for_the_machine_chosen() {
    let cases = [
        ("ws03-enterprise-ia64", "PAGE_SIZE 8192 PAGE_SHIFT 13 NTDDI_VERSION 05020000 _WIN32_WINNT 0502"),
        ("xp-professional", "PAGE_SIZE 4096 PAGE_SHIFT 12 NTDDI_VERSION 05010000 _WIN32_WINNT 0501"),
        ("ws03sp1-enterprise-x64", "PAGE_SIZE 4096 PAGE_SHIFT 12 NTDDI_VERSION 05020100 _WIN32_WINNT 0502"),
    ];
    for (machine, expected) in cases {
        let (v, code) = json(&["run", &driver("target_constants.c"), "--machine", machine, "--ram", "1G", "--json"]);
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["debug_output"].as_str().unwrap().trim_end(), expected, "{machine}");
    }
}

#[test]
fn the_wdks_other_headers_build_devioctl_initguid_wdmsec_dontuse() {
    let (v, code) = json(&["run", &driver("secure_device.c"), "--json"]);
    assert_eq!(code, 0, "{v}");
    // STATUS_SUCCESS, a device, CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_OUT_DIRECT,
    // FILE_READ_ACCESS), and the GUID defined once and equal to its copy.
    assert_eq!(v["debug_output"], "secure_device: 00000000 1 00226006 1\n", "{v}");
}

#[test]
fn list_routines_and_interlocked_intrinsics_work_and_a_corrupt_entry_fast_fails_0x139() {
    let (v, code) = json(&["run", &driver("lists.c"), "--json"]);
    assert_eq!(code, 3, "{v}");
    assert_eq!(
        v["debug_output"],
        "empty 1\norder 4213\nhead 4 tail 3\npop 1\ninterlocked 6 6 9 1 now 3, 2, 1\nremoving a corrupt entry\n",
        "{v}"
    );
    assert_eq!(v["bugcheck"]["code"], 0x139, "{v}");
    assert_eq!(parameters(&v), [3, 0, 0, 0], "FAST_FAIL_CORRUPT_LIST_ENTRY");
    let frame = &v["bugcheck"]["symbols"]["analysis"]["faulting_frame"];
    assert_eq!(frame["function"], "DriverEntry", "the fast fail is inlined in the caller: {v}");
}

#[test]
fn simulated_time_critical_regions_breakpoints_and_checked_build_assertions() {
    let (v, code) = json(&["run", &driver("runtime.c"), "--json"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["debug_output"],
        "system 127490112000000000 ticks 0 interrupt 0 frequency 10000000 counter 0 increment 156250\n\
         apcs disabled 1\napcs disabled 0\nbreakpoint caught 80000003\nzeroed 0 -3221225472 2147483647\n\
         after the assertions\n",
        "a free build: the assertions compile to nothing: {v}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .args(["run", &driver("runtime.c"), "--json"])
        .env("CFLAGS", "-DDBG=1")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let output = v["debug_output"].as_str().unwrap();
    assert!(!output.contains("after the assertions"), "{output}");
    assert!(output.contains("*** Assertion failed: the second check caught == 0\n***   Source File: "), "{output}");
    assert!(output.ends_with("runtime.c, line 36\n\n"), "{output}");
    assert_eq!(v["bugcheck"]["code"], 0x7E, "{v}");
    assert_eq!(parameters(&v)[0], 0x8000_0003);
}

#[test]
fn events_timers_dpcs_and_semaphores_run_on_simulated_time() {
    let (v, code) = json(&["run", &driver("timers.c"), "--scenario", &driver("timers.toml"), "--json"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["debug_output"],
        "set 0\nwait 20 ms: 00000102 at 20 ms\ndpc at 50 ms, IRQL 2, expiry 50 ms\n\
         wait: 00000000 at 50 ms, timer signalled 1, event 1\nsemaphore: 00000000, then 00000102\n\
         over the limit: c0000047, count 1\ndelayed to 55 ms\nunload at 90 ms: 3 ticks, cancelled 1\n",
        "{v}"
    );
}

#[test]
fn a_wait_nothing_can_satisfy_ends_the_run_with_a_report_instead_of_hanging() {
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .args(["run", &driver("timers.c"), "--json"])
        .env("CFLAGS", "-DWAIT_FOREVER")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exit"], 4, "{v}");
    assert_eq!(v["halt"]["kind"], "wait_never_ends", "{v}");
    assert_eq!(
        (v["halt"]["routine"].as_str(), v["halt"]["object_type"].as_u64()),
        (Some("KeWaitForSingleObject"), Some(0))
    );
}

/// On a machine booted with `/DEBUG`, ntmem is the attached kernel debugger and
/// continues from every breakpoint, before any `__except` sees it (the debugger gets
/// the first chance), and answers a failed checked-build assertion "Ignore"; without
/// it the first breakpoint is unhandled (0x7E in DriverEntry, 0x80000003).
#[test]
fn with_debug_the_debugger_continues_from_breakpoints_and_ignores_assertions() {
    let run = |boot: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
            .args(["run", &driver("debugger.c"), "--json"])
            .args(boot)
            .env("CFLAGS", "-DDBG=1")
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v
    };
    let v = run(&["--boot", "/DEBUG"]);
    assert_eq!(v["exit"], 0, "{v}");
    let output = v["debug_output"].as_str().unwrap();
    let lines: Vec<&str> = output.lines().filter(|l| !l.starts_with("kd> g") && !l.starts_with("debugger+")).collect();
    let source = driver("debugger.c");
    assert_eq!(
        lines,
        [
            "debugger not present 0",
            "Break instruction exception - code 80000003 (first chance)",
            "after DbgBreakPoint",
            "Break instruction exception - code 80000003 (first chance)",
            "__except ran 0",
            "Break instruction exception - code 80000003 (first chance)",
            "after __debugbreak",
            "*** Assertion failed: never DriverObject == NULL",
            &format!("***   Source File: {source}, line 27"),
            "",
            "Break repeatedly, break Once, Ignore, terminate Process, or terminate Thread (boipt)? i",
            "after the assertion",
        ],
        "{output}"
    );
    assert_eq!(output.matches("kd> g").count(), 3, "{output}");
    assert!(output.contains("\ndebugger+0x"), "each break names the image and offset: {output}");

    let v = run(&[]);
    assert_eq!(v["bugcheck"]["code"], 0x7E, "{v}");
    assert_eq!(parameters(&v)[0], 0x8000_0003);
    assert_eq!(v["debug_output"], "debugger not present 1\n", "{v}");
}
