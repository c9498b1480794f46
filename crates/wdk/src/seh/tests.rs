use super::*;

#[test]
fn try_except_returns_the_closures_value_when_nothing_is_raised() {
    assert_eq!(try_except(|| 41 + 1), Ok(42));
}

#[test]
fn a_raised_status_is_caught_with_its_code() {
    let r: Result<(), NtStatus> = try_except(|| raise_status(STATUS_DATATYPE_MISALIGNMENT));
    assert_eq!(r, Err(STATUS_DATATYPE_MISALIGNMENT));
}

#[test]
fn ex_raise_status_from_c_is_caught_with_its_call_site() {
    // SAFETY: raising inside `catch` is what ExRaiseStatus is for.
    let e = catch(|| unsafe { ExRaiseStatus(STATUS_INSUFFICIENT_RESOURCES) }).unwrap_err();
    assert_eq!(e.code, STATUS_INSUFFICIENT_RESOURCES);
    assert_ne!(e.address, 0, "the address is ExRaiseStatus's caller");
    assert!(e.parameters.is_empty());
}

#[test]
fn nested_frames_catch_innermost_first_and_the_outer_one_still_works() {
    let outer = try_except(|| {
        let inner = try_except(|| raise_status(STATUS_ACCESS_VIOLATION));
        assert_eq!(inner, Err(STATUS_ACCESS_VIOLATION));
        raise_status(STATUS_QUOTA_EXCEEDED)
    });
    assert_eq!(outer, Err::<(), _>(STATUS_QUOTA_EXCEEDED));
    // Both frames are gone: a new frame is the only one.
    assert_eq!(try_except(|| 7), Ok(7));
}

#[test]
fn a_panic_in_the_closure_is_resumed_and_leaves_no_frame_behind() {
    let r = std::panic::catch_unwind(|| try_except(|| panic!("boom")));
    assert!(r.is_err());
    assert_eq!(try_except(|| raise_status(STATUS_ACCESS_VIOLATION)).map(|_: ()| ()), Err(STATUS_ACCESS_VIOLATION));
}

#[test]
fn unhandled_exceptions_bugcheck_by_thread_kind() {
    let mut record = ExceptionRecord::empty();
    record.code = STATUS_ACCESS_VIOLATION;
    record.address = 0x1234 as *mut std::ffi::c_void;
    record.number_parameters = 2;
    record.information[0] = 1;
    record.information[1] = 0x10000;
    let b = unhandled_bugcheck(ThreadKind::Arbitrary, &record);
    assert_eq!(b.code, BugCheckCode::KMODE_EXCEPTION_NOT_HANDLED);
    assert_eq!(b.parameters, [0xC000_0005, 0x1234, 1, 0x10000]);
    let b = unhandled_bugcheck(ThreadKind::System, &record);
    assert_eq!(b.code, BugCheckCode::SYSTEM_THREAD_EXCEPTION_NOT_HANDLED);
    assert_eq!(b.parameters, [0xC000_0005, 0x1234, 0, 0]);
}

#[test]
fn run_as_restores_the_kind_and_leaves_no_catch() {
    run_as(ThreadKind::System, || assert_eq!(KIND.with(Cell::get), ThreadKind::System));
    assert_eq!(KIND.with(Cell::get), ThreadKind::Arbitrary);
    assert!(!catch_innermost());
}
