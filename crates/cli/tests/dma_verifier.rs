//! Issue 13, Driver Verifier's DMA checking (`--verifier dma`) end to end: each
//! case of `dma_verifier.c` (`tests/drivers/`) makes one DMA mistake and the
//! machine stops with bug check 0xE6 DRIVER_VERIFIER_DMA_VIOLATION and the subcode
//! and parameters of Microsoft's "Bug Check 0xE6" page
//! (research/dma-verifier-views.md §2.2). The driver prints what the parameters
//! name (its adapter, MDL, buffer, register base, common buffer) before the
//! mistake; the tests read them from the report's debug output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn driver(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(name)
}

/// A scenario file `name` holding `steps`, in a directory of this test run.
fn write_scenario(name: &str, steps: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ntmem-dma-verifier-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let scenario = dir.join(format!("{name}.toml"));
    std::fs::write(&scenario, steps).expect("the scenario is written");
    scenario
}

/// `IOCTL_CASE` with input byte `case`, as a scenario step.
fn case_step(case: u8) -> String {
    format!("[[step]]\nioctl = {{ code = 0x222000, input = \"{case:02x}\", output_len = 0 }}\n")
}

/// Runs `dma_verifier.c` under `steps` (a scenario's text) with `extra` options and
/// `--json`: the report and the exit status.
fn run(name: &str, steps: &str, extra: &[&str]) -> (Value, i32) {
    let scenario = write_scenario(name, steps);
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(driver("dma_verifier.c"))
        .arg("--scenario")
        .arg(&scenario)
        .arg("--json")
        .args(extra)
        .output()
        .expect("ntmem runs");
    let _ = std::fs::remove_file(&scenario);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (v, out.status.code().expect("exit status"))
}

/// What the driver printed before its mistake: `adapter`, `mdl`, `va`, `base`,
/// `logical`, `common`, `n`.
fn printed(v: &Value) -> HashMap<String, u64> {
    let out = v["debug_output"].as_str().unwrap_or_default();
    let line = out.lines().find(|l| l.starts_with("dma_verifier: adapter=")).unwrap_or_else(|| panic!("{v}"));
    line["dma_verifier: ".len()..]
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, x)| (k.to_string(), u64::from_str_radix(x, 16).unwrap_or_else(|e| panic!("{k}: {e}"))))
        .collect()
}

/// The 0xE6 parameters `steps` stop the verified machine with, and what the
/// driver printed.
fn stop_with(name: &str, steps: &str) -> ([u64; 4], HashMap<String, u64>) {
    let (v, code) = run(name, steps, &["--verifier", "dma"]);
    assert_eq!(code, 3, "the machine stops: {v}");
    let b = &v["bugcheck"];
    assert_eq!((b["code"].as_u64(), b["name"].as_str()), (Some(0xE6), Some("DRIVER_VERIFIER_DMA_VIOLATION")), "{v}");
    let p: Vec<u64> = b["parameters"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
    let printed =
        if v["debug_output"].as_str().unwrap_or_default().contains("adapter=") { printed(&v) } else { HashMap::new() };
    (p.try_into().unwrap(), printed)
}

/// Case `case` alone.
fn stop(case: u8) -> ([u64; 4], HashMap<String, u64>) {
    stop_with(&format!("case{case}"), &case_step(case))
}

#[test]
fn a_common_buffer_freed_twice_is_0x03() {
    assert_eq!(stop(1).0, [0x03, 1, 0, 0]);
}

#[test]
fn the_adapter_channel_freed_twice_is_0x04() {
    assert_eq!(stop(2).0, [0x04, 1, 0, 0]);
}

#[test]
fn map_registers_freed_twice_are_0x05_with_the_extra_registers() {
    assert_eq!(stop(3).0, [0x05, 2, 0, 0]);
}

#[test]
fn a_scatter_gather_list_put_back_twice_is_0x06_with_lists_allocated_and_freed() {
    assert_eq!(stop(4).0, [0x06, 1, 2, 0]);
}

#[test]
fn an_adapter_released_with_a_common_buffer_is_0x07() {
    let (p, d) = stop(30);
    assert_eq!(p, [0x07, d["adapter"], 1, 0]);
}

#[test]
fn an_adapter_released_holding_its_channel_is_0x08() {
    let (p, d) = stop(5);
    assert_eq!(p, [0x08, d["adapter"], 1, 0]);
}

#[test]
fn an_adapter_released_holding_map_registers_is_0x09() {
    let (p, d) = stop(6);
    assert_eq!(p, [0x09, d["adapter"], 3, 0]);
}

#[test]
fn an_adapter_released_holding_a_list_is_0x0a() {
    let (p, d) = stop(7);
    assert_eq!(p, [0x0A, d["adapter"], 1, 0]);
}

#[test]
fn a_second_channel_at_once_is_0x0b() {
    assert_eq!(stop(8).0, [0x0B, 1, 0, 0]);
}

#[test]
fn more_registers_than_the_adapter_has_is_0x0c_with_required_and_maximum() {
    let (p, d) = stop(9);
    assert_eq!(d["n"], 17, "a 64 KB device: 16 pages + 1");
    assert_eq!(p, [0x0C, 18, 17, 0]);
}

#[test]
fn mapping_more_than_the_file_holds_without_a_flush_is_0x0d() {
    assert_eq!(stop(10).0, [0x0D, 0x3000, 0x2000, 0]);
}

#[test]
fn mapping_a_buffer_that_is_not_locked_is_0x0e_with_the_mdl() {
    let (p, d) = stop(11);
    assert_eq!(p, [0x0E, d["mdl"], 0, 0]);
}

#[test]
fn map_registers_freed_before_the_flush_are_0x10() {
    assert_eq!(stop(12).0, [0x10, 1, 0, 0]);
}

#[test]
fn allocate_adapter_channel_below_dispatch_level_is_0x13_1() {
    assert_eq!(stop(13).0, [0x13, 1, 2, 0]);
}

#[test]
fn map_transfer_above_dispatch_level_is_0x13_2() {
    assert_eq!(stop(14).0, [0x13, 2, 2, 15]);
}

#[test]
fn one_mapping_needing_more_registers_than_the_file_has_is_0x15() {
    assert_eq!(stop(15).0, [0x15, 2, 1, 0]);
}

#[test]
fn a_released_adapter_used_again_is_0x18() {
    let (p, d) = stop(16);
    assert_eq!(p, [0x18, d["adapter"], 0, 0]);
}

#[test]
fn a_null_adapter_is_0x19() {
    assert_eq!(stop(17).0, [0x19, 0, 0, 0]);
}

#[test]
fn a_flush_outside_the_mdl_is_0x1b_with_the_address_and_the_mdl() {
    let (p, d) = stop(18);
    assert_eq!(p, [0x1B, d["va"] + 0x3000, d["mdl"], 0]);
}

#[test]
fn a_page_mapped_twice_without_a_flush_is_0x1d() {
    let (p, d) = stop(19);
    assert_eq!(p, [0x1D, d["va"], d["va"] + 0x1000, d["va"]]);
}

#[test]
fn a_mapping_before_the_mdl_is_0x1f_1_and_past_its_end_0x1f_2() {
    let (p, d) = stop(20);
    assert_eq!(p, [0x1F, 1, d["va"] - 0x10, d["mdl"]]);
    let (p, d) = stop(21);
    assert_eq!(p, [0x1F, 2, d["va"] + 0x2000, d["mdl"]]);
}

#[test]
fn a_flush_with_nothing_mapped_is_0x20_with_the_base_address_and_mdl() {
    let (p, d) = stop(22);
    assert_eq!(p, [0x20, d["base"], d["va"], d["mdl"]]);
}

#[test]
fn a_zero_length_map_is_0x21() {
    assert_eq!(stop(23).0, [0x21, 0, 0, 0]);
}

/// Common buffers are padded under DMA checking: a driver's write just past the
/// buffer changes the "DmaVrfy0" tag after it (0x0F/2: length, start), just before
/// it the tag before (0x0F/1), further out the 0x0F padding after or before it
/// (0x0F/5, 0x0F/4: start, the corrupted byte's logical address) — found at
/// FreeCommonBuffer.
#[test]
fn a_driver_writing_outside_its_common_buffer_is_0x0f() {
    let (p, d) = stop(24);
    assert_eq!(p, [0x0F, 2, 100, d["common"]]);
    let (p, d) = stop(25);
    assert_eq!(p, [0x0F, 1, 100, d["common"]]);
    let (p, d) = stop(26);
    assert_eq!(p, [0x0F, 5, d["common"], d["logical"] + 0x80]);
    let (p, d) = stop(27);
    assert_eq!(p, [0x0F, 4, d["common"], d["logical"] - 0x100]);
}

/// The NIC programmed with 16 bytes more than the driver's 100-byte common buffer:
/// it writes past the buffer's end. Without the verifier nothing notices; under it
/// the tag after the buffer changed and FreeCommonBuffer stops with 0x0F/2.
#[test]
fn a_device_overrunning_a_common_buffer_is_0x0f_2_under_dma_checking() {
    let steps = format!(
        "{}[[step]]\ndma = {{ device = \"nic0\", direction = \"from_device\", data = \"a5\" }}\n{}",
        case_step(28),
        case_step(29)
    );
    let (v, code) = run("overrun", &steps, &[]);
    assert_eq!(code, 0, "{v}");
    assert!(v["bugcheck"].is_null(), "{v}");
    let (p, d) = stop_with("overrun-verified", &steps);
    assert_eq!(p, [0x0F, 2, 100, d["common"]]);
}

/// A correct common buffer under DMA checking: allocated, used to the last byte,
/// freed — no stop; the buffer the driver sees is still page-aligned and in reach.
#[test]
fn a_padded_common_buffer_used_within_bounds_is_clean() {
    let steps = format!("{}{}", case_step(28), case_step(29));
    let (v, code) = run("clean", &steps, &["--verifier", "dma"]);
    assert_eq!(code, 0, "{v}");
    let d = printed(&v);
    assert_eq!(d["common"] & 0xFFF, 0, "{v}");
    assert!(d["logical"] < 1 << 32, "a 32-bit device's buffer: {v}");
}

/// The `!dma` view of the adapter a stop leaves live (research §5.9): its device
/// description, each map register file with the bytes it has mapped since the last
/// flush, the lists not put back, and the verifier's allocated/freed counters — in
/// the JSON and the text report.
#[test]
fn the_dma_view_shows_description_register_files_lists_and_counters() {
    let (v, _) = run("view-files", &case_step(10), &["--verifier", "dma"]);
    let a = &v["dma_adapters"][0];
    assert_eq!(a["adapter"].as_u64(), Some(printed(&v)["adapter"]), "{v}");
    let d = &a["description"];
    assert_eq!((d["version"].as_u64(), d["maximum_length"].as_u64()), (Some(2), Some(0x10000)), "{v}");
    assert_eq!((d["master"].as_bool(), d["dma32_bit_addresses"].as_bool()), (Some(true), Some(true)), "{v}");
    let f = &a["map_register_files"][0];
    assert_eq!(f["base"].as_u64(), Some(printed(&v)["base"]), "{v}");
    assert_eq!((f["registers"].as_u64(), f["mapped_bytes"].as_u64()), (Some(2), Some(0x2000)), "{v}");
    assert_eq!((f["channel"].as_bool(), f["shadowed"].as_bool()), (Some(false), Some(true)), "{v}");
    assert_eq!(a["bytes_mapped_since_flush"], 0x2000, "{v}");
    let n = &a["counts"];
    assert_eq!((n["map_registers"]["allocated"].as_u64(), n["map_registers"]["freed"].as_u64()), (Some(2), Some(0)));
    assert_eq!(
        (n["adapter_channels"]["allocated"].as_u64(), n["adapter_channels"]["freed"].as_u64()),
        (Some(1), Some(1))
    );

    let (v, _) = run("view-list", &case_step(7), &["--verifier", "dma"]);
    let a = &v["dma_adapters"][0];
    assert_eq!(a["scatter_gather_lists"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(a["counts"]["scatter_gather_lists"]["allocated"], 1, "{v}");

    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(driver("dma_verifier.c"))
        .args(["--verifier", "dma", "--scenario"])
        .arg(write_scenario("view-text", &case_step(10)))
        .output()
        .expect("ntmem runs");
    let t = String::from_utf8_lossy(&out.stdout);
    for line in [
        "   device description: version 2, bus master, ScatterGather, Dma32BitAddresses, PCIBus, MaximumLength 0x10000",
        ": 2 register(s), a scatter/gather list's, double-buffered (DMA checking), 0x2000 bytes mapped",
        "   map registers 2 allocated, 0 freed; scatter/gather lists 0 allocated, 0 freed; common buffers 0 allocated, \
         0 freed; adapter channels 1 allocated, 1 freed; bytes mapped since last flush 0x2000",
    ] {
        assert!(t.contains(line), "{line}\n{t}");
    }
}

/// System DMA under DMA checking is double-buffered too: `dma_system.c`'s ISA
/// device on channel 1 (`dma_system_isa.toml`) gets its channel programmed with a
/// shadow inside one 64 KB window below 16 MB — another address than without the
/// verifier — and every byte the device wrote is in the buffer after the flush.
#[test]
fn system_dma_is_double_buffered_under_dma_checking() {
    let logical = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
            .arg("run")
            .arg(driver("dma_system.c"))
            .arg("--scenario")
            .arg(driver("dma_system_isa.toml"))
            .arg("--json")
            .args(extra)
            .output()
            .expect("ntmem runs");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(0), "{v}");
        let hex = |i: usize| v["steps"][i]["output"].as_str().unwrap_or_else(|| panic!("{v}")).to_string();
        assert_eq!(&hex(7)[..8], "00300000", "0x3000 bytes arrived at the flush: {v}");
        let mapped = hex(2);
        (0..8).map(|i| u64::from_str_radix(&mapped[2 * i..2 * i + 2], 16).unwrap() << (8 * i)).sum::<u64>()
    };
    let (plain, shadowed) = (logical(&[]), logical(&["--verifier", "dma"]));
    assert_ne!(plain, shadowed, "the channel is programmed with the shadow");
    assert!(shadowed + 0x3000 <= 1 << 24, "below 16 MB: {shadowed:#x}");
    assert_eq!(shadowed >> 16, (shadowed + 0x3000 - 1) >> 16, "inside one 64 KB window: {shadowed:#x}");
}
