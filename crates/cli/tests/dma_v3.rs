//! Issue 13's system DMA and DMA_OPERATIONS version 3, end to end: `dma_system.c`
//! (a subordinate device, `tests/drivers/`) under the `dma_system_*.toml`
//! scenarios, judged by its IOCTL outputs, the `dma` steps' notes and the JSON
//! report.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn driver(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(name)
}

/// `ntmem run dma_system.c --scenario dma_system_<scenario>.toml --json [extra]`.
fn run(scenario: &str, extra: &[&str]) -> (Value, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(driver("dma_system.c"))
        .arg("--scenario")
        .arg(driver(&format!("dma_system_{scenario}.toml")))
        .arg("--json")
        .args(extra)
        .output()
        .expect("ntmem runs");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (v, out.status.code().expect("exit status"))
}

/// Step `i`'s output, decoded from hex.
fn output(v: &Value, i: usize) -> Vec<u8> {
    let hex = v["steps"][i]["output"].as_str().unwrap_or_else(|| panic!("step {}: no output: {v}", i + 1));
    (0..hex.len()).step_by(2).map(|at| u8::from_str_radix(&hex[at..at + 2], 16).unwrap()).collect()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn note(v: &Value, i: usize) -> &str {
    v["steps"][i]["note"].as_str().unwrap_or_else(|| panic!("step {}: no note: {v}", i + 1))
}

/// An ISA device on channel 1 of an 8 GB machine: its 12 KB buffer lies above 16
/// MB, so MapTransfer maps it through map registers below 16 MB, all inside one 64
/// KB window; the device moves 0x1000 bytes and ReadDmaCounter says 0x2000 are
/// left, then the rest and it says 0; after FlushAdapterBuffers every byte the
/// device wrote is in the buffer.
#[test]
fn an_isa_device_is_limited_to_16_mb_and_64_kb_windows_and_its_channel_counts_down() {
    let (v, code) = run("isa", &[]);
    assert_eq!(code, 0, "{v}");
    assert!(v["steps"].as_array().unwrap().iter().all(|s| s["ok"] == true), "{v}");
    let opened = output(&v, 1);
    assert_eq!((u32_at(&opened, 0), u32_at(&opened, 4)), (16, 0x80), "16 map registers, a version 2 table: {v}");
    let mapped = output(&v, 2);
    let (logical, physical, length) = (u64_at(&mapped, 0), u64_at(&mapped, 8), u64::from(u32_at(&mapped, 16)));
    assert!(physical >= 1 << 24, "the buffer is above 16 MB: {physical:#x}");
    assert_eq!(length, 0x3000, "{v}");
    assert!(logical + length <= 1 << 24, "the device sees it below 16 MB: {logical:#x}");
    assert_eq!(logical >> 16, (logical + length - 1) >> 16, "inside one 64 KB window: {logical:#x}");
    assert_eq!(
        note(&v, 3),
        format!("ISA DMA channel 1 moved 0x1000 bytes from the device to logical address {logical:#x}; 0x2000 left")
    );
    assert_eq!(u32_at(&output(&v, 4), 0), 0x2000, "ReadDmaCounter after a partial transfer: {v}");
    assert!(note(&v, 5).ends_with("0x0 left (terminal count)"), "{v}");
    assert_eq!(u32_at(&output(&v, 6), 0), 0, "ReadDmaCounter at terminal count: {v}");
    assert_eq!(u32_at(&output(&v, 7), 0), 0x3000, "every byte arrived at the flush: {v}");
    assert_eq!(v["system_dma"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["leaks"], serde_json::json!([]), "{v}");
}

/// Channel 4 cascades the second 8237 into the first, and there is no channel 8:
/// IoGetDmaAdapter gives NULL for both (the driver's STATUS_NO_MATCH), and the report
/// says why; channel 7 works.
#[test]
fn channel_4_and_channel_8_are_refused() {
    let (v, code) = run("refused", &[]);
    assert_eq!(code, 0, "{v}");
    for i in [1, 2] {
        assert_eq!(v["steps"][i]["status"], 0xC000_0272_u32, "{v}");
        assert_eq!(v["steps"][i]["ok"], true, "expected: {v}");
    }
    let refusals = v["dma_refusals"].as_array().unwrap();
    assert_eq!(refusals.len(), 2, "{v}");
    assert_eq!(refusals[0]["reason"], "DMA channel 4 cannot be used (4 is the cascade channel; 0-7 exist)");
    assert_eq!(refusals[1]["refusal"]["BadChannel"], 8, "{v}");
    assert_eq!(u32_at(&output(&v, 3), 0), 17, "channel 7 (16-bit, 128 KB windows): 17 registers: {v}");
}

/// Version 3 on Windows 8, ISA word channel 5: a 0xE8-byte table with every
/// version 3 slot filled, GetDmaAdapterInfo's counter, 24 address bits and 2-byte
/// unit; a write the device reads (the 0x3C bytes the driver wrote) and a read the
/// device writes (0x5A bytes intact in the buffer after FlushAdapterBuffersEx), each
/// MapTransferEx's completion routine run once, at terminal count, with DmaComplete.
#[test]
fn map_transfer_ex_and_flush_adapter_buffers_ex_round_trip_with_completions() {
    let (v, code) = run("v3", &[]);
    assert_eq!(code, 0, "{v}");
    assert!(v["steps"].as_array().unwrap().iter().all(|s| s["ok"] == true), "{v}");
    let opened = output(&v, 1);
    let fields: Vec<u32> = (0..6).map(|i| u32_at(&opened, 4 * i)).collect();
    assert_eq!(fields, [17, 0xE8, 1, 24, 2, 0], "registers, size, counter, width, unit, NULL slots: {v}");
    assert_eq!(u32_at(&output(&v, 2), 24), 0, "no completion before the device moved anything: {v}");
    assert!(note(&v, 3).starts_with("ISA DMA channel 5 moved 0x2000 bytes to the device"), "{v}");
    assert_eq!(v["steps"][3]["output"], "3c".repeat(64), "the device read what the driver wrote: {v}");
    let first = output(&v, 4);
    assert_eq!((u32_at(&first, 0), u32_at(&first, 4), u32_at(&first, 8)), (0x2000, 1, 0), "{v}");
    assert!(note(&v, 6).starts_with("ISA DMA channel 5 moved 0x2000 bytes from the device"), "{v}");
    let second = output(&v, 7);
    let (matching, completions, status, flush) =
        (u32_at(&second, 0), u32_at(&second, 4), u32_at(&second, 8), u32_at(&second, 12));
    assert_eq!((matching, completions, status, flush), (0x2000, 2, 0, 0), "{v}");
    let debug = v["debug_output"].as_str().unwrap();
    assert_eq!(debug.matches("dma_system: completion 0 at IRQL 2, device ours").count(), 2, "{debug}");
    assert_eq!(v["leaks"], serde_json::json!([]), "{v}");
}

/// A device on a declared request line that never makes the controller wait (as
/// the SystemDma sample's UART would be): its write runs to terminal count inside
/// MapTransferEx, whose completion routine has run when it returns; the device got
/// the driver's bytes, at MapTransferEx's device offset.
#[test]
fn a_ready_request_line_completes_inside_map_transfer_ex() {
    let (v, code) = run("line", &[]);
    assert_eq!(code, 0, "{v}");
    let opened = output(&v, 1);
    assert_eq!((u32_at(&opened, 8), u32_at(&opened, 12)), (1, 32), "counter available, 32 address bits: {v}");
    assert_eq!(u32_at(&output(&v, 2), 24), 1, "completed before MapTransferEx returned: {v}");
    let moved = &v["system_dma"][0];
    assert_eq!(moved["channel"]["RequestLine"], 0x1000, "{v}");
    assert_eq!((moved["bytes"].as_u64(), moved["device_offset"].as_u64()), (Some(0x2000), Some(0x10)), "{v}");
    assert!(moved["sample"].as_array().unwrap().iter().all(|b| b == 0xDA), "{v}");
    assert!(moved["logical"].as_u64().unwrap() < 1 << 32, "bounced within the controller's 32 bits: {v}");
    assert_eq!(u32_at(&output(&v, 3), 4), 1, "exactly one completion: {v}");
}

/// Windows Vista's HAL has no version 3: IoGetDmaAdapter gives NULL for a version 3
/// description (the report names the reason) and an adapter for version 2.
#[test]
fn version_3_is_null_before_windows_8() {
    let (v, code) = run("vista", &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["steps"][1]["status"], 0xC000_0272_u32, "{v}");
    assert_eq!(v["dma_refusals"][0]["reason"], "DEVICE_DESCRIPTION version 3 is not supported here", "{v}");
    assert_eq!(u32_at(&output(&v, 2), 4), 0x80, "version 2: a 0x80-byte table: {v}");
}

/// FlushAdapterBuffersEx while the channel's transfer is neither complete nor
/// cancelled: without the verifier the channel is masked where it stands (no
/// completion routine runs); under `--verifier dma` it is 0xE6 subcode 0x23 with P2
/// 0, the controller (1: the second 8237) and the channel in it (1: channel 5).
#[test]
fn flushing_a_running_system_dma_transfer_is_0xe6_0x23_under_dma_checking() {
    let (v, code) = run("early_flush", &[]);
    assert_eq!(code, 0, "{v}");
    let finished = output(&v, 3);
    assert_eq!((u32_at(&finished, 0), u32_at(&finished, 4)), (0x2000, 0), "{v}");
    let (v, code) = run("early_flush", &["--verifier", "dma"]);
    assert_eq!(code, 3, "{v}");
    let b = &v["bugcheck"];
    assert_eq!(b["code"], 0xE6, "{v}");
    assert_eq!(b["parameters"], serde_json::json!([0x23, 0, 1, 1]), "{v}");
}

/// Driver Verifier's DMA shadow buffers: `dma_device.c` calls its NIC a 64-bit
/// device (nothing bounces) and programs it for 16 bytes more than it mapped.
/// Without the verifier the bytes land past the mapping unnoticed; under `--verifier
/// dma` the mapping is double-buffered (a different logical address), framed by
/// "DmaVrfy0" tags, and PutScatterGatherList finds the tag after the buffer changed:
/// 0xE6 (0x0F, 2, buffer length, buffer start).
#[test]
fn a_device_overrun_of_a_shadowed_mapping_is_0xe6_0x0f_2() {
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
            .arg("run")
            .arg(driver("dma_device.c"))
            .arg("--scenario")
            .arg(driver("dma_device_overrun.toml"))
            .arg("--json")
            .args(extra)
            .output()
            .expect("ntmem runs");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (v, out.status.code().unwrap())
    };
    let (plain, code) = run(&[]);
    assert_eq!(code, 0, "{plain}");
    assert_eq!(plain["steps"][2]["output"], "00180000", "{plain}");
    let (v, code) = run(&["--verifier", "dma"]);
    assert_eq!(code, 3, "{v}");
    let p = &v["bugcheck"]["parameters"];
    assert_eq!((&p[0], &p[1], &p[2]), (&0x0F.into(), &2.into(), &0x1800.into()), "{v}");
    let debug = v["debug_output"].as_str().unwrap();
    let logical = |d: &str| d.split("first at logical ").nth(1).unwrap().split(' ').next().unwrap().to_string();
    assert_ne!(logical(debug), logical(plain["debug_output"].as_str().unwrap()), "double-buffered: {debug}");
    assert_eq!(v["bugcheck"]["parameter_meanings"][0], "0x0F: the driver or its device wrote outside its DMA buffer");
}
