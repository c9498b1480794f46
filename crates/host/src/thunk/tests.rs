use super::*;
use std::arch::asm;

static mut SEEN: ImportCapture = ImportCapture { gpr: [0; 8], rsp: 0, reserved: 0, xmm: [0; 10] };

extern "win64" fn six(a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> u64 {
    // SAFETY: tests that use SEEN run on one thread each and read it after the call.
    unsafe { SEEN = current_capture() };
    a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f
}

extern "win64" fn four(a: u64, b: u64, c: u64, d: u64) -> u64 {
    // SAFETY: as in `six`.
    unsafe { SEEN = current_capture() };
    a ^ b ^ c ^ d
}

#[test]
fn a_thunk_passes_arguments_and_results_through() {
    let table = ThunkTable::new(&[six as *const () as usize, four as *const () as usize]).unwrap();
    let _gs = GsBlock::enter().unwrap();
    // SAFETY: thunk 0 jumps to `six`, which has this signature.
    let f: extern "win64" fn(u64, u64, u64, u64, u64, u64) -> u64 =
        unsafe { std::mem::transmute(table.address(0).unwrap()) };
    assert_eq!(f(1, 2, 3, 4, 5, 6), 1 + 4 + 9 + 16 + 25 + 36, "register and stack arguments");
    // SAFETY: read after the call, on this thread.
    let seen = unsafe { SEEN };
    let here = &seen as *const _ as u64;
    assert!(seen.rsp != 0 && seen.rsp.abs_diff(here) < 64 * 1024, "rsp {:#x} is on this stack", seen.rsp);
    assert!(table.contains(table.address(1).unwrap()) && !table.contains(six as *const () as usize));
    assert_eq!(table.address(2), None);
}

#[test]
fn a_thunk_records_the_callers_nonvolatile_registers_and_return_address() {
    let table = ThunkTable::new(&[four as *const () as usize]).unwrap();
    let _gs = GsBlock::enter().unwrap();
    let thunk = table.address(0).unwrap();
    let result: u64;
    let return_to: u64;
    // SAFETY: calls the thunk with the Microsoft x64 convention (32 bytes of home
    // space, rsp 16-byte aligned at the call, as asm! blocks start aligned);
    // r12–r15, rsi and rdi are declared clobbered and hold known values at the call.
    unsafe {
        asm!(
            "mov r12, 0x1212",
            "mov r13, 0x1313",
            "mov r14, 0x1414",
            "mov r15, 0x1515",
            "mov rsi, 0x5151",
            "mov rdi, 0xD1D1",
            "mov rcx, 1",
            "mov rdx, 2",
            "mov r8, 4",
            "mov r9, 8",
            "sub rsp, 32",
            "call rax",
            "2:",
            "add rsp, 32",
            "lea r10, [rip + 2b]",
            out("r10") return_to,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _, out("rsi") _, out("rdi") _,
            inout("rax") thunk => result,
            clobber_abi("win64"),
        );
    }
    assert_eq!(result, 1 ^ 2 ^ 4 ^ 8);
    // SAFETY: read after the call, on this thread.
    let seen = unsafe { SEEN };
    assert_eq!(&seen.gpr[2..8], &[0x5151, 0xD1D1, 0x1212, 0x1313, 0x1414, 0x1515]);
    assert_eq!(seen.return_address(), Some(return_to), "the word at rsp is the return address");
}

#[test]
fn a_nested_driver_call_keeps_the_outer_capture() {
    let table = ThunkTable::new(&[six as *const () as usize]).unwrap();
    let outer = GsBlock::enter().unwrap();
    // SAFETY: thunk 0 jumps to `six`.
    let f: extern "win64" fn(u64, u64, u64, u64, u64, u64) -> u64 =
        unsafe { std::mem::transmute(table.address(0).unwrap()) };
    f(0, 0, 0, 0, 0, 0);
    let before = current_capture();
    {
        let _inner = GsBlock::enter().unwrap();
        #[inline(never)]
        fn deeper(f: extern "win64" fn(u64, u64, u64, u64, u64, u64) -> u64) -> u64 {
            let pad = std::hint::black_box([0u8; 512]);
            f(u64::from(pad[0]), 0, 0, 0, 0, 0)
        }
        deeper(f);
        assert_ne!(current_capture().rsp, before.rsp);
    }
    assert_eq!(current_capture(), before, "the outer call's capture is back");
    drop(outer);
}
