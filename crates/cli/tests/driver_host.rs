//! The driver host end to end: C drivers under `tests/drivers/` are built into
//! Windows x64 images against `include/`, run by `ntmem run`, and judged by exit status,
//! text and JSON report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn driver(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(name)
}

fn run(name: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ntmem")).arg("run").arg(driver(name)).args(extra).output().expect("ntmem runs")
}

fn ntmem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ntmem")).args(args).output().expect("ntmem runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn json(name: &str) -> (Value, i32) {
    let out = run(name, &["--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (v, out.status.code().expect("exit status"))
}

#[test]
fn a_clean_driver_exits_0_and_its_dbgprint_output_appears() {
    let out = run("clean.c", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("clean: DriverEntry at IRQL 0"), "{t}");
    assert!(t.contains("clean: IRQL under the lock was 2"), "{t}");
    assert!(t.contains("clean: unloaded"), "{t}");
    assert!(t.contains("STATUS_SUCCESS"), "{t}");
    assert!(t.contains("Leaks          none"), "{t}");
    // DbgPrint output comes before the report, as it happens.
    assert!(t.find("clean: unloaded").unwrap() < t.find("DriverEntry    STATUS_SUCCESS").unwrap(), "{t}");

    let (v, code) = json("clean.c");
    assert_eq!(code, 0);
    assert_eq!(v["exit"], 0);
    assert_eq!(v["driver_entry_status"], 0);
    assert_eq!(v["bugcheck"], Value::Null);
    assert_eq!(v["leaks"], serde_json::json!([]));
    assert_eq!(v["steps"], serde_json::json!([]));
    assert!(v["debug_output"].as_str().unwrap().contains("clean: unloaded"));
}

#[test]
fn the_seeds_test_buffer_compiles_unmodified_and_shows_as_test() {
    let out = run("tset.c", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("buffer is cache-aligned"), "{t}");
    assert!(t.contains("TEST.b at 16; packed struct 6 bytes"), "{t}");
    let row = t.lines().find(|l| l.trim_start().starts_with("Test ")).unwrap_or_else(|| panic!("{t}"));
    assert!(row.contains("Nonp"), "{row}");
    let (v, _) = json("tset.c");
    assert_eq!(v["pool"][0]["tag"], "Test");
    assert_eq!(v["pool"][0]["allocs"], 1);
    assert_eq!(v["pool"][0]["frees"], 1);
}

#[test]
fn a_syntax_error_exits_2_with_the_compilers_message() {
    let out = run("syntax_error.c", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("syntax_error.c:6"), "{err}");
    assert!(err.contains("error:"), "{err}");
    assert!(err.contains("expected expression"), "{err}");
}

#[test]
fn with_json_a_build_or_usage_error_is_still_one_object_ci_can_parse() {
    let out = run("syntax_error.c", &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!((v["exit"].as_u64(), v["schema_version"].as_u64()), (Some(2), Some(2)), "{v}");
    assert!(v["error"].as_str().unwrap().contains("expected expression"), "{v}");
    let out = ntmem(&["run", "--json", "--no-such-flag"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(out.status.code(), Some(2));
    assert!(v["error"].as_str().unwrap().contains("--no-such-flag"), "{v}");
    let out = ntmem(&["run", "--json", "--machine", "no-such-machine", &driver("clean.c").display().to_string()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(v["error"].as_str().unwrap().contains("no-such-machine"), "{v}");
}

#[test]
fn a_bugcheck_in_json_gives_each_parameter_as_hex_with_its_meaning_by_subcode() {
    let out = run("double_free.c", &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let b = &v["bugcheck"];
    assert_eq!(b["parameters_hex"][0], "0x7", "{v}");
    assert_eq!(b["parameter_meanings"][0], "0x07: the pool block was already freed", "{v}");
    assert_eq!(b["parameter_meanings"][3], "Address of the block being freed", "{v}");
    assert_eq!(b["current_irql"], 0, "{v}");
    assert_eq!(v["schema_version"], 2);
}

#[test]
fn a_routine_ntmem_does_not_implement_does_not_compile() {
    let out = run("unimplemented.c", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("MmAllocateMappingAddressEx"), "{err}");
}

#[test]
fn a_double_free_exits_3_with_bad_pool_caller_subcode_7() {
    let out = run("double_free.c", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("double_free: freeing again"), "{t}");
    assert!(!t.contains("not reached"), "{t}");
    assert!(t.contains("BAD_POOL_CALLER (c2)"), "{t}");
    assert!(t.contains("Arg1: 0000000000000007"), "{t}");
    assert!(t.contains("IMAGE_NAME:  double_free.sys"), "{t}");

    let (v, code) = json("double_free.c");
    assert_eq!(code, 3);
    assert_eq!(v["exit"], 3);
    assert_eq!(v["driver_entry_status"], Value::Null);
    assert_eq!(v["bugcheck"]["code"], 0xC2);
    assert_eq!(v["bugcheck"]["name"], "BAD_POOL_CALLER");
    assert_eq!(v["bugcheck"]["parameters"][0], 7);
    assert_eq!(v["bugcheck"]["parameters"].as_array().unwrap().len(), 4);
    assert_eq!(v["bugcheck"]["driver"], "double_free.sys");
}

#[test]
fn a_leak_exits_1_naming_the_tag() {
    let out = run("leak.c", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("LEAK           tag 'Leak' (Nonp): 1 block(s)"), "{t}");
    assert!(t.contains("tag 'None' (Paged)"), "ExAllocatePool tags 'None': {t}");

    let (v, code) = json("leak.c");
    assert_eq!(code, 1);
    let tags: Vec<&str> = v["leaks"].as_array().unwrap().iter().map(|l| l["tag"].as_str().unwrap()).collect();
    assert!(tags.contains(&"Leak") && tags.contains(&"None"), "{tags:?}");
}

#[test]
fn a_failing_driver_entry_exits_1() {
    let out = run("failing.c", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("DriverEntry failed: STATUS_INSUFFICIENT_RESOURCES"), "{t}");
    let (v, _) = json("failing.c");
    assert_eq!(v["driver_entry_status"], 0xC000_009Au32);
}

#[test]
fn raising_irql_to_a_lower_level_exits_3_with_0x09() {
    let out = run("raise_lower.c", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("IRQL_NOT_GREATER_OR_EQUAL (9)"), "{t}");
    let (v, _) = json("raise_lower.c");
    assert_eq!(v["bugcheck"]["code"], 9);
    assert_eq!(v["bugcheck"]["parameters"], serde_json::json!([2, 1, 0, 0]));
}

#[test]
fn drivers_run_on_32_bit_machines_too() {
    let out = run("clean.c", &["--machine", "xp-professional", "--ram", "512M", "--processors", "1"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("xp-professional"), "{t}");
}

#[test]
fn missing_drivers_and_bad_flags_exit_2() {
    let out = run("no_such_driver.c", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}

#[test]
fn the_headers_compile_clean_with_wall_wextra_werror_in_c() {
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../include");
    let dir = std::env::temp_dir().join(format!("ntmem-headers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("all.c");
    std::fs::write(
        &src,
        "#include <wdm.h>\n#include <ntddk.h>\n#include <ntifs.h>\n\
         #include <pshpack1.h>\ntypedef struct { UCHAR a; ULONG b; } P1;\n#include <poppack.h>\n\
         #include <pshpack2.h>\ntypedef struct { UCHAR a; ULONG b; } P2;\n#include <poppack.h>\n\
         #include <pshpack4.h>\n#include <poppack.h>\n#include <pshpack8.h>\n#include <poppack.h>\n\
         #include <pshpack16.h>\n#include <poppack.h>\n\
         typedef struct { UCHAR a; ULONG b; } P0;\n\
         _Static_assert(sizeof(P1) == 5 && sizeof(P2) == 6 && sizeof(P0) == 8, \"packing\");\n\
         _Static_assert(sizeof(ULONG) == 4 && sizeof(LONG) == 4 && sizeof(ULONG64) == 8, \"widths\");\n\
         _Static_assert(sizeof(PHYSICAL_ADDRESS) == 8 && BYTES_TO_PAGES(PAGE_SIZE + 1) == 2, \"sizes\");\n\
         ULONG tag(void) { return 'tseT'; }\n",
    )
    .unwrap();
    for std in ["-std=c11", "-std=gnu17"] {
        let toolchain = ntmem_toolchain::Toolchain::find().expect("clang 19 (see README)");
        let out = Command::new(toolchain.clang())
            .args(ntmem_toolchain::CFLAGS)
            .args(["-Wall", "-Wextra", "-Werror", "-pedantic-errors", std, "-fsyntax-only", "-I"])
            .arg(&include)
            .arg(&src)
            .output()
            .expect("cc runs");
        assert!(out.status.success(), "{std}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fault_in_driver_code_is_a_bugcheck_blaming_the_driver() {
    let (v, code) = json("null_deref.c");
    assert_eq!(code, 3);
    // DriverEntry runs in a system thread: an access violation nothing handles there
    // is SYSTEM_THREAD_EXCEPTION_NOT_HANDLED.
    assert_eq!(v["bugcheck"]["code"], 0x7E);
    assert_eq!(v["bugcheck"]["parameters"][0], 0xC000_0005u32);
    assert_eq!(v["bugcheck"]["driver"], "null_deref.sys");
}

#[test]
fn structured_exceptions_work_in_c_drivers() {
    let out = run("seh.c", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for check in [
        "ExRaiseStatus caught with its code",
        "user-address fault caught",
        "fault parameters: write at the address",
        "break in a handler leaves the switch",
        "return inside __try",
        "CONTINUE_SEARCH reaches the outer frame",
        "__finally runs on normal exit and on unwind",
        "CONTINUE_EXECUTION is noncontinuable",
        "lowercase try/except",
        "frames still work after all that",
    ] {
        assert!(t.contains(&format!("seh: ok {check}")), "{check}: {t}");
    }
    assert!(!t.contains("FAILED"), "{t}");
}

#[test]
fn the_seeds_probe_for_read_sample_compiles_unmodified_and_its_break_leaves_the_switch() {
    let out = run("seed_probe.c", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("seed_probe: user buffer 0x00000000, went on 1"), "{t}");
    assert!(t.contains("Exception while accessing inBuf 0XC0000005 in METHOD_NEITHER"), "{t}");
    assert!(t.contains("seed_probe: system buffer 0xC0000005, went on 0"), "{t}");
    assert!(t.contains("seed_probe: misaligned 0x80000002"), "{t}");
}

#[test]
fn an_unhandled_ex_raise_status_in_driver_entry_is_0x7e_and_a_returned_from_try_is_not_a_handler() {
    let (v, code) = json("seh_unhandled.c");
    assert_eq!(code, 3, "{v}");
    let output = v["debug_output"].as_str().unwrap();
    assert!(output.contains("seh_unhandled: raising"), "{output}");
    assert!(!output.contains("wrong handler"), "{output}");
    assert_eq!(v["bugcheck"]["code"], 0x7E);
    assert_eq!(v["bugcheck"]["name"], "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED");
    let p = v["bugcheck"]["parameters"].as_array().unwrap();
    assert_eq!(p[0], 0xC000_009Au32);
    assert_ne!(p[1], 0, "the address of the raise");
    // The exception record and context the dispatcher made, on the kernel stack.
    assert!(p[2].as_u64().unwrap() > 0 && p[3].as_u64().unwrap() > p[2].as_u64().unwrap(), "{p:?}");
    assert_eq!(v["bugcheck"]["driver"], "seh_unhandled.sys");
}

#[test]
fn a_user_address_fault_inside_try_at_dispatch_level_is_a_bugcheck_not_an_exception() {
    let (v, code) = json("seh_dispatch_level.c");
    assert_eq!(code, 3, "{v}");
    assert!(!v["debug_output"].as_str().unwrap().contains("caught"), "{v}");
    // 0xD1: the faulting instruction is in the driver's image, which the loader registers.
    assert_eq!(v["bugcheck"]["code"], 0xD1, "{v}");
    assert_eq!(v["bugcheck"]["driver"], "seh_dispatch_level.sys", "{v}");
    assert_eq!(v["bugcheck"]["parameters"][0], 0x10000);
    assert_eq!(v["bugcheck"]["parameters"][1], 2);
}

#[test]
fn a_one_byte_overrun_under_special_pool_is_0xd6_naming_the_driver_even_inside_try() {
    let out = run("overrun.c", &["--verifier", "special_pool", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(out.status.code(), Some(3), "{v}");
    let debug = v["debug_output"].as_str().unwrap();
    assert!(!debug.contains("caught") && !debug.contains("not reached"), "{v}");
    let b = &v["bugcheck"];
    assert_eq!(b["code"], 0xD6, "{v}");
    assert_eq!(b["name"], "DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION");
    assert_eq!(b["driver"], "overrun.sys");
    // (address referenced, 1 = write, faulting IP, 0): the byte after the block, which
    // special pool put against the page end.
    let p: Vec<u64> = b["parameters"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap()).collect();
    let host = debug.split("bytes at ").nth(1).and_then(|s| u64::from_str_radix(s.trim(), 16).ok()).expect("address");
    let block = host.wrapping_sub(v["machine"]["relocation"].as_u64().unwrap());
    assert_eq!((p[0], p[1], p[2], p[3]), (block + 64, 1, b["faulting_ip"].as_u64().unwrap(), 0), "{v}");
    assert_eq!(p[0] % 4096, 0, "{v}");

    let out = run("overrun.c", &[]);
    assert_eq!(out.status.code(), Some(0), "without the verifier the overrun goes unnoticed: {}", text(&out));
}

#[test]
fn reading_an_irp_after_completing_it_under_special_pool_is_0xd5_naming_the_driver() {
    let out = run("after_complete.c", &["--verifier", "special_pool", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(out.status.code(), Some(3), "{v}");
    let b = &v["bugcheck"];
    // The dispatch routine runs with the driver's image registered, so the fault names it.
    assert_eq!((b["code"].clone(), b["driver"].clone()), (Value::from(0xD5), Value::from("after_complete.sys")), "{v}");
    assert_eq!(b["name"], "DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL");
    let p = b["parameters"].as_array().unwrap();
    assert_eq!((p[1].clone(), p[2].clone(), p[3].clone()), (Value::from(0), b["faulting_ip"].clone(), Value::from(0)));
    assert_ne!(p[0], 0);
}

/// Runs the demo NIC driver (`drivers/nic.c`) with scenario text `toml`.
fn run_nic(toml: &str, extra: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("ntmem-pnp-{}-{}", std::process::id(), toml.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("nic.toml");
    std::fs::write(&scenario, toml).unwrap();
    let nic = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../drivers/nic.c");
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(nic)
        .arg("--scenario")
        .arg(&scenario)
        .args(extra)
        .output()
        .expect("ntmem runs");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn start_device_hands_the_driver_the_nics_raw_and_translated_resources() {
    // Under special pool, so that touching an IRP after completing it would stop the run.
    let out = run("pnp_start.c", &["--processors", "2", "--verifier", "special_pool"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for line in [
        "pnp: DriverExtension->DriverObject is the driver 1",
        "PDO has no driver 1, attached to the PDO 1, PDO's AttachedDevice is the FDO 1, FDO StackSize 2",
        "pnp: IRP_MJ_PNP 0x1b minor 0, IoStatus.Status 0xc00000bb on arrival",
        "pnp: raw: Count 1, InterfaceType 5, Version 1, Revision 1, 3 descriptors",
        // The NIC's CSRs: at the start of the profile's PCI memory window, and at port 0xC000.
        "pnp: raw[0] Memory share 1 flags 0x0000 start 0xc0000000 length 0x1000",
        "pnp: raw[1] Port share 1 flags 0x0011 start 0xc000 length 0x20",
        "pnp: raw[2] Interrupt share 3 flags 0x0000 level 11 vector 0xb affinity 0x3",
        "pnp: translated[0] Memory share 1 flags 0x0000 start 0xc0000000 length 0x1000",
        "pnp: translated[1] Port share 1 flags 0x0011 start 0xc000 length 0x20",
        "pnp: translated[2] Interrupt share 3 flags 0x0000 level 6 vector 0x6b affinity 0x3",
        "pnp: IRP_MJ_PNP 0x1b minor 2",
        "pnp: unloaded, devices left 0",
        "Leaks          none",
    ] {
        assert!(t.contains(line), "{line}: {t}");
    }
    // Removal comes before DriverUnload.
    assert!(t.find("minor 2").unwrap() < t.find("pnp: unloaded").unwrap(), "{t}");

    let (v, code) = json("pnp_start.c");
    assert_eq!(code, 0);
    let steps: Vec<&str> = v["pnp"].as_array().unwrap().iter().map(|e| e["step"].as_str().unwrap()).collect();
    // pnp_start completes IRP_MN_QUERY_REMOVE_DEVICE untouched (STATUS_NOT_SUPPORTED):
    // a veto, so the removal is cancelled and the device then pulled.
    let removal = ["IRP_MN_QUERY_REMOVE_DEVICE", "IRP_MN_CANCEL_REMOVE_DEVICE", "IRP_MN_SURPRISE_REMOVAL"];
    assert_eq!(steps, [&["AddDevice", "IRP_MN_START_DEVICE"][..], &removal, &["IRP_MN_REMOVE_DEVICE"]].concat());
    assert_eq!(v["pnp"][2]["status"], 0xC000_00BB_u32, "{v}");
    for i in [0, 1, 5] {
        assert_eq!(v["pnp"][i]["status"], 0, "{v}");
    }
    assert!(v["pnp"][1]["note"].as_str().unwrap().contains("translated: Memory 0xc0000000+0x1000"), "{v}");
    let tags: Vec<&str> = v["pool"].as_array().unwrap().iter().map(|r| r["tag"].as_str().unwrap()).collect();
    assert!(tags.contains(&"PnpR"), "the resource lists live in nonpaged pool: {tags:?}");
}

#[test]
fn a_driver_without_add_device_gets_no_pnp_requests() {
    let (v, code) = json("clean.c");
    assert_eq!(code, 0);
    assert_eq!(v["pnp"], serde_json::json!([]));
}

#[test]
fn the_seeds_resource_loop_maps_the_memory_csrs_and_reads_them_back() {
    // Default machine: BAR 0 (memory) is mapped with MmMapIoSpace by the loop's
    // CmResourceTypeMemory case; BAR 1 (I/O), last in BAR order, leaves the PORT
    // accessors selected. Both reach the same registers.
    let out = run_nic("processors = 1\n", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("nic: CSR memory BAR at physical 0xc0000000 mapped at 00000"), "{t}");
    assert!(t.contains("nic: CSR I/O BAR at port 0xc000, 32 ports"), "{t}");
    assert!(t.contains("nic: register access through READ_PORT_USHORT / WRITE_PORT_USHORT"), "{t}");
    assert!(t.contains("nic: SCB command 0x0010 written, SCB status 0x0000"), "{t}");
    assert!(t.contains("nic: SCB command read through the memory mapping: 0x0010"), "{t}");
    assert!(t.contains("nic: removed"), "{t}");
}

#[test]
fn a_chipset_that_decodes_the_memory_csrs_in_port_space_sends_the_loop_down_the_port_path() {
    // [[relocate]]: before start-device the NIC's memory BAR is decoded in I/O
    // space. The raw list still says memory; the translated list says port, so the
    // same driver never calls MmMapIoSpace and uses READ_PORT_USHORT.
    let out = run_nic("processors = 1\n[[relocate]]\nblock = 0\nspace = \"port\"\n", &["--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(v["exit"], 0, "{v}");
    let said = v["debug_output"].as_str().unwrap();
    assert!(!said.contains("mapped at"), "{said}");
    assert!(!said.contains("through the memory mapping"), "{said}");
    assert!(said.contains("nic: register access through READ_PORT_USHORT / WRITE_PORT_USHORT"), "{said}");
    assert!(said.contains("nic: SCB command 0x0010 written"), "{said}");
    let note = v["pnp"][1]["note"].as_str().unwrap();
    assert!(note.starts_with("raw: Memory 0xc0000000+0x1000, Port 0xc000+0x20"), "{note}");
    assert!(note.contains("translated: Port 0xd000+0x1000, Port 0xc000+0x20"), "{note}");

    // And the reverse knob is validated.
    let out = run_nic("[[relocate]]\nblock = 7\nspace = \"memory\"\n", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("relocate"), "{}", text(&out));
}

#[test]
fn an_unload_step_removes_the_device_first() {
    let out = run_nic("[[step]]\nunload = true\n", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("IRP_MN_REMOVE_DEVICE 0x00000000, then DriverUnload called"), "{t}");
    assert!(t.find("nic: removed").unwrap() < t.find("nic: unloaded").unwrap(), "{t}");
}

#[test]
fn the_other_pool_routines_behave_as_documented_from_c() {
    let out = run("pool_routines.c", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    // 100 bytes round to 8 units of 16 on x64: 112 usable after the header.
    assert!(t.contains("pool: priority block yes, 112 usable bytes, quota 0"), "{t}");
    assert!(t.contains("pool: quota block yes, 48 usable bytes, quota 1"), "{t}");
    assert!(t.contains("pool: ExAllocatePool2 block yes, 0 nonzero bytes"), "{t}");
    assert!(t.contains("pool: paged and nonpaged at once: NULL"), "{t}");
    assert!(t.contains("pool: a terabyte raised 0xC000009A"), "{t}");
    assert!(t.contains("pool: not a block: 0 bytes"), "{t}");
    let paged =
        t.lines().find(|l| l.trim_start().starts_with("Poot") && l.contains("Paged")).unwrap_or_else(|| panic!("{t}"));
    assert!(paged.split_whitespace().collect::<Vec<_>>()[2..5] == ["1", "1", "0"], "{paged}");
}

#[test]
fn dbgprint_speaks_windows_format_language_byte_for_byte() {
    let (v, code) = json("dbgprint_formats.c");
    assert_eq!(code, 0, "{v}");
    let out = v["debug_output"].as_str().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let cut = format!("[p] {}", (0..508).map(|i| char::from(b'a' + (i % 26) as u8)).collect::<String>());
    assert_eq!(
        lines,
        [
            "1 \\Registry\\Machine\\System\\CurrentControlSet\\Services\\dbgprint_formats|ansi",
            "2 wide|wide|wide|narrow|(null)",
            "3 4000000000|-5|123456789abcdef0|-2|ffffffffffffffff|42",
            "4 FFFFF80000001230|0000000000000000",
            "5 AB|7   |00ab|0xff|abc",
            "6 error level shown",
            "7 a level above 31 is a mask",
            "8 kdprint",
            cut.as_str(),
            "9 end",
        ]
    );
}

#[test]
fn a_driver_annotated_as_microsofts_samples_are_compiles_and_runs() {
    let out = run("annotated.c", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("annotated: sum 16, largest 9"), "{t}");
    assert!(t.contains("annotated: unloaded"), "{t}");
}

/// Issue 9 item 1, on an x64 and an x86 machine: locked paged pool survives the
/// trims force IRQL checking makes, keeps its physical pages, and a write through
/// the MDL's system mapping reads back through the pool address.
#[test]
fn locked_paged_pool_stays_resident_through_trims_on_x64_and_x86() {
    for machine in [&[][..], &["--machine", "xp-professional", "--ram", "512M", "--processors", "1"][..]] {
        let mut args = vec!["--verifier", "force_irql_checking"];
        args.extend_from_slice(machine);
        let out = run("locked_paged.c", &args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(0), "{t}");
        assert!(t.contains("locked_paged: 0 bad pages"), "{t}");
    }
}

/// Issue 9 item 2 from C, on x64 and x86, with and without special pool: a
/// LOOKASIDE_LIST_EX is initialised within its 0x60 bytes, and SIZE_MAX quota
/// allocations fail as documented instead of wrapping.
#[test]
fn lookaside_heads_and_huge_quota_requests_stay_within_bounds() {
    let x86 = ["--machine", "xp-professional", "--ram", "512M", "--processors", "1"];
    for machine in [&[][..], &x86[..]] {
        for verifier in [&[][..], &["--verifier", "special_pool"][..]] {
            let args: Vec<&str> = machine.iter().chain(verifier).copied().collect();
            let out = run("hostile_sizes.c", &args);
            let t = text(&out);
            assert_eq!(out.status.code(), Some(0), "{args:?}: {t}");
            assert!(t.contains("hostile_sizes: 0 bad, raised 0xC000009A"), "{args:?}: {t}");
        }
    }
}

/// A fresh path for a `--report` file.
fn report_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ntmem-report-{}-{name}.json", std::process::id()))
}

fn read_report(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let _ = std::fs::remove_file(path);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn stdout_on_a_full_device_is_a_clear_error_and_the_report_file_is_written() {
    let path = report_path("full");
    for json in [false, true] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ntmem"));
        cmd.arg("run").arg(driver("clean.c")).arg("--report").arg(&path).stdout(full);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("ntmem runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(74), "{err}");
        assert!(err.contains("ntmem: cannot write to standard output: No space left on device"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(read_report(&path)["exit"], 0);
    }
}

/// Small watchdog limits, so the hang tests end quickly.
const QUICK: &[&str] = &["--timeout", "0.3", "--dpc-watchdog", "0.3"];

fn json_with(name: &str, extra: &[&str]) -> (Value, i32) {
    let out = run(name, &[&["--json"], extra].concat());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (v, out.status.code().expect("exit status"))
}

#[test]
fn an_endless_loop_at_passive_level_ends_with_a_timeout_report_naming_driver_entry_exit_4() {
    let out = run("hang_passive.c", QUICK);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("DriverEntry did not return within 300 ms (at PASSIVE_LEVEL, instruction 0x"), "{t}");
    assert!(t.contains("in hang_passive.sys"), "{t}");
    let (v, status) = json_with("hang_passive.c", QUICK);
    assert_eq!(status, 4);
    assert_eq!(v["exit"], 4);
    assert_eq!(v["bugcheck"], Value::Null);
    assert_eq!(v["halt"]["kind"], "timeout");
    assert_eq!(v["halt"]["routine"], "DriverEntry");
    assert_eq!(v["halt"]["irql"], 0);
    assert_eq!(v["halt"]["limit_ms"], 300);
    assert_eq!(v["halt"]["driver"], "hang_passive.sys");
    assert_ne!(v["halt"]["ip"], 0);
    assert_eq!(v["driver_entry_status"], Value::Null);
}

#[test]
fn an_endless_loop_at_dispatch_level_is_dpc_watchdog_violation_0x133_cumulative() {
    let (v, status) = json_with("hang_dispatch.c", QUICK);
    assert_eq!(status, 3, "{v}");
    assert_eq!(v["bugcheck"]["code"], 0x133);
    assert_eq!(v["bugcheck"]["name"], "DPC_WATCHDOG_VIOLATION");
    // 1: cumulatively at DISPATCH_LEVEL or above; the period in 15.625 ms ticks (0.3 s = 19).
    assert_eq!(v["bugcheck"]["parameters"], serde_json::json!([1, 19, 0, 0]));
    assert_eq!(v["bugcheck"]["driver"], "hang_dispatch.sys");
    assert_eq!(v["halt"], Value::Null);
}

#[test]
fn spinning_on_a_garbage_lock_word_ends_in_0x133_not_a_hang() {
    let (v, status) = json_with("spin_garbage.c", QUICK);
    assert_eq!(status, 3, "{v}");
    assert_eq!(v["bugcheck"]["code"], 0x133);
    assert_eq!(v["bugcheck"]["parameters"], serde_json::json!([1, 19, 0, 0]));
    assert_eq!(v["bugcheck"]["driver"], "spin_garbage.sys");
}

#[test]
fn watchdog_limits_outside_0_to_a_day_are_usage_errors_and_only_the_dpc_period_counts_at_dispatch_level() {
    let out = run("hang_passive.c", &["--timeout", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = run("hang_passive.c", &["--dpc-watchdog", "nan"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // At DISPATCH_LEVEL only the DPC watchdog counts, whatever --timeout says.
    let (v, _) = json_with("hang_dispatch.c", &["--timeout", "0.1", "--dpc-watchdog", "0.5"]);
    assert_eq!(v["bugcheck"]["parameters"], serde_json::json!([1, 32, 0, 0]), "{v}");
}

#[test]
fn spin_lock_routines_on_null_raise_access_violations_at_passive_level_and_0x0a_at_dispatch_level() {
    let (v, status) = json("spin_null.c");
    assert_eq!(status, 3, "{v}");
    let output = v["debug_output"].as_str().unwrap();
    assert!(output.contains("spin_null: initialize 0xC0000005"), "{output}");
    assert!(output.contains("spin_null: release 0xC0000005 at IRQL 0"), "{output}");
    assert!(!output.contains("acquired NULL"), "{output}");
    assert_eq!(v["bugcheck"]["code"], 0x0A, "{v}");
    let p = v["bugcheck"]["parameters"].as_array().unwrap();
    assert_eq!((p[0].clone(), p[1].clone(), p[2].clone()), (Value::from(0), Value::from(2), Value::from(1)));
    assert_ne!(p[3], 0, "the address of the write");
}

#[test]
fn driver_entry_returning_with_a_spin_lock_held_is_0xe1_worker_thread_returned_at_bad_irql() {
    let (v, status) = json("entry_raised.c");
    assert_eq!(status, 3, "{v}");
    assert_eq!(v["bugcheck"]["code"], 0xE1, "{v}");
    assert_eq!(v["bugcheck"]["name"], "WORKER_THREAD_RETURNED_AT_BAD_IRQL");
    let p = v["bugcheck"]["parameters"].as_array().unwrap();
    assert_ne!(p[0], 0, "the address of DriverEntry");
    assert_eq!((p[1].clone(), p[2].clone(), p[3].clone()), (Value::from(2), Value::from(0), Value::from(0)));
    assert_eq!(v["bugcheck"]["driver"], "entry_raised.sys");
    assert_eq!(v["driver_entry_status"], Value::Null, "{v}");
}

/// Runs `name` with a scenario of one IOCTL (0x222000, METHOD_BUFFERED) and `extra` flags.
fn json_ioctl(name: &str, extra: &[&str]) -> (Value, i32) {
    let dir = std::env::temp_dir().join(format!("ntmem-one-ioctl-{}-{name}-{}", std::process::id(), extra.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("ioctl.toml");
    std::fs::write(&scenario, "[[step]]\nioctl = { code = 0x222000, input = \"00\", output_len = 0 }\n").unwrap();
    json_with(name, &[&["--scenario", scenario.to_str().unwrap()], extra].concat())
}

#[test]
fn a_dispatch_routine_returning_with_a_spin_lock_held_is_0x4a_irql_gt_zero_at_system_service() {
    let (v, status) = json_ioctl("ioctl_raised.c", &[]);
    assert_eq!(status, 3, "{v}");
    assert_eq!(v["bugcheck"]["code"], 0x4A, "{v}");
    assert_eq!(v["bugcheck"]["name"], "IRQL_GT_ZERO_AT_SYSTEM_SERVICE");
    let p = v["bugcheck"]["parameters"].as_array().unwrap();
    assert_ne!(p[0], 0, "the address of the dispatch routine");
    assert_eq!((p[1].clone(), p[2].clone(), p[3].clone()), (Value::from(2), Value::from(0), Value::from(0)));
    assert_eq!(v["bugcheck"]["driver"], "ioctl_raised.sys");
}

#[test]
fn under_io_verification_the_changed_irql_is_0xc9_0x05_with_the_device_and_both_irqls() {
    let (v, status) = json_ioctl("ioctl_raised.c", &["--verifier", "io"]);
    assert_eq!(status, 3, "{v}");
    assert_eq!(v["bugcheck"]["code"], 0xC9, "{v}");
    let p = v["bugcheck"]["parameters"].as_array().unwrap();
    assert_eq!(p[0], 5);
    assert_ne!(p[1], 0, "the device object");
    assert_eq!((p[2].clone(), p[3].clone()), (Value::from(0), Value::from(2)));
}

#[test]
fn completing_an_irp_with_status_pending_under_io_verification_is_0xc9_0x06() {
    let (v, status) = json_ioctl("complete_pending.c", &["--verifier", "io"]);
    assert_eq!(status, 3, "{v}");
    assert_eq!(v["bugcheck"]["code"], 0xC9, "{v}");
    let p = v["bugcheck"]["parameters"].as_array().unwrap();
    assert_eq!((p[0].clone(), p[1].clone(), p[3].clone()), (Value::from(6), Value::from(0x103), Value::from(0)));
    assert_ne!(p[2], 0, "the IRP");
    // Without Verifier, Windows' free kernel does not check: no bugcheck.
    let (v, _) = json_ioctl("complete_pending.c", &[]);
    assert_eq!(v["bugcheck"], Value::Null, "{v}");
}

/// Runs `name` with scenario text `toml` (written to a file of its own) and `extra` flags.
fn json_scenario(name: &str, tag: &str, toml: &str, extra: &[&str]) -> (Value, i32) {
    let dir = std::env::temp_dir().join(format!("ntmem-scenario-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("s.toml");
    std::fs::write(&scenario, toml).unwrap();
    json_with(name, &[&["--scenario", scenario.to_str().unwrap()], extra].concat())
}

#[test]
fn a_dispatch_routine_that_never_returns_is_stopped_by_the_scenarios_timeout_naming_it() {
    let toml = "timeout = 0.3\n[[step]]\nioctl = { code = 0x222000, input = \"00\", output_len = 0 }\n";
    let (v, status) = json_scenario("ioctl_hang.c", "ioctl", toml, &[]);
    assert_eq!(status, 4, "{v}");
    assert_eq!(v["halt"]["kind"], "timeout");
    assert_eq!(v["halt"]["routine"], "IRP_MJ_DEVICE_CONTROL dispatch routine");
    assert_eq!(v["halt"]["limit_ms"], 300);
    assert_eq!(v["halt"]["driver"], "ioctl_hang.sys");
    // --timeout overrides the scenario's.
    let (v, _) = json_scenario("ioctl_hang.c", "override", toml, &["--timeout", "0.2"]);
    assert_eq!(v["halt"]["limit_ms"], 200, "{v}");
}

#[test]
fn a_driver_unload_that_never_returns_is_stopped_naming_driver_unload() {
    let (v, status) = json_with("ioctl_hang.c", QUICK);
    assert_eq!(status, 4, "{v}");
    assert_eq!(v["halt"]["routine"], "DriverUnload");
    assert_eq!(v["unload"], "called");
}

#[test]
fn a_driver_printing_forever_is_stopped_in_its_own_code_and_the_report_is_whole() {
    let (v, status) = json_with("print_hang.c", QUICK);
    assert_eq!(status, 4, "{}", v["halt"]);
    assert_eq!(v["halt"]["routine"], "DriverEntry");
    assert!(v["debug_output"].as_str().unwrap().contains("print_hang: line 0 with some text"));
    let out = run("print_hang.c", QUICK);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DriverEntry did not return within 300 ms"));
}

#[test]
fn under_verifier_releasing_a_spin_lock_at_passive_level_is_0xc4_0x32_before_the_lock_is_touched() {
    let (v, status) = json_with("spin_null.c", &["--verifier", "irql"]);
    assert_eq!(status, 3, "{v}");
    assert!(v["debug_output"].as_str().unwrap().contains("spin_null: initialize 0xC0000005"), "{v}");
    assert_eq!(v["bugcheck"]["code"], 0xC4, "{v}");
    assert_eq!(v["bugcheck"]["parameters"], serde_json::json!([0x32, 0, 0, 0]));
}

/// Issue 14: a NUL written one past the end of a block under special pool — during
/// DriverEntry, when simulated time is 0 — is an overrun found at free, 0xC1 with
/// subcode 0x24, never a single-bit error (0x32).
#[test]
fn a_nul_one_past_the_end_under_special_pool_is_an_overrun_not_a_bit_flip() {
    let out = run("nul_overrun.c", &["--verifier", "special_pool", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(out.status.code(), Some(3), "{v}");
    assert_eq!(v["bugcheck"]["code"], 0xC1, "{v}");
    assert_eq!(v["bugcheck"]["parameters"][3], 0x24, "{v}");
}

#[test]
fn the_report_counts_processors_in_english() {
    let one = text(&run("clean.c", &["--processors", "1"]));
    assert!(one.contains(", 1 processor)"), "{one}");
    let two = text(&run("clean.c", &["--processors", "2"]));
    assert!(two.contains(", 2 processors)"), "{two}");
}

#[test]
fn verifier_flags_given_as_a_number_are_reported_by_name() {
    let t = text(&run("clean.c", &["--verifier", "0x9"]));
    assert!(t.contains("Verifier       special_pool, pool_tracking\n"), "{t}");
    assert!(t.contains("pool allocations attempted"), "the counters follow: {t}");
}

#[test]
fn counted_strings_and_symbolic_links_behave_as_documented_from_c() {
    let out = run("symlinks.c", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for line in [
        "links: NULL 0/0 no buffer",
        "links: ansi 6/7 narrow",
        "links: ansi NULL 0/0",
        "links: constant 6/8 Key",
        // 0x8FFF characters: cut to 0xFFFC bytes, MaximumLength 0xFFFE.
        "links: long 0xfffc/0xfffe",
        // 36 bytes into a 16-byte buffer: cut, no room for a terminator.
        "links: copy cut 16/16 \\Device\\",
        "links: copy NULL 0",
        "links: copy terminated yes",
        "links: append 0",
        "links: append string 0",
        "links: appended 12/16 abcdab",
        "links: append too much 0xc0000023",
        "links: unchanged 12/16 abcdab",
        "links: equal nocase 1 case 0",
        "links: compare nocase 0 case below",
        "links: create 0",
        // \??\X is \DosDevices\X, without case.
        "links: create again 0xc0000035",
        "links: delete 0",
        "links: delete again 0xc0000034",
    ] {
        assert!(t.contains(line), "{line:?} missing:\n{t}");
    }
    assert!(!t.contains("LEFT LINK"), "{t}");

    let out = run("symlink_left.c", &["--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        v["symbolic_links"],
        serde_json::json!([{"name": "\\DosDevices\\NtmemLeft", "target": "\\Device\\NtmemLinks"}])
    );
    let out = run("symlink_left.c", &[]);
    let t = text(&out);
    assert!(t.contains("LEFT LINK      \\DosDevices\\NtmemLeft -> \\Device\\NtmemLinks"), "{t}");
    assert!(t.contains("left symbolic links behind: \\DosDevices\\NtmemLeft"), "{t}");
}

#[test]
fn creating_a_symbolic_link_at_dispatch_level_is_0x0a_as_pageable_code() {
    let (v, code) = json("symlink_dispatch.c");
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["bugcheck"]["code"], 0x0A);
    let p = &v["bugcheck"]["parameters"];
    // The routine's address, DISPATCH_LEVEL, an execute access, the routine again.
    assert_eq!(p[1], 2, "{v}");
    assert_eq!(p[2], 8, "{v}");
    assert_eq!(p[0], p[3], "{v}");
    assert!(!v["debug_output"].as_str().unwrap().contains("not reached"), "{v}");
}

#[test]
fn poolmon_columns_include_per_alloc_and_tell_the_drivers_tags_from_the_systems() {
    let (v, code) = json("leak.c");
    assert_eq!(code, 1, "{v}");
    let row = v["pool"].as_array().unwrap().iter().find(|r| r["tag"] == "Leak").expect("the Leak row").clone();
    // 48 bytes asked for: a 64-byte block (header included) on x64.
    assert_eq!((row["diff"].as_u64(), row["bytes"].as_u64(), row["per_alloc"].as_u64()), (Some(1), Some(64), Some(64)));
    assert_eq!(row["allocated_by"], "driver");
    let out = run("leak.c", &["--sort", "bytes"]);
    let text = text(&out);
    assert!(text.contains("Tag   Type    Allocs     Frees      Diff     Bytes  Per Alloc"), "{text}");
    let (leak, none) = (text.find(" Leak  Nonp").unwrap(), text.find(" None  Paged").unwrap());
    assert!(leak < none, "sorted by bytes, 64 before 32: {text}");
}

#[test]
fn the_system_tags_of_a_drivers_requests_are_shown_apart() {
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .args(["run", "--json", "--scenario"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../drivers/ioctl.toml"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../drivers/ioctl.c"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let by =
        |tag: &str| v["pool"].as_array().unwrap().iter().find(|r| r["tag"] == tag).map(|r| r["allocated_by"].clone());
    assert_eq!(by("Irp "), Some("system".into()), "{v}");
    assert_eq!(by("IoSB"), Some("system".into()), "{v}");
}

#[test]
fn a_pool_bugcheck_shows_the_pool_page_as_pool_does() {
    let (v, code) = json("header_smash.c");
    assert_eq!(code, 3, "{v}");
    assert_eq!((v["bugcheck"]["code"].as_u64(), v["bugcheck"]["parameters"][0].as_u64()), (Some(0x19), Some(0x20)));
    let page = &v["bugcheck"]["pool_page"];
    let entries = page["entries"].as_array().unwrap();
    let smashed = entries.iter().find(|e| e["holds_address"] == true).expect("the block asked about");
    assert_eq!(
        (smashed["tag"].as_str(), smashed["allocated"].as_bool(), smashed["size"].as_u64()),
        (Some("HsmB"), Some(true), Some(0x40))
    );
    assert_eq!(page["region"], "Nonpaged pool");
    assert!(page["damaged"].as_str().unwrap().contains("BlockSize 0x41"), "{page}");
    let text = v["bugcheck"]["analysis"].as_str().unwrap();
    assert!(text.contains("region is Nonpaged pool") && text.contains(" (Allocated) *HsmB"), "{text}");
    // A double free: the block is shown free, with its tag.
    let (v, _) = json("double_free.c");
    let entries = v["bugcheck"]["pool_page"]["entries"].as_array().unwrap().clone();
    let freed = entries.iter().find(|e| e["holds_address"] == true).expect("the freed block");
    assert_eq!((freed["tag"].as_str(), freed["allocated"].as_bool()), (Some("Dubl"), Some(false)), "{v}");
}

fn run_handles(extra: &[&str], envs: &[(&str, &str)]) -> (Value, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(driver("handles.c"))
        .arg("--scenario")
        .arg(driver("handles.toml"))
        .args(extra)
        .envs(envs.iter().copied())
        .output()
        .expect("ntmem runs");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (v, out.status.code().expect("exit status"))
}

/// Opens reach a named device by its symbolic link, each with its own file object
/// (per-handle state in FsContext); requests go through the handle; closing sends
/// IRP_MJ_CLEANUP then IRP_MJ_CLOSE; a handle left open is closed when its process
/// ends, before DriverUnload.
#[test]
fn handles_open_devices_by_name_and_carry_per_handle_state_until_cleanup_and_close() {
    let (v, code) = run_handles(&["--json"], &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["debug_output"],
        "second device of that name: c0000035\n\
         create 1: read 1 write 1 share 0 name '(null)' same device 1\n\
         create 2: read 1 write 0 share 3 name '\\sub' same device 1\n\
         control on handle 1: request 1\n\
         control on handle 1: request 2\n\
         control on handle 2: request 1\n\
         cleanup 1 after 2 requests\n\
         close 1\n\
         cleanup 2 after 1 requests\n\
         close 2\n\
         unload\n",
        "{v}"
    );
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps[4]["output"], "01000000", "handle 2 counts apart from handle 1");
    assert_eq!((steps[6]["status"].as_u64(), steps[6]["reached_driver"].as_bool()), (Some(0xC000_0008), Some(false)));
    assert_eq!(steps[7]["status"], 0xC000_0034_u32, "no such name");
    let file = v["pool"].as_array().unwrap().iter().find(|r| r["tag"] == "File").expect("file objects").clone();
    assert_eq!(
        (file["allocs"].as_u64(), file["diff"].as_u64(), file["allocated_by"].as_str()),
        (Some(2), Some(0), Some("system"))
    );
}

#[test]
fn an_exclusive_device_refuses_a_second_open_before_its_driver_sees_it() {
    let (v, code) = run_handles(&["--json"], &[("CFLAGS", "-DEXCLUSIVE=TRUE")]);
    assert_eq!(code, 1, "the second open fails: {v}");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(
        (steps[1]["status"].as_u64(), steps[1]["reached_driver"].as_bool()),
        (Some(0xC000_0022), Some(false)),
        "{v}"
    );
    assert!(!v["debug_output"].as_str().unwrap().contains("create 2"), "{v}");
}

/// Requests left pending in a cancel-safe queue: one cancelled (IoCancelIrp → ntmem's
/// queue cancel routine → the driver's CsqCompleteCanceledIrp), one completed by a
/// later request; each step's result is its final status once it completes.
#[test]
fn pending_requests_in_a_cancel_safe_queue_are_cancelled_or_completed_later() {
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(driver("csq_queue.c"))
        .arg("--scenario")
        .arg(driver("csq_queue.toml"))
        .arg("--json")
        .output()
        .expect("ntmem runs");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let steps = v["steps"].as_array().unwrap();
    assert_eq!((steps[0]["status"].as_u64(), steps[0]["ok"].as_bool()), (Some(0xC000_0120), Some(true)), "{v}");
    assert_eq!((steps[1]["status"].as_u64(), steps[1]["output"].as_str()), (Some(0), Some("0d600000")), "{v}");
    assert!(steps[2]["note"].as_str().unwrap().starts_with("IoCancelIrp returned TRUE"), "{v}");
    assert_eq!(
        (steps[4]["ok"].as_bool(), steps[4]["note"].as_str()),
        (Some(false), Some("step 1 has no pending request"))
    );
    let output = v["debug_output"].as_str().unwrap();
    assert!(output.starts_with("IoCsqInitialize 00000000 type 2\n"), "{output}");
    assert!(output.contains(": control 1\n"), "IoCsqInsertIrp marks the IRP pending: {output}");
    let cancelled = output.find("cancelled ").unwrap();
    assert!(output[..cancelled].matches("remove ").count() == 1, "removed before completed as cancelled: {output}");
    assert_eq!(v["exit"], 1, "the last cancel step fails");
    assert!(v["leaks"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn a_leak_lists_each_block_with_its_address_and_size_found_by_walking_the_pool() {
    let out = run("leak.c", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("(where each was allocated: run with --verifier pool_tracking)"), "{t}");
    let (v, _) = json("leak.c");
    let blocks = v["leaked_blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 2, "{v}");
    let leak = blocks.iter().find(|b| b["tag"] == "Leak").expect("the Leak block");
    assert_eq!((leak["bytes"].as_u64(), leak["pool"].as_str()), (Some(48), Some("Nonp")));
    let address = leak["address"].as_u64().unwrap();
    assert_eq!(leak["address_hex"], format!("{address:#x}"));
    assert!(t.contains(&format!("{address:#x}            48 bytes\n")), "{t}");
    assert_eq!((leak["routine"].clone(), leak["stack"].clone()), (Value::Null, serde_json::json!([])));
}

#[test]
fn with_pool_tracking_a_leak_at_unload_is_0xc4_0x62_counting_the_blocks() {
    let out = run("leak.c", &["--verifier", "pool_tracking", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(out.status.code(), Some(3), "{v}");
    let b = &v["bugcheck"];
    assert_eq!(b["code"], 0xC4);
    assert_eq!((b["parameters"][0].as_u64(), b["parameters"][3].as_u64()), (Some(0x62), Some(2)), "{b}");
    assert!(b["parameter_meanings"][3].as_str().unwrap().contains("not freed"), "{b}");
    assert_eq!(v["leaked_blocks"].as_array().unwrap().len(), 2, "the blocks are still listed");
    let leak = v["leaked_blocks"].as_array().unwrap().iter().find(|b| b["tag"] == "Leak").unwrap().clone();
    assert_eq!(leak["routine"], "ExAllocatePoolWithTag", "{leak}");
    let site = leak["stack"][0].as_str().unwrap();
    assert!(site.starts_with("leak!DriverEntry+0x") && site.contains("leak.c @ 12]"), "the allocation's line: {leak}");
    let t = text(&run("leak.c", &["--verifier", "pool_tracking"]));
    assert!(t.contains("48 bytes by ExAllocatePoolWithTag, allocated at leak!DriverEntry+0x"), "{t}");
    let peak = &v["verifier_state"]["pool"]["peak"];
    assert_eq!((peak[0]["bytes"].as_u64(), peak[1]["bytes"].as_u64()), (Some(48), Some(16)), "{peak}");
    // Without the option, the same leak is exit 1 (a report, not a stop); with it for
    // another driver, too.
    assert_eq!(run("leak.c", &["--verifier", "pool_tracking", "--verify-driver", "other.sys"]).status.code(), Some(1));
}

#[test]
fn systematic_low_resources_fails_each_call_site_once_in_a_run_of_its_own() {
    let out = run("low_resources.c", &["--verifier", "systematic_low_resources"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "every site is handled: {t}");
    assert!(
        t.contains("low_resources.sys: 3 allocation site(s), each failed once in a run of its own (4 runs)"),
        "{t}"
    );
    assert!(t.contains("1  ExAllocatePoolWithTag failing at low_resources!DriverEntry+0x"), "{t}");
    assert!(t.contains("low_resources.c @ 29]\n     -> handled"), "{t}");
    assert!(t.contains("3  IoAllocateMdl failing at low_resources!DriverEntry+0x"), "{t}");
    // Each run's DbgPrint is in its report: the baseline failed nothing.
    let json_of = || {
        let out = run("low_resources.c", &["--verifier", "systematic_low_resources", "--json"]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    };
    let v = json_of();
    assert_eq!(v["exit"], 0);
    assert!(v["baseline"]["debug_output"].as_str().unwrap().contains("site A failed 0 of 20, site B failed 0 of 20"));
    assert_eq!(v["systematic"]["sites"], json_of()["systematic"]["sites"], "the same sites, ids and outcomes twice");
}

#[test]
fn systematic_low_resources_finds_the_unchecked_allocation_and_what_it_leads_to() {
    let out = run("unchecked.c", &["--verifier", "systematic_low_resources", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(out.status.code(), Some(3), "{v}");
    let sites = v["systematic"]["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 2, "{v}");
    assert_eq!(sites[0]["outcome"], "handled", "the checked allocation: {v}");
    let bad = &sites[1];
    assert_eq!(bad["outcome"], "bugcheck", "{bad}");
    assert!(bad["site"].as_str().unwrap().contains("unchecked.c @ 29]"), "the call site: {bad}");
    assert!(bad["verdict"].as_str().unwrap().contains("SYSTEM_THREAD_EXCEPTION_NOT_HANDLED"), "{bad}");
    assert!(bad["faulting"].as_str().unwrap().contains("unchecked.c @ 30]"), "where it crashed: {bad}");
    assert!(v["systematic"]["verdict"].as_str().unwrap().starts_with("1 of 2 site(s) mishandled a failure"), "{v}");
}

#[test]
fn random_low_resources_fails_at_its_probability_only_for_verified_drivers() {
    let all = ["--verifier", "low_resources", "--fault-probability", "10000"];
    let t = text(&run("low_resources.c", &all));
    assert!(t.contains("site A failed 20 of 20, site B failed 20 of 20, MDL failed"), "{t}");
    // !verifier 4: each failure with the driver's stack.
    assert!(
        t.contains("Resource fault injection history (!verifier 4):\n  Entry (index 0): ExAllocatePoolWithTag at 0 ms"),
        "{t}"
    );
    assert!(t.contains("\n    low_resources!DriverEntry+0x"), "{t}");
    let none = ["--verifier", "low_resources", "--fault-probability", "0"];
    assert!(
        text(&run("low_resources.c", &none)).contains("site A failed 0 of 20, site B failed 0 of 20, MDL allocated")
    );
    let other = [&all[..], &["--verify-driver", "other.sys"]].concat();
    assert!(text(&run("low_resources.c", &other)).contains("site A failed 0 of 20"));
    // The default, 6%, from a fixed seed: the same failures every run, and a
    // different seed gives another sequence.
    let counts = |seed: &str| {
        let t = text(&run("low_resources.c", &["--verifier", "low_resources", "--fault-seed", seed]));
        t.lines().find(|l| l.starts_with("low_resources:")).map(str::to_string).expect("the driver's line")
    };
    assert_eq!(counts("7"), counts("7"));
    let t = text(&run("low_resources.c", &["--verifier", "low_resources", "--fault-seed", "7"]));
    assert!(t.contains("low resources simulation: probability 600/10000, tags all, delay 0 ms, seed 7"), "{t}");
    // Work items too: threads.c does not check IoAllocateWorkItem's result, and stops.
    let t = text(&run("threads.c", &all));
    assert!(t.contains("failed on purpose: IoAllocateWorkItem 'IoWk' from threads!DriverEntry+0x"), "{t}");
    assert!(t.contains("the machine bugchecked"), "{t}");
    // The DMA routines Windows fails too: AllocateCommonBuffer (and contiguous memory).
    let t = text(&run("dma_sg32.c", &all));
    assert!(t.contains("failed on purpose: AllocateCommonBuffer from dma_sg32!Pnp+0x"), "{t}");
    let bad = run("low_resources.c", &["--verifier", "low_resources", "--fault-probability", "20000"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("more than 10000"), "{}", text(&bad));
}

/// Each IRQL rule and the pageable-object rule Driver Verifier enforces, broken by
/// `verifier_rules.c` (input byte = rule), is 0xC4 with its subcode's parameters
/// (Microsoft, "Bug Check 0xC4"); without Verifier the same calls are the free
/// kernel's bugchecks or nothing.
#[test]
fn each_verifier_irql_rule_is_0xc4_with_its_subcode_and_parameters() {
    // (input byte, P1..P4 where known: None = an address, checked non-zero)
    let rules: [(&str, [Option<u64>; 4]); 20] = [
        ("01", [Some(0x01), Some(2), Some(1), Some(24)]),
        ("02", [Some(0x02), Some(15), Some(0x200), Some(40)]),
        ("11", [Some(0x11), Some(2), Some(1), None]),
        ("12", [Some(0x12), Some(15), Some(0), None]),
        ("30", [Some(0x30), Some(2), Some(1), Some(0)]),
        ("31", [Some(0x31), Some(0), Some(2), Some(0)]),
        ("33", [Some(0x33), Some(2), None, Some(0)]),
        ("34", [Some(0x34), Some(0), None, Some(0)]),
        ("35", [Some(0x35), Some(0), None, Some(0)]),
        ("36", [Some(0x36), Some(0), Some(7), Some(0)]),
        ("37", [Some(0x37), Some(0), Some(0), None]),
        ("38", [Some(0x38), Some(0), Some(0), None]),
        ("39", [Some(0x39), Some(0), Some(0), None]),
        ("3A", [Some(0x3A), Some(0), Some(0), None]),
        ("1A", [Some(0x11A), Some(2), Some(0), Some(0)]),
        ("1B", [Some(0x11B), Some(2), Some(0), Some(0)]),
        ("E1", [Some(0xE1), None, Some(0), Some(0)]),
        ("E2", [Some(0xE1), None, Some(0), Some(0)]),
        ("E3", [Some(0xE1), None, Some(0), Some(0)]),
        ("E4", [Some(0xE1), None, Some(0), Some(0)]),
    ];
    for (input, expected) in rules {
        let toml = format!("[[step]]\nioctl = {{ code = 0x222000, input = \"{input}\", output_len = 0 }}\n");
        let (v, status) = json_scenario("verifier_rules.c", &format!("rule-{input}"), &toml, &["--verifier", "irql"]);
        assert_eq!(status, 3, "rule {input}: {v}");
        assert_eq!(v["bugcheck"]["code"], 0xC4, "rule {input}: {v}");
        let p = v["bugcheck"]["parameters"].as_array().unwrap();
        for (i, e) in expected.iter().enumerate() {
            match e {
                Some(x) => assert_eq!(p[i].as_u64(), Some(*x), "rule {input} P{}: {v}", i + 1),
                None => assert_ne!(p[i].as_u64(), Some(0), "rule {input} P{}: {v}", i + 1),
            }
        }
        assert!(!v["bugcheck"]["parameter_meanings"][1].as_str().unwrap().contains("Depends"), "{v}");
    }
    // Deadlock detection: opposite lock orders (0x1001, the lock closing the cycle)
    // and a release out of order (0x1003, the lock expected, the lock released).
    for (input, subcode) in [("D1", 0x1001), ("D3", 0x1003)] {
        let toml = format!("[[step]]\nioctl = {{ code = 0x222000, input = \"{input}\", output_len = 0 }}\n");
        let (v, status) =
            json_scenario("verifier_rules.c", &format!("rule-{input}"), &toml, &["--verifier", "deadlock"]);
        assert_eq!((status, v["bugcheck"]["code"].as_u64()), (3, Some(0xC4)), "rule {input}: {v}");
        let p: Vec<u64> = v["bugcheck"]["parameters"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
        assert_eq!(p[0], subcode, "{v}");
        assert!(p[1] != 0 && (subcode == 0x1001 || p[2] != 0 && p[2] != p[1]), "lock addresses: {v}");
        let (v, _) = json_scenario("verifier_rules.c", &format!("rule-{input}-off"), &toml, &[]);
        assert_ne!(v["bugcheck"]["parameters"][0].as_u64(), Some(subcode), "only under deadlock detection: {v}");
    }
    // Without Verifier: paged pool at DISPATCH_LEVEL is BAD_POOL_CALLER 8, a KEVENT
    // in paged pool is no error.
    let toml = "[[step]]\nioctl = { code = 0x222000, input = \"01\", output_len = 0 }\n";
    let (v, _) = json_scenario("verifier_rules.c", "rule-01-free", toml, &[]);
    assert_eq!((v["bugcheck"]["code"].as_u64(), v["bugcheck"]["parameters"][0].as_u64()), (Some(0xC2), Some(8)));
    let toml = "[[step]]\nioctl = { code = 0x222000, input = \"E1\", output_len = 0 }\n";
    let (v, status) = json_scenario("verifier_rules.c", "rule-e1-free", toml, &[]);
    assert_eq!(v["bugcheck"], Value::Null, "{v}");
    assert_eq!(status, 1, "the paged KEVENT leaks: {v}");
    // Fast mutexes and resources used as the WDK says pass under Verifier; without
    // it, a resource or an unsafe fast mutex taken with APCs enabled is no stop.
    for (input, args) in [("C0", &["--verifier", "irql"][..]), ("37", &[]), ("39", &[])] {
        let toml = format!("[[step]]\nioctl = {{ code = 0x222000, input = \"{input}\", output_len = 0 }}\n");
        let (v, status) = json_scenario("verifier_rules.c", &format!("rule-{input}-clean"), &toml, args);
        assert_eq!((status, &v["bugcheck"]), (0, &Value::Null), "rule {input}: {v}");
        assert!(v["debug_output"].as_str().unwrap().contains("nothing stopped the machine"), "{v}");
    }
}

/// `!verifier` in the report, as WinDbg prints it: the flags level with each flag
/// marked, the global counters, the driver's pool and its outstanding blocks.
#[test]
fn the_report_shows_verifier_as_windbg_prints_it() {
    let t = text(&run("leak.c", &["--verifier", "standard"]));
    for line in [
        "Verify Flags Level 0x000209bb",
        "    [X] (0x00000001) Special pool",
        "    [ ] (0x00000004) Randomized low resources simulation",
        "  Pool Allocations Attempted               0x2",
        "  Pool Allocations Succeeded SpecialPool   0x2",
        "  Peak nonpaged pool allocations           0x1 for 00000030 bytes",
        "      Current Pool Allocations: ( 0x00000001 / 0x00000001 )",
    ] {
        assert!(t.contains(line), "{line:?} in {t}");
    }
    assert!(t.contains("  0x00000030  Leak  leak!DriverEntry+0x"), "{t}");
    let t = text(&run("clean.c", &["--verifier", "irql"]));
    // !verifier 8: the raise to 2 and the lower to 0, each at the driver's call.
    assert!(t.contains("Track irql trace log (!verifier 8): displaying the most recent 0x2 entries"), "{t}");
    assert!(t.contains("  Old irql 0  New irql 2  Processor 0  Time stamp 0 ms  clean!DriverEntry+0x"), "{t}");
    assert!(t.contains("  Old irql 2  New irql 0  Processor 0  Time stamp 0 ms  clean!DriverEntry+0x"), "{t}");
    let raises = t.lines().find(|l| l.starts_with("  RaiseIrqls")).expect("the RaiseIrqls line");
    assert_ne!(raises.split_whitespace().last(), Some("0x0"), "clean.c takes a spin lock: {t}");
    assert!(!t.lines().any(|l| l.starts_with("  AcquireSpinLocks") && l.ends_with(" 0x0")), "{t}");
}

/// Issue 13: a 32-bit scatter/gather bus master on an x64 machine with 8 GB. Its
/// adapter reads Version 1 with a version-2 table; a version-3 description is NULL
/// (a pre-Windows 8 HAL); the common buffer is page-aligned below 4 GB at the
/// address MmGetPhysicalAddress gives; a buffer above 4 GB is handed to the device
/// through logical addresses below 4 GB (bounced), in a list built at DISPATCH_LEVEL;
/// more map registers than the adapter has are refused; nothing leaks.
#[test]
fn a_32_bit_sg_master_gets_logical_addresses_below_4_gb_for_a_buffer_above() {
    let out = run("dma_sg32.c", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for line in [
        "dma: version 3 adapter is NULL 1",
        "dma: adapter Version 1, Size 0x90, DmaOperations->Size 0x80, map registers 17",
        "dma: alignment 1",
        "dma: common buffer 1, logical page-aligned 1, below 4 GB 1",
        "dma: common buffer is what MmGetPhysicalAddress says 1",
        "dma: buffer above 4 GB 1",
        "dma: GetScatterGatherList 0x00000000, list routine ran 1 time(s) at IRQL 2",
        "dma: 1 elements, 11776 bytes (asked 11776), all below 4 GB 1",
        "dma: AllocateAdapterChannel(18 registers) 0xc000009a",
        "dma: AllocateAdapterChannel(2 registers) 0x00000000, AdapterControl at IRQL 2",
        "Leaks          none",
    ] {
        assert!(t.contains(line), "{line}: {t}");
    }
}

/// Seed 001 in driver form (issue 13): a 1 GB common buffer for a 32-bit device on a
/// machine with 1 GB of RAM is NULL, and the report names the reason — not enough
/// physically contiguous memory below 4 GB, with the largest free run; 64 KB
/// succeeds. On the x64 default edition and on XP x86 alike.
#[test]
fn a_1_gb_common_buffer_is_refused_and_the_report_says_why() {
    for machine in [&["--ram", "1G"][..], &["--machine", "xp-professional", "--ram", "1G", "--processors", "1"][..]] {
        let out = run("dma_1g.c", machine);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(0), "{t}");
        assert!(t.contains("dma_1g: 1 GB common buffer is NULL 1"), "{t}");
        assert!(t.contains("dma_1g: 64 KB common buffer is NULL 0"), "{t}");
        assert!(t.contains("DMA refusals"), "{t}");
        let line =
            t.lines().find(|l| l.trim_start().starts_with("AllocateCommonBuffer")).unwrap_or_else(|| panic!("{t}"));
        assert!(
            line.contains("not enough physically contiguous memory within the device's reach (below 4 GB): 262144 pages needed, the largest free run there is"),
            "{line}"
        );
        assert!(t.contains("Leaks          none"), "{t}");
        let mut args = machine.to_vec();
        args.push("--json");
        let out = run("dma_1g.c", &args);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        let r = &v["dma_refusals"][0];
        assert_eq!(r["routine"], "AllocateCommonBuffer", "{v}");
        let run = &r["refusal"]["NotEnoughContiguousMemory"];
        assert_eq!((run["pages"].as_u64(), run["limit"].as_u64()), (Some(262_144), Some(0xFFFF_FFFF)), "{v}");
        assert!(run["largest_run"].as_u64().unwrap() < 262_144, "{v}");
    }
}

/// Issue 13, the device side: the NIC transfers at the logical address its driver
/// programmed (a bounced buffer: the address is below 4 GB, the buffer above). Data
/// the device writes reaches the driver's buffer at PutScatterGatherList and not
/// before (a forgotten flush sees none of it); data the driver wrote is what the
/// device reads.
#[test]
fn the_device_side_of_dma_writes_through_bounce_buffers_at_the_flush() {
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(driver("dma_device.c"))
        .arg("--scenario")
        .arg(driver("dma_device.toml"))
        .arg("--json")
        .output()
        .expect("ntmem runs");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(v["exit"], 0, "{v}");
    let steps = v["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["ok"] == true), "{v}");
    let note = steps[1]["note"].as_str().unwrap();
    assert!(note.starts_with("nic0 wrote 0x1800 bytes to logical address 0x"), "{note}");
    let logical = u64::from_str_radix(note.rsplit("0x").next().unwrap(), 16).unwrap();
    assert!(logical < 1 << 32, "{note}");
    assert_eq!(steps[2]["output"], "00180000", "after Put: all of the device's bytes: {v}");
    assert_eq!(steps[5]["output"], "00000000", "before Put: none yet: {v}");
    assert_eq!(steps[7]["output"], "3c".repeat(64), "{v}");
    assert!(steps[7]["note"].as_str().unwrap().starts_with("nic0 read 0x1800 bytes"), "{v}");
    let debug = v["debug_output"].as_str().unwrap();
    assert!(debug.contains("dma_device: CSRs mapped 1, buffer above 4 GB 1"), "{debug}");
    assert!(debug.contains("before PutScatterGatherList, the buffer holds 0 of the device's bytes"), "{debug}");
    assert_eq!(v["leaks"], serde_json::json!([]), "{v}");
}

/// Issue 13: a scenario declares the NIC with 32 address lines, and the driver
/// describes it to the HAL with Dma64BitAddresses. The HAL does not bounce the
/// buffer above 4 GB; the NIC drops the high address bits and writes below 4 GB, so
/// the driver's buffer never gets the data — the bug as a real machine shows it.
#[test]
fn a_device_declared_32_bit_that_its_driver_calls_64_bit_writes_below_4_gb() {
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(driver("dma_device.c"))
        .arg("--scenario")
        .arg(driver("dma_device_wrong_width.toml"))
        .arg("--json")
        .output()
        .expect("ntmem runs");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let steps = v["steps"].as_array().unwrap();
    let note = steps[1]["note"].as_str().unwrap();
    assert!(note.contains("the device drives fewer address lines than that needs"), "{note}");
    let at = |word: &str| {
        let hex = note.split(word).nth(1).unwrap().trim_start_matches(" 0x").split([',', ':']).next().unwrap();
        u64::from_str_radix(hex, 16).unwrap()
    };
    let (logical, reached) = (at("logical address"), at("reaching"));
    assert!(logical >= 1 << 32, "the buffer was not bounced: {note}");
    assert_eq!(reached, logical & 0xFFFF_FFFF, "{note}");
    assert_eq!(steps[2]["output"], "00000000", "the data never reached the buffer: {v}");
}

/// Issue 13, Driver Verifier's DMA checking: an adapter released with a common
/// buffer outstanding goes unnoticed without the verifier and is 0xE6 subcode 0x07
/// (adapter, one buffer) with `--verifier dma`.
#[test]
fn releasing_an_adapter_with_a_common_buffer_is_0xe6_0x07_under_dma_checking() {
    let out = run("dma_leak.c", &[]);
    let t = text(&out);
    assert!(t.contains("dma_leak: adapter released"), "{t}");
    assert_ne!(out.status.code(), Some(3), "{t}");
    let out = run("dma_leak.c", &["--verifier", "dma", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(out.status.code(), Some(3), "{v}");
    let b = &v["bugcheck"];
    assert_eq!(b["code"], 0xE6, "{v}");
    assert_eq!(b["parameters"][0], 7, "{v}");
    assert_eq!(b["parameters"][2], 1, "{v}");
    assert_eq!(b["name"], "DRIVER_VERIFIER_DMA_VIOLATION", "{v}");
    assert_eq!(b["parameter_meanings"][0], "0x07: adapter released with common buffers outstanding", "{v}");
    assert!(!v["debug_output"].as_str().unwrap().contains("adapter released"), "{v}");
    // The stop leaves the adapter live: the report shows it as !dma would.
    let a = &v["dma_adapters"][0];
    assert_eq!(a["adapter"], b["parameters"][1], "{v}");
    assert_eq!((a["config"]["map_registers"].as_u64(), a["map_registers_in_use"].as_u64()), (Some(17), Some(1)), "{v}");
    assert_eq!(a["common_buffers"][0]["length"], 0x1000, "{v}");
    let out = run("dma_leak.c", &["--verifier", "dma"]);
    let t = text(&out);
    assert!(t.contains("DMA adapters still live (!dma)"), "{t}");
    assert!(
        t.contains(
            "bus master, S/G, reaches below 0x100000000, bounces through low memory, map registers 1 of 17 in use"
        ),
        "{t}"
    );
}

/// GFlags' special pool by tag or size, without Driver Verifier: `overrun.c` writes
/// one byte past a 64-byte block tagged "Ovrn" (a 0x50-byte block on x64). Selected
/// by its tag, a pattern or its size class it faults at once (0xD6); another tag or
/// size leaves it in normal pool; Verify Start (PoolTagOverruns 0) puts the block at
/// the page's start, so the overrun is found in the pattern at free (0xC1/0x24).
#[test]
fn special_pool_by_tag_or_size_selects_only_those_allocations() {
    let code = |args: &[&str]| {
        let out = run("overrun.c", args);
        let v: Value = {
            let with_json = [args, &["--json"]].concat();
            let out = run("overrun.c", &with_json);
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
        };
        (out.status.code(), v["bugcheck"]["code"].as_u64(), v["bugcheck"]["parameters"][3].as_u64())
    };
    for tag in ["Ovrn", "Ov*", "O?rn", "*", "0x50"] {
        assert_eq!(code(&["--special-pool-tag", tag]).1, Some(0xD6), "{tag}");
    }
    for tag in ["Xxxx", "0x40"] {
        assert_eq!(code(&["--special-pool-tag", tag]), (Some(0), None, None), "{tag}");
    }
    assert_eq!(code(&["--special-pool-tag", "Ovrn", "--pool-tag-overruns", "0"]), (Some(3), Some(0xC1), Some(0x24)));
    let bad = run("overrun.c", &["--special-pool-tag", "Toolong"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("one to four characters"), "{}", text(&bad));
}

fn run_irp_stack(rule: u32) -> (Value, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(driver("irp_stack.c"))
        .arg("--scenario")
        .arg(driver("irp_stack.toml"))
        .arg("--json")
        .env("CFLAGS", format!("-DRULE={rule}"))
        .output()
        .expect("ntmem runs");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (v, out.status.code().expect("exit status"))
}

/// A device stack inside one driver: requests reach the upper device (the top of the
/// stack), which passes them to the lower one by each documented way — skipping its
/// location, copying it with a completion routine (run with the upper device, after
/// the lower driver completed), forwarding synchronously and reclaiming the IRP with
/// STATUS_MORE_PROCESSING_REQUIRED, sending an IRP of its own (IoAllocateIrp,
/// reclaimed, IoReuseIrp, IoFreeIrp), sending one built by
/// IoBuildDeviceIoControlRequest (output copied back, status block written, event
/// signalled at final completion), and a request the lower device pends and completes
/// from a DPC (PendingReturned reaches the completion routine); a read the lower
/// driver has no routine for is completed by the I/O manager's default with
/// STATUS_INVALID_DEVICE_REQUEST, its status block written and event signalled; a
/// request the lower driver holds is cancelled (IoCancelIrp reaches the lower
/// device's cancel routine; the upper routine runs, invoked on cancel). No IRP or
/// buffer is left behind.
#[test]
fn irps_pass_down_a_device_stack_and_complete_back_up_through_completion_routines() {
    let (v, code) = run_irp_stack(0);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["debug_output"],
        "attached over lower: stack sizes 1 and 2\n\
         upper: code 0x222000 at location 2 of 2\n\
         lower: major 0xe code 0x222000 at location 2 of 2, device lower\n\
         upper: code 0x222004 at location 2 of 2\n\
         lower: major 0xe code 0x222004 at location 1 of 2, device lower\n\
         completion: device upper, PendingReturned 0, location 2, status 0x0\n\
         upper: IoCallDriver returned 0x0\n\
         upper: code 0x222008 at location 2 of 2\n\
         lower: major 0xe code 0x222008 at location 1 of 2, device lower\n\
         signal: device upper, location 2\n\
         upper: reclaimed at location 2, status 0x0\n\
         upper: code 0x22200c at location 2 of 2\n\
         own: size 280, stack count 1, location 2, flags 0x4\n\
         lower: major 0xf code 0x222400 at location 1 of 1, device lower\n\
         signal: device NULL, location 2\n\
         own: returned 0x0, status 0x0, information 4, location 2\n\
         own: reused: status 0xc00000bb, location 2, flags 0x4\n\
         upper: code 0x222010 at location 2 of 2\n\
         build: stack count 1, location 2, next major 0xe, flags 0x70\n\
         lower: major 0xe code 0x222004 at location 1 of 1, device lower\n\
         build: returned 0x0, iosb 0x0/4, event 1, value 0x101\n\
         upper: code 0x222014 at location 2 of 2\n\
         lower: major 0xe code 0x222014 at location 1 of 2, device lower\n\
         upper: IoCallDriver returned 0x103\n\
         lower: DPC completes the pended IRP\n\
         completion: device upper, PendingReturned 1, location 2, status 0x0\n\
         upper: code 0x222018 at location 2 of 2\n\
         none: returned 0xc0000010, iosb 0xc0000010/0, event 1\n\
         upper: code 0x22201c at location 2 of 2\n\
         lower: major 0xe code 0x22201c at location 1 of 2, device lower\n\
         upper: IoCallDriver returned 0x103\n\
         lower: cancel routine, device lower, Cancel 1\n\
         completion: device upper, PendingReturned 1, location 2, status 0xc0000120\n\
         completion: cancelled\n\
         unload\n",
        "{v}"
    );
    let outputs: Vec<_> = v["steps"].as_array().unwrap().iter().map(|s| s["output"].as_str().unwrap_or("")).collect();
    assert_eq!(
        outputs,
        ["02020000", "03010000", "02010100", "01010000", "01010000", "03010000", "00000000", "", ""],
        "{v}"
    );
    assert_eq!(v["steps"][7]["status"], 0xC000_0120_u32, "cancelled: {v}");
    let irps = v["pool"].as_array().unwrap().iter().find(|r| r["tag"] == "Irp ").expect("IRPs").clone();
    assert_eq!((irps["allocs"].as_u64(), irps["diff"].as_u64()), (Some(11), Some(0)), "{irps}");
    assert!(v["leaks"].as_array().unwrap().is_empty(), "{v}");
}

/// The address of the IRP the driver printed as `completing <address> twice`.
fn printed_irp(v: &Value) -> u64 {
    let output = v["debug_output"].as_str().unwrap();
    let at = output.find("completing ").expect("the IRP is printed") + "completing ".len();
    u64::from_str_radix(&output[at..at + 16], 16).unwrap()
}

/// Rules Windows enforces on IRPs in flight, as its bugchecks: a request completed
/// twice is MULTIPLE_IRP_COMPLETE_REQUESTS (Microsoft, "Bug Check 0x44": 1 the IRP,
/// 2-4 reserved); IoCallDriver with no stack location left is
/// NO_MORE_IRP_STACK_LOCATIONS ("Bug Check 0x35": 1 the IRP); an IRP of the driver's
/// own that no completion routine claims reaches the I/O manager with no thread to
/// complete it in (0x0A, ntmem's model of Windows' touch of the NULL thread).
#[test]
fn completing_twice_is_0x44_calling_down_with_no_location_left_is_0x35() {
    let (v, code) = run_irp_stack(1);
    assert_eq!(code, 3, "{v}");
    let b = &v["bugcheck"];
    assert_eq!(b["code"], 0x44, "{b}");
    let irp = printed_irp(&v);
    assert_eq!(b["parameters"], serde_json::json!([irp, 0, 0, 0]), "{b}");
    assert_eq!(b["driver"], "irp_stack.sys", "{b}");

    let (v, code) = run_irp_stack(2);
    assert_eq!(code, 3, "{v}");
    let b = &v["bugcheck"];
    assert_eq!(b["code"], 0x35, "{b}");
    assert_eq!((b["parameters"][1].as_u64(), b["parameters"][2].as_u64()), (Some(0), Some(0)), "{b}");
    assert_ne!(b["parameters"][0].as_u64(), Some(0), "the IRP: {b}");
    assert!(v["debug_output"].as_str().unwrap().contains("at location 2 of 2, device lower\n"), "{v}");

    let (v, code) = run_irp_stack(3);
    assert_eq!(code, 3, "{v}");
    assert_eq!(
        (v["bugcheck"]["code"].as_u64(), v["bugcheck"]["parameters"].clone()),
        (Some(0x0A), serde_json::json!([0, 2, 0, 0]))
    );
    assert_eq!(v["steps"].as_array().unwrap().len(), 4, "the fourth step (OWN) stopped: {v}");
}

/// Completion-routine order through a three-device stack: the routines run bottom-up
/// (the middle driver's, then the top's), each with its own driver's device and
/// location; when the bottom pends the IRP and completes it from a DPC, both see
/// PendingReturned. Also: a read built by IoBuildSynchronousFsdRequest (its buffered
/// data, status block and event), a request split into two associated IRPs and
/// completed when both are, an IRP initialized in the driver's own pool, an
/// asynchronous flush (IoBuildAsynchronousFsdRequest) freed by its completion routine;
/// the middle driver sets its routine with IoSetCompletionRoutineEx.
#[test]
fn completion_routines_run_bottom_up_through_a_three_device_stack() {
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(driver("irp_three.c"))
        .arg("--scenario")
        .arg(driver("irp_three.toml"))
        .arg("--json")
        .output()
        .expect("ntmem runs");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(v["exit"], 0, "{v}");
    let output = v["debug_output"].as_str().unwrap();
    assert!(output.starts_with("stack sizes 1 2 3; top attached over middle\n"), "{output}");
    assert!(
        output.contains(
            "bottom: completes at location 1 of 3\n\
             completion of middle: device middle, location 2, PendingReturned 0\n\
             completion of top: device top, location 3, PendingReturned 0\n"
        ),
        "{output}"
    );
    assert!(
        output.contains(
            "bottom: DPC completes\n\
             completion of middle: device middle, location 2, PendingReturned 1\n\
             completion of top: device top, location 3, PendingReturned 1\n"
        ),
        "{output}"
    );
    assert!(
        output.contains("bottom: read 4 bytes at 512, location 1 of 1\ntop: read returned 0x0, iosb 0x0/4, event 1\n")
    );
    assert_eq!(output.matches("bottom: piece of master ok, location 1 of 1\n").count(), 2, "{output}");
    assert!(output.contains("top: associated IRP 1: flags 0x8\n"), "IRP_ASSOCIATED_IRP: {output}");
    assert!(output.contains("top: initialized 280 bytes, location 2 of 1\n"), "{output}");
    let steps = v["steps"].as_array().unwrap();
    let outputs: Vec<_> = steps.iter().map(|s| s["output"].as_str().unwrap_or("")).collect();
    assert_eq!(outputs, ["23010000", "23010000", "42544d21", "", "01000000", ""], "0x123: bottom, middle, top: {v}");
    assert!(
        output.contains("bottom: flush, location 1 of 1\ntop: async flush done: 0x0, status block 0x12345\n"),
        "reclaimed before the I/O manager writes the status block: {output}"
    );
    assert_eq!((steps[3]["status"].as_u64(), steps[3]["ok"].as_bool()), (Some(0), Some(true)), "{v}");
    assert!(v["leaks"].as_array().unwrap().is_empty(), "{v}");
}

/// A function driver that passes PnP IRPs down to the PDO (IoCallDriver): the PDO,
/// standing in for the bus driver, starts and removes the device with
/// STATUS_SUCCESS; the start comes back to the driver's completion routine and is
/// reclaimed with STATUS_MORE_PROCESSING_REQUIRED. Under special pool, so a touch of
/// an IRP after completion would stop the run.
#[test]
fn a_function_driver_forwards_start_and_remove_to_the_pdo() {
    let out = run("pnp_forward.c", &["--verifier", "special_pool", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(v["exit"], 0, "{v}");
    assert_eq!(
        v["debug_output"],
        "forward: attached 0x0 to the PDO 1; the stack's top is the FDO 1\n\
         forward: the PDO started the device: 0x0; resources 1\n\
         forward: the PDO removed the device: 0x0\n\
         forward: unloaded, devices left 0\n"
    );
    let steps: Vec<_> = v["pnp"].as_array().unwrap().iter().map(|e| (e["step"].clone(), e["status"].clone())).collect();
    assert_eq!(steps.len(), 4, "AddDevice, start, query-remove, remove: {v}");
    assert!(steps.iter().all(|(_, s)| s == 0), "{v}");
}

fn run_start_io(cflags: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(driver("start_io.c"))
        .arg("--scenario")
        .arg(driver("start_io.toml"))
        .arg("--json")
        .env("CFLAGS", cflags)
        .output()
        .expect("ntmem runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// StartIo and the device queue: the first request goes to StartIo at once (at
/// DISPATCH_LEVEL, as the device's CurrentIrp); the others queue (by their keys) while
/// the device is busy; one is cancelled while queued (its cancel routine takes it out
/// with KeRemoveEntryDeviceQueue); each timer DPC completes the current request and
/// starts the next — in key order with IoStartNextPacket, from key 4 on with
/// IoStartNextPacketByKey.
#[test]
fn start_io_serializes_requests_through_the_device_queue() {
    let v = run_start_io("");
    assert_eq!(v["exit"], 0, "{v}");
    let output = v["debug_output"].as_str().unwrap();
    assert!(
        output.starts_with("device queue: type 20 size 40 busy 0\nstartio: request 1 at IRQL 2, current 1, key 0\n")
    );
    assert_eq!(output.matches("dispatch: queue busy 1\n").count(), 4, "{output}");
    assert!(
        output.contains("cancel: taken out of the device queue 1\nstartio: request 2 at IRQL 2, current 1, key 3\n")
    );
    assert!(output.contains("startio: request 3 at IRQL 2, current 1, key 5\n"), "{output}");
    let steps = v["steps"].as_array().unwrap();
    let outputs: Vec<_> = steps.iter().take(4).map(|s| s["output"].as_str().unwrap_or("")).collect();
    assert_eq!(outputs, ["01000000", "", "02000000", "03000000"], "{v}");
    assert_eq!(steps[1]["status"], 0xC000_0120_u32, "cancelled while queued: {v}");
    assert!(v["leaks"].as_array().unwrap().is_empty(), "{v}");

    let v = run_start_io("-DBYKEY");
    assert_eq!(v["exit"], 0, "{v}");
    let outputs: Vec<_> = v["steps"].as_array().unwrap().iter().take(4).map(|s| s["output"].clone()).collect();
    assert_eq!(outputs, ["01000000", "", "03000000", "02000000"], "key 5 (>= 4) first, then 3: {v}");
}

/// I/O verification's memory rules for IRPs a driver allocates: one freed with
/// ExFreePool is 0xC4/0x105 (the IRP), IoFreeIrp of pool that is no IRP is 0xC9/0x01
/// (the object); both with the parameters Microsoft's bug check pages give.
#[test]
fn irps_freed_the_wrong_way_are_caught_by_io_verification() {
    let run_rule = |rule: u32, extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
            .arg("run")
            .arg(driver("irp_misuse.c"))
            .args(extra)
            .arg("--json")
            .env("CFLAGS", format!("-DRULE={rule}"))
            .output()
            .expect("ntmem runs");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        let p: Vec<u64> = v["bugcheck"]["parameters"]
            .as_array()
            .map_or_else(Vec::new, |a| a.iter().map(|x| x.as_u64().unwrap()).collect());
        (v["bugcheck"]["code"].as_u64(), p)
    };
    let (code, p) = run_rule(1, &["--verifier", "io"]);
    assert_eq!((code, p[0], p[2], p[3]), (Some(0xC4), 0x105, 0, 0), "{p:x?}");
    assert_ne!(p[1], 0, "the IRP");
    let (code, p) = run_rule(2, &["--verifier", "io"]);
    assert_eq!((code, p[0], p[2], p[3]), (Some(0xC9), 0x01, 0, 0), "{p:x?}");
    assert_ne!(p[1], 0, "the object");
    // Without I/O verification the free kernel does not look: no stop, and 0x44 for
    // IoFreeIrp of a non-IRP.
    assert_eq!(run_rule(1, &[]).0, None);
    assert_eq!(run_rule(2, &[]).0, Some(0x44));
}
