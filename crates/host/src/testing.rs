//! Helpers shared by the unit tests: closure fault handlers, stacks with guard pages,
//! raw memory probes, and running a snippet in a forked child to watch it die.

use crate::{page_size, Fault, FaultAction, FaultHandler, Placement, Prot, Reservation, Stack};
use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::Arc;

struct FnHandler<F>(F);

impl<F: Fn(&Fault) -> FaultAction + Send + Sync> FaultHandler for FnHandler<F> {
    fn on_fault(&self, fault: &Fault) -> FaultAction {
        (self.0)(fault)
    }
}

/// A fault handler from a closure.
pub(crate) fn handler(f: impl Fn(&Fault) -> FaultAction + Send + Sync + 'static) -> Arc<dyn FaultHandler> {
    Arc::new(FnHandler(f))
}

/// A stack of `size` bytes with a reserved, inaccessible guard page below it.
pub(crate) struct TestStack {
    pub res: Reservation,
    size: usize,
}

impl TestStack {
    pub fn new(size: usize) -> TestStack {
        let page = page_size();
        let res = Reservation::new(size + page, Placement::Anywhere { align: page }).unwrap();
        res.protect(page, size, Prot::ReadWrite).unwrap();
        TestStack { res, size }
    }

    pub fn stack(&self) -> Stack {
        Stack { base: self.res.base() + page_size(), size: self.size }
    }

    pub fn guard_page(&self) -> usize {
        self.res.base()
    }
}

pub(crate) fn peek(addr: usize) -> u64 {
    // SAFETY: tests peek at addresses that are mapped or whose fault they expect and handle.
    unsafe { (addr as *const u64).read_volatile() }
}

pub(crate) fn poke(addr: usize, v: u64) {
    // SAFETY: tests poke addresses that are mapped or whose fault they expect and handle.
    unsafe { (addr as *mut u64).write_volatile(v) }
}

/// Runs `f` in a forked child with stderr captured; returns its wait status and stderr.
/// `f` must be async-signal-safe (the parent has other threads). The child exits 0 if `f`
/// returns.
pub(crate) fn in_child(f: impl FnOnce()) -> (libc::c_int, String) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only runs `f` (async-signal-safe by contract) and _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: plain descriptor calls in the child.
        unsafe {
            libc::dup2(fds[1], 2);
            libc::close(fds[0]);
        }
        f();
        // SAFETY: leaving the child without running the parent's atexit handlers.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: closing our copy of the write end; the read end becomes a File we own.
    let mut reader = unsafe {
        libc::close(fds[1]);
        std::fs::File::from_raw_fd(fds[0])
    };
    let mut err = String::new();
    reader.read_to_string(&mut err).unwrap();
    let mut status = 0;
    // SAFETY: waiting for our own child into a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    (status, err)
}
