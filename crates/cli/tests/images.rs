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
