//! IoGetDeviceObjectPointer (issue 12 item 1) from a C driver that opens its own
//! device by name, `drivers/device_pointer.c`.

mod common;

/// The open is a kernel caller's: IRP_MJ_CREATE, then IRP_MJ_CLEANUP as the handle
/// closes inside the call; IRP_MJ_CLOSE comes with the caller's ObDereferenceObject of
/// the file object, which is then freed (no File pool left). The device returned is
/// the top of the stack and the file object is open on it; a link reaches it too; a
/// name nothing has is STATUS_OBJECT_NAME_NOT_FOUND.
#[test]
fn create_and_cleanup_come_with_the_open_and_close_with_the_last_dereference() {
    let scenario = common::driver_file("device_pointer.toml");
    let v = common::run_json("device_pointer.c", 0, &["--scenario", scenario.to_str().unwrap()]);
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
