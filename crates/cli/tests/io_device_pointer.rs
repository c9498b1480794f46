//! IoGetDeviceObjectPointer (issue 12 item 1) from a C driver that opens its own
//! device by name, `drivers/device_pointer.c`.

use std::path::Path;
use std::process::Command;

/// The open is a kernel caller's: IRP_MJ_CREATE, then IRP_MJ_CLEANUP as the handle
/// closes inside the call; IRP_MJ_CLOSE comes with the caller's ObDereferenceObject of
/// the file object, which is then freed (no File pool left). The device returned is
/// the top of the stack and the file object is open on it; a link reaches it too; a
/// name nothing has is STATUS_OBJECT_NAME_NOT_FOUND.
#[test]
fn create_and_cleanup_come_with_the_open_and_close_with_the_last_dereference() {
    let drivers = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers");
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(drivers.join("device_pointer.c"))
        .args(["--scenario", drivers.join("device_pointer.toml").to_str().unwrap(), "--json"])
        .output()
        .expect("ntmem runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["exit"], 0, "{v}");
    let once = |i| {
        format!(
            "major 0, requestor kernel\nmajor 18, requestor kernel\nopen {i}: 0x0, device ours, file on it 1\n\
             dereference\nmajor 2, requestor kernel\n"
        )
    };
    let expected = format!("{}{}missing: 0xc0000034\n", once(0), once(1));
    assert_eq!(v["debug_output"], expected.as_str(), "{v}");
    assert_eq!(v["leaks"], serde_json::json!([]), "{v}");
}
