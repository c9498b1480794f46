//! x64 structured exception handling on real PE driver images (issue 10 item 3): C built
//! by clang 19 at -O2 for the Windows target, loaded by `MmLoadSystemImage` into a booted
//! machine, registered with the dispatcher, `__C_specific_handler` and the Rtl routines
//! bound to ntmem's, and called on a simulated processor as Microsoft-x64 functions.

use std::path::PathBuf;
use std::sync::OnceLock;

use ntmem_kernel::mm::sysload::LoadedImage;
use ntmem_kernel::{BugCheck, BugCheckCode, Irql, Machine};
use ntmem_machine::{BootOptions, MachineConfig, Va};
use ntmem_pe::ExportTarget;
use ntmem_toolchain::{ImportLibrary, Toolchain};
use ntmem_wdk::except::{self, images::Registration};
use ntmem_wdk::{context, seh};

const DRIVER: &str = r#"
typedef struct _EXCEPTION_RECORD {
    long ExceptionCode;
    unsigned long ExceptionFlags;
    struct _EXCEPTION_RECORD *ExceptionRecord;
    void *ExceptionAddress;
    unsigned long NumberParameters;
    unsigned long long ExceptionInformation[15];
} EXCEPTION_RECORD;
typedef struct _EXCEPTION_POINTERS { EXCEPTION_RECORD *ExceptionRecord; void *ContextRecord; } EXCEPTION_POINTERS;
void RtlRaiseException(EXCEPTION_RECORD *Record);
void RtlRaiseStatus(long Status);

#define EXCEPTION_EXECUTE_HANDLER 1
#define EXCEPTION_CONTINUE_SEARCH 0
#define EXCEPTION_CONTINUE_EXECUTION (-1)
#define EXPORT __declspec(dllexport)

/* What filters saw: code, flags, address, count, parameters 0 and 1. */
EXPORT unsigned long long Seen[6];
static int Capture(EXCEPTION_POINTERS *e, int verdict) {
    Seen[0] = (unsigned long)e->ExceptionRecord->ExceptionCode;
    Seen[1] = e->ExceptionRecord->ExceptionFlags;
    Seen[2] = (unsigned long long)e->ExceptionRecord->ExceptionAddress;
    Seen[3] = e->ExceptionRecord->NumberParameters;
    Seen[4] = e->ExceptionRecord->ExceptionInformation[0];
    Seen[5] = e->ExceptionRecord->ExceptionInformation[1];
    return verdict;
}

/* An order log. */
EXPORT int Log[16];
EXPORT int LogN;
static void Note(int x) { if (LogN < 16) Log[LogN++] = x; }
static int NoteFilter(int x, int verdict) { Note(x); return verdict; }

EXPORT int ReadNoCall(volatile int *p) {
    __try { return *p; }
    __except (EXCEPTION_EXECUTE_HANDLER) { return _exception_code(); }
}

EXPORT int ReadFiltered(volatile int *p) {
    __try { return *p; }
    __except (Capture(_exception_info(), EXCEPTION_EXECUTE_HANDLER)) { return _exception_code(); }
}

EXPORT int ReadNoTry(volatile int *p) { return *p; }

__declspec(noinline) static void Inner(volatile int *p) {
    __try {
        __try { *p = 1; }
        __finally { Note(_abnormal_termination() ? 20 : 21); }
    } __except (NoteFilter(10, EXCEPTION_CONTINUE_SEARCH)) { Note(98); }
}

EXPORT int Order(volatile int *p) {
    LogN = 0;
    __try {
        __try { Inner(p); }
        __finally { Note(_abnormal_termination() ? 30 : 31); }
    } __except (NoteFilter(40, EXCEPTION_EXECUTE_HANDLER)) { Note(50); }
    return LogN;
}

EXPORT int Leave(int early) {
    LogN = 0;
    __try {
        if (early) __leave;
        Note(1);
    } __finally { Note(_abnormal_termination() ? 2 : 3); }
    return LogN;
}

/* The filter re-points the register that holds the bad pointer, then continues. */
static volatile int *Bad;
EXPORT int Storage = 0x1234;
static int Repoint(EXCEPTION_POINTERS *e) {
    unsigned long long *gpr = (unsigned long long *)((char *)e->ContextRecord + 0x78);
    int fixed = 0;
    for (int i = 0; i < 16; i++) {
        if (i != 4 && gpr[i] == (unsigned long long)Bad) { gpr[i] = (unsigned long long)&Storage; fixed++; }
    }
    return fixed ? EXCEPTION_CONTINUE_EXECUTION : EXCEPTION_EXECUTE_HANDLER;
}
EXPORT int ContinueAfterFix(volatile int *p) {
    Bad = p;
    __try { return *p + 1; }
    __except (Repoint(_exception_info())) { return -1; }
}

/* Values kept in nonvolatile registers across a fault two frames down. */
EXPORT volatile long long SinkOut;
EXPORT __declspec(noinline) long long Sink(long long a, long long b, long long c, long long d,
                                    long long e, long long f, long long g) {
    long long m = a ^ (b << 1) ^ (c << 2) ^ (d << 3) ^ (e << 4) ^ (f << 5) ^ (g << 6);
    SinkOut = m;
    return m;
}
EXPORT __declspec(noinline) long long Clobber(volatile int *p, long long s) {
    long long a = s + 1, b = s * 2, c = s ^ 3, d = s + 4, e = s * 5, f = s ^ 6, g = s + 7;
    Sink(a, b, c, d, e, f, g);
    long long v = *p;
    return Sink(a, b, c, d, e, f, g) + v;
}
EXPORT long long Nonvolatile(volatile int *p, long long s) {
    long long a = s * 3, b = s * 5, c = s * 7, d = s * 11, e = s * 13, f = s * 17, g = s * 19;
    Sink(a, b, c, d, e, f, g);
    long long r;
    __try { r = Clobber(p, s + 100); }
    __except (EXCEPTION_EXECUTE_HANDLER) { r = -1; }
    return Sink(a, b, c, d, e, f, g) + r;
}

EXPORT int Divide(volatile int a, volatile int b) {
    __try { return a / b; }
    __except (Capture(_exception_info(), EXCEPTION_EXECUTE_HANDLER)) { return _exception_code(); }
}

EXPORT int Break(void) {
    __try { __debugbreak(); return 0; }
    __except (Capture(_exception_info(), EXCEPTION_EXECUTE_HANDLER)) { return _exception_code(); }
}

EXPORT int Raise(long code) {
    EXCEPTION_RECORD r = {0};
    r.ExceptionCode = code;
    r.NumberParameters = 1;
    r.ExceptionInformation[0] = 0x5eed;
    __try { RtlRaiseException(&r); return 0; }
    __except (Capture(_exception_info(), EXCEPTION_EXECUTE_HANDLER)) { return _exception_code(); }
}

EXPORT int RaiseUnhandled(long code) {
    EXCEPTION_RECORD r = {0};
    r.ExceptionCode = code;
    r.NumberParameters = 2;
    r.ExceptionInformation[0] = 0x11;
    r.ExceptionInformation[1] = 0x22;
    RtlRaiseException(&r);
    return 0;
}

/* A fault inside a filter: reported, not a host crash. */
static int FaultingFilter(volatile int *p) { return *p; }
EXPORT int FaultInFilter(volatile int *p) {
    __try { return *p; }
    __except (FaultingFilter(p)) { return -1; }
}

/* A fault inside a filter, caught by the __except of a caller: the search goes on above
   the frame whose filter faulted; the unwind runs the __finally in between. */
__declspec(noinline) static int InnerFaultInFilter(volatile int *p) {
    __try { return *p; }
    __except (FaultingFilter(p)) { return -1; }
}
EXPORT int NestedCaught(volatile int *p) {
    LogN = 0;
    __try {
        __try { return InnerFaultInFilter(p); }
        __finally { Note(_abnormal_termination() ? 7 : 8); }
    } __except (Capture(_exception_info(), EXCEPTION_EXECUTE_HANDLER)) { Note(9); return _exception_code(); }
}

/* A fault inside a __finally while an unwind runs it. */
EXPORT int FaultInFinally(volatile int *p) {
    __try {
        __try { return *p; }
        __finally { if (_abnormal_termination()) *p = 2; }
    } __except (EXCEPTION_EXECUTE_HANDLER) { return -1; }
}

/* A stack walk with the exported routines, as a driver's own backtrace code does it. */
typedef struct __declspec(align(16)) _CONTEXT { unsigned char Bytes[0x4D0]; } CONTEXT;
#define CONTEXT_RIP(c) (*(unsigned long long *)((c)->Bytes + 0xF8))
typedef struct _RUNTIME_FUNCTION { unsigned long BeginAddress, EndAddress, UnwindData; } RUNTIME_FUNCTION;
void RtlCaptureContext(CONTEXT *Context);
RUNTIME_FUNCTION *RtlLookupFunctionEntry(unsigned long long Pc, unsigned long long *Base, void *History);
void *RtlVirtualUnwind(unsigned long Type, unsigned long long Base, unsigned long long Pc, RUNTIME_FUNCTION *Function,
                       CONTEXT *Context, void **Data, unsigned long long *Frame, void *Pointers);
EXPORT unsigned long long FrameBegins[8];
EXPORT __declspec(noinline) int Walk(void) {
    CONTEXT c;
    RtlCaptureContext(&c);
    int n = 0;
    while (n < 8) {
        unsigned long long base = 0, frame = 0;
        void *data = 0;
        RUNTIME_FUNCTION *f = RtlLookupFunctionEntry(CONTEXT_RIP(&c), &base, 0);
        if (!f) break;
        FrameBegins[n++] = f->BeginAddress;
        RtlVirtualUnwind(0, base, CONTEXT_RIP(&c), f, &c, &data, &frame, 0);
    }
    return n;
}
/* RtlUnwindEx called by the driver: resume in Top at the return from its call of Middle,
   as if Middle had returned 77, running Middle's __finally on the way. */
void RtlUnwindEx(void *TargetFrame, void *TargetIp, EXCEPTION_RECORD *Record, void *ReturnValue, CONTEXT *Context,
                 void *History);
EXPORT __declspec(noinline) long long UnwindOut(void) {
    CONTEXT c;
    unsigned long long base = 0, frame = 0, ip;
    void *data = 0;
    RtlCaptureContext(&c);
    for (int i = 0; i < 2; i++) { /* out of UnwindOut, then out of Middle */
        RUNTIME_FUNCTION *f = RtlLookupFunctionEntry(CONTEXT_RIP(&c), &base, 0);
        RtlVirtualUnwind(0, base, CONTEXT_RIP(&c), f, &c, &data, &frame, 0);
    }
    ip = CONTEXT_RIP(&c);
    RUNTIME_FUNCTION *top = RtlLookupFunctionEntry(ip, &base, 0);
    RtlVirtualUnwind(0, base, ip, top, &c, &data, &frame, 0); /* Top's establisher frame */
    RtlUnwindEx((void *)frame, (void *)ip, 0, (void *)77, &c, 0);
    return -1;
}
__declspec(noinline) static long long Middle(void) {
    long long r = 0;
    __try { r = UnwindOut(); }
    __finally { Note(_abnormal_termination() ? 61 : 62); }
    return r + 1000;
}
EXPORT long long Top(void) {
    LogN = 0;
    long long v = Middle();
    Note(63);
    return v;
}

EXPORT __declspec(noinline) int WalkCaller(int x) { return Walk() * 10 + x; }
EXPORT int WalkTop(int x) { return WalkCaller(x + 1) * 2; }

EXPORT int Privileged(void) {
    __try { __asm__ volatile("hlt"); }
    __except (Capture(_exception_info(), EXCEPTION_EXECUTE_HANDLER)) { return _exception_code(); }
    return 0;
}

EXPORT int NonCanonical(void) {
    __try { return *(volatile int *)0x8000000000000000ULL; }
    __except (Capture(_exception_info(), EXCEPTION_EXECUTE_HANDLER)) { return _exception_code(); }
}

/* The IRQL through cr8, as MSVC's inline KeGetCurrentIrql/KeRaiseIrql/KeLowerIrql do. */
EXPORT int Cr8(void) {
    unsigned long long old, now, two = 2;
    __asm__ volatile("mov %%cr8, %0" : "=r"(old));
    __asm__ volatile("mov %0, %%cr8" : : "r"(two));
    __asm__ volatile("mov %%cr8, %0" : "=r"(now));
    __asm__ volatile("mov %0, %%cr8" : : "r"(old));
    return (int)(old * 100 + now);
}
EXPORT unsigned long long RaiseToDispatch(void) {
    unsigned long long two = 2;
    __asm__ volatile("mov %0, %%cr8" : : "r"(two));
    return 0;
}

EXPORT int RaiseStatus(long code) {
    __try { RtlRaiseStatus(code); return 0; }
    __except (Capture(_exception_info(), EXCEPTION_EXECUTE_HANDLER)) { return _exception_code(); }
}

EXPORT int ContinueNoncontinuable(long code) {
    __try { RtlRaiseStatus(code); return 0; }
    __except (_exception_code() == 0xC0000025 ? EXCEPTION_CONTINUE_SEARCH : EXCEPTION_CONTINUE_EXECUTION) { return -1; }
}

/* The chained record's code, as the outer handler sees it. */
EXPORT int ContinueNoncontinuableCaught(long code) {
    __try {
        __try { RtlRaiseStatus(code); return 0; }
        __except (_exception_code() == 0xC0000025 ? EXCEPTION_CONTINUE_SEARCH : EXCEPTION_CONTINUE_EXECUTION) { return -1; }
    } __except (Capture(_exception_info(), ((EXCEPTION_POINTERS *)_exception_info())->ExceptionRecord->ExceptionRecord->ExceptionCode == code)) {
        return _exception_code();
    }
}

EXPORT int ContinueAlways(long code) {
    __try { RtlRaiseStatus(code); return 0; }
    __except (EXCEPTION_CONTINUE_EXECUTION) { return -1; }
}

EXPORT int Illegal(void) {
    __try { __builtin_trap(); }
    __except (Capture(_exception_info(), EXCEPTION_EXECUTE_HANDLER)) { return _exception_code(); }
    return 0;
}

/* XMM6-15 across a fault two frames down. (_fltused: the symbol the compiler references
   when a function uses floating point; the WDK's kernel CRT defines it.) */
int _fltused;
EXPORT volatile double DSink;
EXPORT __declspec(noinline) double SinkD(double a, double b, double c, double d) {
    double m = a + 2 * b + 3 * c + 4 * d;
    DSink = m;
    return m;
}
EXPORT __declspec(noinline) double ClobberD(volatile int *p, double s) {
    double a = s + 1, b = s * 2, c = s - 3, d = s * 4;
    SinkD(a, b, c, d);
    double v = *p;
    return SinkD(a, b, c, d) + v;
}
EXPORT __declspec(noinline) double TryClobberD(volatile int *p, double s) {
    double r;
    __try { r = ClobberD(p, s); }
    __except (EXCEPTION_EXECUTE_HANDLER) { r = -1; }
    return r;
}
EXPORT double NonvolatileXmm(volatile int *p, double s) {
    double a = s * 3, b = s * 5, c = s * 7, d = s * 11;
    SinkD(a, b, c, d);
    double r = TryClobberD(p, s + 100);
    return SinkD(a, b, c, d) + r;
}

long DriverEntry(void *DriverObject, void *RegistryPath) { (void)DriverObject; (void)RegistryPath; return 0; }
"#;

struct Built {
    bytes: Vec<u8>,
    path: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let tc = Toolchain::find().expect("the driver toolchain (clang >= 19, lld, llvm)");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pe_seh");
        std::fs::create_dir_all(&dir).unwrap();
        let c = dir.join("seh.c");
        std::fs::write(&c, DRIVER).unwrap();
        let imports = [ImportLibrary {
            dll: "ntoskrnl.exe".into(),
            routines: [
                "__C_specific_handler",
                "RtlRaiseException",
                "RtlRaiseStatus",
                "RtlCaptureContext",
                "RtlLookupFunctionEntry",
                "RtlVirtualUnwind",
                "RtlUnwindEx",
            ]
            .map(String::from)
            .to_vec(),
            data: vec![],
        }];
        let out = dir.join("seh.sys");
        tc.build(&[c], &imports, &["-O2".into()], &dir.join("work"), &out).unwrap();
        Built { bytes: std::fs::read(&out).unwrap(), path: out }
    })
}

struct Driver {
    machine: Machine,
    image: Option<LoadedImage>,
    registration: Option<Registration>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Unregistered before unmapped, as the loader will do at unload.
        drop(self.registration.take());
        if let Some(image) = self.image.take() {
            image.unload(&self.machine);
        }
    }
}

fn load() -> Driver {
    let mut config = MachineConfig::for_edition("ws03sp1-enterprise-x64").unwrap();
    config.ram = 256 << 20;
    config.boot = BootOptions::parse("").unwrap();
    let machine = Machine::boot(config.build().unwrap()).unwrap();
    let resolve = |dll: &str, name: &str| {
        if dll == "ntoskrnl.exe" {
            ntmem_wdk::exports::routine_address(name).map(|a| a as u64)
        } else {
            None
        }
    };
    let image = LoadedImage::load(&machine, "seh.sys", &built().bytes, &resolve).unwrap();
    let registration = except::images::register(&image).expect("an image slot");
    Driver { machine, image: Some(image), registration: Some(registration) }
}

impl Driver {
    fn image(&self) -> &LoadedImage {
        self.image.as_ref().unwrap()
    }

    fn rva(&self, name: &str) -> u32 {
        let e = self.image().image().exports.iter().find(|e| e.name.as_deref() == Some(name)).unwrap();
        match e.target {
            ExportTarget::Rva(rva) => rva,
            ExportTarget::Forwarder(_) => panic!("{name} is forwarded"),
        }
    }

    /// The host address of export `name`.
    fn address(&self, name: &str) -> u64 {
        self.image().host_base() + u64::from(self.rva(name))
    }

    /// Runs `f` on processor 0 as driver code in a thread of `kind`.
    fn run<R>(&self, kind: seh::ThreadKind, f: impl FnOnce() -> R) -> Result<R, BugCheck> {
        let m = &self.machine;
        let r = seh::run_as(kind, || m.run(0, |c| Ok(context::enter(c, "pe_seh test function", f))));
        context::leave(r)
    }

    fn read_u64s<const N: usize>(&self, name: &str) -> [u64; N] {
        let mut out = [0u64; N];
        for (i, w) in out.iter_mut().enumerate() {
            // SAFETY: the export is a mapped, readable global of N words in the image.
            *w = unsafe { std::ptr::read_volatile((self.address(name) as *const u64).add(i)) };
        }
        out
    }

    fn log(&self) -> Vec<i32> {
        // SAFETY: LogN and Log are mapped globals of the image.
        unsafe {
            let n = std::ptr::read_volatile(self.address("LogN") as *const i32);
            (0..n as usize).map(|i| std::ptr::read_volatile((self.address("Log") as *const i32).add(i))).collect()
        }
    }

    /// The host address of user address `va` in this machine (unmapped: touching it is an
    /// access violation at `va`).
    fn user(&self, va: u64) -> *mut i32 {
        assert!(self.machine.profile().layout.is_user(Va::new(va)));
        self.machine.space().host_addr(Va::new(va)) as *mut i32
    }
}

macro_rules! export {
    ($d:expr, $name:literal, fn($($arg:ty),*) -> $ret:ty) => {{
        let address = $d.address($name);
        // SAFETY: the export is a function of this signature (DRIVER above), Microsoft x64.
        unsafe { std::mem::transmute::<usize, extern "win64" fn($($arg),*) -> $ret>(address as usize) }
    }};
}

const STATUS_ACCESS_VIOLATION: u32 = 0xC000_0005;
const ARBITRARY: seh::ThreadKind = seh::ThreadKind::Arbitrary;

#[test]
fn a_null_read_in_a_call_free_try_is_caught_as_access_violation() {
    let d = load();
    let read = export!(d, "ReadNoCall", fn(*const i32) -> i32);
    assert_eq!(d.run(ARBITRARY, || read(std::ptr::null())).unwrap() as u32, STATUS_ACCESS_VIOLATION);
    let filtered = export!(d, "ReadFiltered", fn(*const i32) -> i32);
    let va = 0x10000;
    assert_eq!(d.run(ARBITRARY, || filtered(d.user(va))).unwrap() as u32, STATUS_ACCESS_VIOLATION);
    let [code, flags, address, count, access, at] = d.read_u64s::<6>("Seen");
    assert_eq!((code, flags, count, access, at), (u64::from(STATUS_ACCESS_VIOLATION), 0, 2, 0, va));
    let function = d.address("ReadFiltered");
    assert!((function..function + 0x40).contains(&address), "address {address:#x} is in ReadFiltered ({function:#x})");
    // A NULL read in driver code (host address 0) is an access violation at address 0.
    assert_eq!(d.run(ARBITRARY, || filtered(std::ptr::null())).unwrap() as u32, STATUS_ACCESS_VIOLATION);
    assert_eq!(d.read_u64s::<6>("Seen")[3..], [2, 0, 0]);
    assert!(d.machine.stopped().is_none());
    // The machine goes on: the same call again.
    assert_eq!(d.run(ARBITRARY, || read(std::ptr::null())).unwrap() as u32, STATUS_ACCESS_VIOLATION);
}

#[test]
fn filters_run_innermost_first_before_any_finally_and_finally_sees_abnormal_termination() {
    let d = load();
    let order = export!(d, "Order", fn(*mut i32) -> i32);
    assert_eq!(d.run(ARBITRARY, || order(d.user(0x20000))).unwrap(), 5);
    assert_eq!(d.log(), [10, 40, 20, 30, 50]);
    let mut fine = 0i32;
    assert_eq!(d.run(ARBITRARY, || order(&mut fine)).unwrap(), 2);
    assert_eq!(d.log(), [21, 31], "normal exit: AbnormalTermination() is false");
    assert_eq!(fine, 1);
}

#[test]
fn leave_ends_the_try_normally() {
    let d = load();
    let leave = export!(d, "Leave", fn(i32) -> i32);
    assert_eq!(d.run(ARBITRARY, || leave(1)).unwrap(), 1);
    assert_eq!(d.log(), [3]);
    assert_eq!(d.run(ARBITRARY, || leave(0)).unwrap(), 2);
    assert_eq!(d.log(), [1, 3]);
}

#[test]
fn continue_execution_resumes_the_faulting_load_after_the_filter_repoints_it() {
    let d = load();
    let go = export!(d, "ContinueAfterFix", fn(*const i32) -> i32);
    assert_eq!(d.run(ARBITRARY, || go(d.user(0x30000))).unwrap(), 0x1235);
}

fn sink(v: [i64; 7]) -> i64 {
    v.iter().enumerate().fold(0, |m, (i, x)| m ^ (x << i))
}

#[test]
fn nonvolatile_registers_are_intact_in_the_handler() {
    let d = load();
    let nv = export!(d, "Nonvolatile", fn(*const i32, i64) -> i64);
    let s = 0x0012_3456_789a_i64;
    let expected = sink([s * 3, s * 5, s * 7, s * 11, s * 13, s * 17, s * 19]) - 1;
    assert_eq!(d.run(ARBITRARY, || nv(d.user(0x40000), s)).unwrap(), expected);

    // The values are in nonvolatile registers: both functions save all of them.
    for function in ["Nonvolatile", "Clobber"] {
        let body = disassembly(function);
        for reg in ["rbx", "rbp", "rsi", "rdi", "r12", "r13", "r14", "r15"] {
            assert!(body.contains(&format!("push\t{reg}")), "{function} saves {reg}:\n{body}");
        }
    }
}

/// The disassembly of export `function` (llvm-objdump, Intel syntax).
fn disassembly(function: &str) -> String {
    let objdump = ["llvm-objdump-19", "llvm-objdump"]
        .iter()
        .find_map(|tool| {
            std::process::Command::new(tool)
                .args(["-d", "--no-show-raw-insn", "--x86-asm-syntax=intel"])
                .arg(&built().path)
                .output()
                .ok()
        })
        .expect("llvm-objdump");
    let text = String::from_utf8_lossy(&objdump.stdout);
    let body = text.split(&format!("<{function}>:")).nth(1).expect("the function is in the disassembly");
    body.lines().skip(1).take_while(|l| !l.is_empty()).collect::<Vec<_>>().join("\n")
}

#[test]
fn nonvolatile_xmm_registers_are_intact_in_the_handler() {
    let d = load();
    let nv = export!(d, "NonvolatileXmm", fn(*const i32, f64) -> f64);
    let s = 1.5f64;
    let (a, b, c, e) = (s * 3.0, s * 5.0, s * 7.0, s * 11.0);
    let expected = (a + 2.0 * b + 3.0 * c + 4.0 * e) + -1.0;
    assert_eq!(d.run(ARBITRARY, || nv(d.user(0x70000), s)).unwrap(), expected);
    for function in ["NonvolatileXmm", "ClobberD"] {
        let body = disassembly(function);
        for reg in ["xmm6", "xmm7", "xmm8", "xmm9", "xmm10"] {
            assert!(
                body.contains("movaps\txmmword ptr [rsp + 0x") && body.contains(&format!("], {reg}")),
                "{function} saves {reg}:\n{body}"
            );
        }
    }
}

#[test]
fn rtl_raise_status_is_noncontinuable_and_caught_with_its_code() {
    let d = load();
    let raise = export!(d, "RaiseStatus", fn(i32) -> i32);
    assert_eq!(d.run(ARBITRARY, || raise(0xC000_0044_u32 as i32)).unwrap() as u32, 0xC000_0044);
    let [code, flags, address, count, ..] = d.read_u64s::<6>("Seen");
    assert_eq!((code, flags, count), (0xC000_0044, 1, 0));
    let function = d.address("RaiseStatus");
    assert!((function..function + 0x100).contains(&address), "the return address of the call");
}

#[test]
fn continuing_a_noncontinuable_exception_is_status_noncontinuable_exception() {
    let d = load();
    let go = export!(d, "ContinueNoncontinuable", fn(i32) -> i32);
    let b = d.run(ARBITRARY, || go(0xC000_0044_u32 as i32)).unwrap_err();
    assert_eq!(b.code, BugCheckCode::KMODE_EXCEPTION_NOT_HANDLED);
    assert_eq!(b.parameters[0], 0xC000_0025);
}

#[test]
fn status_noncontinuable_exception_is_a_new_exception_chained_to_the_first() {
    let d = load();
    let go = export!(d, "ContinueNoncontinuableCaught", fn(i32) -> i32);
    assert_eq!(d.run(ARBITRARY, || go(0xC000_0044_u32 as i32)).unwrap() as u32, 0xC000_0025);
    let [code, flags, ..] = d.read_u64s::<6>("Seen");
    assert_eq!((code, flags), (0xC000_0025, 1), "noncontinuable itself");
}

#[test]
fn a_filter_that_always_continues_recurses_until_the_stack_overflows_as_on_windows() {
    let d = load();
    let go = export!(d, "ContinueAlways", fn(i32) -> i32);
    let b = d.run(ARBITRARY, || go(0xC000_0044_u32 as i32)).unwrap_err();
    assert_eq!((b.code, b.parameters[0]), (BugCheckCode::UNEXPECTED_KERNEL_MODE_TRAP, 8));
}

#[test]
fn an_invalid_opcode_is_caught_as_0xc000001d() {
    let d = load();
    let illegal = export!(d, "Illegal", fn() -> i32);
    assert_eq!(d.run(ARBITRARY, || illegal()).unwrap() as u32, 0xC000_001D);
    let [code, _, address, count, ..] = d.read_u64s::<6>("Seen");
    assert_eq!((code, count), (0xC000_001D, 0));
    // SAFETY: the address is in the image's mapped code.
    assert_eq!(unsafe { std::ptr::read_volatile(address as *const [u8; 2]) }, [0x0F, 0x0B], "the address is the ud2");
}

#[test]
fn an_unhandled_fault_is_the_bugcheck_with_its_parameters() {
    let d = load();
    let read = export!(d, "ReadNoTry", fn(*const i32) -> i32);
    let b = d.run(ARBITRARY, || read(d.user(0x50000))).unwrap_err();
    assert_eq!(b.code, BugCheckCode::KERNEL_MODE_EXCEPTION_NOT_HANDLED);
    assert_eq!(b.parameters, [u64::from(STATUS_ACCESS_VIOLATION), d.address("ReadNoTry"), 0, 0]);
}

#[test]
fn an_unhandled_fault_in_a_system_thread_is_0x7e_with_record_and_context() {
    let d = load();
    let read = export!(d, "ReadNoTry", fn(*const i32) -> i32);
    let b = d.run(seh::ThreadKind::System, || read(std::ptr::null())).unwrap_err();
    assert_eq!(b.code, BugCheckCode::SYSTEM_THREAD_EXCEPTION_NOT_HANDLED);
    assert_eq!(&b.parameters[..2], &[u64::from(STATUS_ACCESS_VIOLATION), d.address("ReadNoTry")]);
    let stack = d.machine.processor(0).stack();
    let (low, high) = (stack.base.get(), stack.base.get() + stack.size);
    for p in &b.parameters[2..] {
        assert!((low..high).contains(p), "record/context {p:#x} on the kernel stack {low:#x}..{high:#x}");
    }
}

#[test]
fn integer_divide_by_zero_is_caught_as_0xc0000094() {
    let d = load();
    let divide = export!(d, "Divide", fn(i32, i32) -> i32);
    assert_eq!(d.run(ARBITRARY, || divide(7, 0)).unwrap() as u32, 0xC000_0094);
    let [code, _, address, count, ..] = d.read_u64s::<6>("Seen");
    assert_eq!((code, count), (0xC000_0094, 0));
    let function = d.address("Divide");
    assert!((function..function + 0x40).contains(&address));
    assert_eq!(d.run(ARBITRARY, || divide(7, 2)).unwrap(), 3);
}

#[test]
fn a_breakpoint_is_caught_as_0x80000003_at_the_int3() {
    let d = load();
    let brk = export!(d, "Break", fn() -> i32);
    assert_eq!(d.run(ARBITRARY, || brk()).unwrap() as u32, 0x8000_0003);
    let [code, _, address, count, info0, _] = d.read_u64s::<6>("Seen");
    assert_eq!((code, count, info0), (0x8000_0003, 1, 0));
    // SAFETY: the address is in the image's mapped code.
    assert_eq!(unsafe { std::ptr::read_volatile(address as *const u8) }, 0xCC, "the address is the int3");
}

#[test]
fn rtl_raise_exception_reaches_the_driver_handler_with_its_record() {
    let d = load();
    let raise = export!(d, "Raise", fn(i32) -> i32);
    assert_eq!(d.run(ARBITRARY, || raise(0xE000_0001_u32 as i32)).unwrap() as u32, 0xE000_0001);
    let [code, flags, address, count, info0, _] = d.read_u64s::<6>("Seen");
    assert_eq!((code, flags, count, info0), (0xE000_0001, 0, 1, 0x5eed));
    let function = d.address("Raise");
    assert!((function..function + 0x100).contains(&address), "the return address of the call");
}

#[test]
fn an_unhandled_raise_is_0x1e_with_the_exception_parameters() {
    let d = load();
    let raise = export!(d, "RaiseUnhandled", fn(i32) -> i32);
    let b = d.run(ARBITRARY, || raise(0xE000_0002_u32 as i32)).unwrap_err();
    assert_eq!(b.code, BugCheckCode::KMODE_EXCEPTION_NOT_HANDLED);
    assert_eq!(b.parameters[0], 0xE000_0002);
    assert_eq!(&b.parameters[2..], &[0x11, 0x22]);
    let function = d.address("RaiseUnhandled");
    assert!((function..function + 0x100).contains(&b.parameters[1]));
}

#[test]
fn a_fault_inside_a_filter_is_reported_not_a_host_crash() {
    let d = load();
    let go = export!(d, "FaultInFilter", fn(*const i32) -> i32);
    let b = d.run(ARBITRARY, || go(d.user(0x60000))).unwrap_err();
    assert_eq!(b.code, BugCheckCode::KERNEL_MODE_EXCEPTION_NOT_HANDLED);
    assert_eq!(b.parameters[0], u64::from(STATUS_ACCESS_VIOLATION));
}

#[test]
fn a_fault_inside_a_filter_is_caught_by_a_caller_and_the_finally_between_runs() {
    let d = load();
    let go = export!(d, "NestedCaught", fn(*const i32) -> i32);
    assert_eq!(d.run(ARBITRARY, || go(d.user(0x80000))).unwrap() as u32, STATUS_ACCESS_VIOLATION);
    assert_eq!(d.log(), [7, 9], "the __finally between runs (abnormally) before the __except block");
    let [code, _, _, count, access, at] = d.read_u64s::<6>("Seen");
    assert_eq!((code, count, access, at), (u64::from(STATUS_ACCESS_VIOLATION), 2, 0, 0x80000));
}

/// The second fault is searched from the first fault's frame again (its frames are still
/// on the stack) and taken by the same `__except`; the unwind for it collides with the
/// first one and takes over where that one was, past the `__finally` that faulted.
#[test]
fn a_fault_inside_a_finally_during_an_unwind_is_caught_by_a_collided_unwind() {
    let d = load();
    let go = export!(d, "FaultInFinally", fn(*mut i32) -> i32);
    assert_eq!(d.run(ARBITRARY, || go(d.user(0x90000))).unwrap(), -1);
    assert!(d.machine.stopped().is_none());
}

#[test]
fn a_privileged_instruction_is_caught_as_0xc0000096() {
    let d = load();
    let go = export!(d, "Privileged", fn() -> i32);
    assert_eq!(d.run(ARBITRARY, || go()).unwrap() as u32, 0xC000_0096);
    let [code, _, address, count, ..] = d.read_u64s::<6>("Seen");
    assert_eq!((code, count), (0xC000_0096, 0));
    // SAFETY: the address is in the image's mapped code.
    assert_eq!(unsafe { std::ptr::read_volatile(address as *const u8) }, 0xF4, "the address is the hlt");
}

#[test]
fn a_non_canonical_address_is_an_access_violation_at_all_ones() {
    let d = load();
    let go = export!(d, "NonCanonical", fn() -> i32);
    assert_eq!(d.run(ARBITRARY, || go()).unwrap() as u32, STATUS_ACCESS_VIOLATION);
    let [code, _, _, count, access, at] = d.read_u64s::<6>("Seen");
    assert_eq!((code, count, access, at), (u64::from(STATUS_ACCESS_VIOLATION), 2, 0, u64::MAX));
}

#[test]
fn cr8_reads_and_writes_are_the_irql() {
    let d = load();
    let go = export!(d, "Cr8", fn() -> i32);
    assert_eq!(d.run(ARBITRARY, || go()).unwrap(), 2, "PASSIVE_LEVEL read, then DISPATCH_LEVEL after the write");
    assert_eq!(d.machine.processor(0).irql(), Irql::PASSIVE, "the last write lowered it again");
    let raise = export!(d, "RaiseToDispatch", fn() -> u64);
    let irql = d.run(ARBITRARY, || {
        raise();
        d.machine.processor(0).irql()
    });
    assert_eq!(irql.unwrap(), Irql::DISPATCH);
}

#[test]
fn rtl_unwind_ex_called_by_a_driver_runs_the_finally_and_resumes_at_the_target_with_the_value() {
    let d = load();
    let top = export!(d, "Top", fn() -> i64);
    assert_eq!(d.run(ARBITRARY, || top()).unwrap(), 77, "Middle's call returned 77 to Top");
    assert_eq!(d.log(), [61, 63], "Middle's __finally ran abnormally, then Top went on");
}

/// How much of the kernel stack a call of `f` used: the stack is painted first and the
/// lowest byte changed is found afterwards.
fn stack_used(d: &Driver, f: impl FnOnce()) -> usize {
    const PAINT: u8 = 0xA5;
    let stack = d.machine.processor(0).stack();
    let base = d.machine.space().host_addr(stack.base);
    let size = usize::try_from(stack.size).unwrap();
    for i in 0..size {
        // SAFETY: the processor's kernel stack is mapped and idle (no call runs on it).
        unsafe { std::ptr::write_volatile((base + i) as *mut u8, PAINT) };
    }
    d.run(ARBITRARY, f).unwrap();
    // SAFETY: as above, after the call.
    let lowest = (0..size).find(|&i| unsafe { std::ptr::read_volatile((base + i) as *const u8) } != PAINT);
    size - lowest.unwrap_or(size)
}

#[test]
fn dispatching_a_handled_fault_fits_on_an_x86_kernel_stack() {
    let d = load();
    let order = export!(d, "Order", fn(*mut i32) -> i32);
    let used = stack_used(&d, || assert_eq!(order(d.user(0x20000)), 5));
    // Filters, an unwind through two frames with two __finally blocks, the except block:
    // all of it within 12 KB, the kernel stack of an x86 machine (on which drivers are
    // still x64 code), with room to spare below the dispatcher's reservation.
    assert!(used + 2048 <= 12 << 10, "{used} bytes of kernel stack");
    assert!(used <= ntmem_host::exception::DISPATCH_STACK + 2048, "{used} bytes");
}

#[test]
fn a_driver_walks_its_own_stack_with_capture_lookup_and_virtual_unwind() {
    let d = load();
    let top = export!(d, "WalkTop", fn(i32) -> i32);
    assert_eq!(d.run(ARBITRARY, || top(4)).unwrap(), (3 * 10 + 5) * 2, "three frames, then the ntmem caller");
    let begins = d.read_u64s::<3>("FrameBegins");
    assert_eq!(begins, [d.rva("Walk"), d.rva("WalkCaller"), d.rva("WalkTop")].map(u64::from));
}
