/*
 * Structured exception handling for C drivers: the out-of-line half of the
 * __try / __except / __finally macros in include/wdm.h, and ExRaiseStatus.
 *
 * Each thread has a list of NTMEM_SEH_FRAMEs, innermost first, living in the
 * frames of driver functions. A frame records the host's guarded call it was
 * pushed in (ntmem_wdk_guard_token); an exception goes to the innermost frame
 * only if that frame belongs to the innermost guarded call, so a raise never
 * jumps out of a guarded call into driver code that called it. With no such
 * frame the exception is unhandled: ntmem_wdk_unhandled (crates/wdk/src/seh.rs)
 * stops the machine.
 *
 * Landing points are set with ISO setjmp in the driver (no signal mask saved,
 * no system call per __try). A fault delivered from the SIGSEGV handler unblocks
 * SIGSEGV and SIGBUS itself before jumping. Built with -U_FORTIFY_SOURCE: glibc's
 * fortified longjmp refuses the jump from the signal stack to a kernel stack.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>

#include <wdm.h>

/* crates/wdk/src/seh.rs */
ULONG_PTR ntmem_wdk_guard_token(void);
__attribute__((noreturn)) void ntmem_wdk_unhandled(const EXCEPTION_RECORD *record);

static __thread NTMEM_SEH_FRAME *head;
/* The exception being dispatched, for filters and handlers. */
static __thread EXCEPTION_RECORD current;
static __thread EXCEPTION_POINTERS pointers;
/* Set by a filter that chose its handler; read and cleared right after the block. */
static __thread LONG caught;
/* Set when an exception lands in a __finally frame; read by the __finally's loop. */
static __thread LONG unwinding;

void ntmem_seh_enter(NTMEM_SEH_FRAME *frame)
{
    frame->Prev = head;
    frame->Guard = ntmem_wdk_guard_token();
    frame->Active = 1;
    head = frame;
}

void ntmem_seh_leave(NTMEM_SEH_FRAME *frame)
{
    if (frame->Active) {
        frame->Active = 0;
        head = frame->Prev;
    }
}

/* Whether this thread has a frame an exception raised now would land in. */
int ntmem_seh_has_frame(void)
{
    return head != NULL && head->Guard == ntmem_wdk_guard_token();
}

/* Pops the innermost frame and jumps to it with *record, or stops the machine. */
__attribute__((noreturn)) void ntmem_seh_raise_record(const EXCEPTION_RECORD *record)
{
    if (record != &current)
        current = *record;
    current.ExceptionRecord = NULL;
    if (!ntmem_seh_has_frame())
        ntmem_wdk_unhandled(&current);
    NTMEM_SEH_FRAME *frame = head;
    frame->Active = 0;
    head = frame->Prev;
    longjmp(frame->Landing, 1);
}

/* A noncontinuable exception with no parameters, as RtlRaiseStatus raises. */
__attribute__((noreturn)) void ntmem_seh_raise_status(NTSTATUS status, void *address)
{
    EXCEPTION_RECORD record = { 0 };
    record.ExceptionCode = status;
    record.ExceptionFlags = EXCEPTION_NONCONTINUABLE;
    record.ExceptionAddress = address;
    ntmem_seh_raise_record(&record);
}

/*
 * From the SIGSEGV handler: an access violation at a user address. Returns only
 * when no frame would take it (the host then stops the machine).
 */
void ntmem_seh_deliver(NTSTATUS code, ULONG_PTR address, ULONG_PTR access, ULONG_PTR target)
{
    if (!ntmem_seh_has_frame())
        return;
    EXCEPTION_RECORD record = { 0 };
    record.ExceptionCode = code;
    record.ExceptionAddress = (PVOID)address;
    record.NumberParameters = 2;
    record.ExceptionInformation[0] = access;
    record.ExceptionInformation[1] = target;
    sigset_t faults;
    sigemptyset(&faults);
    sigaddset(&faults, SIGSEGV);
    sigaddset(&faults, SIGBUS);
    sigprocmask(SIG_UNBLOCK, &faults, NULL);
    ntmem_seh_raise_record(&record);
}

void ntmem_seh_filter(LONG disposition)
{
    if (disposition > 0) {
        caught = 1;
        return;
    }
    if (disposition == EXCEPTION_CONTINUE_SEARCH)
        ntmem_seh_raise_record(&current);
    /* EXCEPTION_CONTINUE_EXECUTION (or any other negative value): see wdm.h. */
    EXCEPTION_RECORD record = { 0 };
    EXCEPTION_RECORD original = current;
    record.ExceptionCode = STATUS_NONCONTINUABLE_EXCEPTION;
    record.ExceptionFlags = EXCEPTION_NONCONTINUABLE;
    record.ExceptionAddress = original.ExceptionAddress;
    ntmem_seh_raise_record(&record);
}

LONG ntmem_seh_caught(void)
{
    LONG c = caught;
    caught = 0;
    return c;
}

void ntmem_seh_unwinding(void)
{
    unwinding = 1;
}

NTMEM_SEH_FINALLY ntmem_seh_finally_begin(void)
{
    NTMEM_SEH_FINALLY f = { 0 };
    f.Run = 1;
    f.Unwinding = unwinding;
    unwinding = 0;
    if (f.Unwinding)
        f.Record = current;
    return f;
}

void ntmem_seh_finally_end(NTMEM_SEH_FINALLY *f)
{
    f->Run = 0;
    if (f->Unwinding)
        ntmem_seh_raise_record(&f->Record);
}

NTSTATUS ntmem_seh_exception_code(void)
{
    return current.ExceptionCode;
}

PEXCEPTION_POINTERS ntmem_seh_exception_pointers(void)
{
    pointers.ExceptionRecord = &current;
    pointers.ContextRecord = NULL;
    return &pointers;
}

/* The thread's innermost frame, saved and restored around calls into driver code
 * (a bugcheck leaves frames of abandoned driver code on the list). */
void *ntmem_seh_chain(void)
{
    return head;
}

void ntmem_seh_set_chain(void *chain)
{
    head = chain;
    caught = 0;
    unwinding = 0;
}

/*
 * Runs entry(arg) inside a frame, for Rust callers. Returns 0 when entry returned,
 * 1 when an exception landed (then *out is its record).
 */
int ntmem_seh_call(void (*entry)(void *), void *arg, EXCEPTION_RECORD *out)
{
    NTMEM_SEH_FRAME frame;
    ntmem_seh_enter(&frame);
    if (setjmp(frame.Landing) == 0) {
        entry(arg);
        ntmem_seh_leave(&frame);
        return 0;
    }
    *out = current;
    return 1;
}

void ExRaiseStatus(NTSTATUS Status)
{
    ntmem_seh_raise_status(Status, __builtin_return_address(0));
}

void ExRaiseAccessViolation(void)
{
    ntmem_seh_raise_status(STATUS_ACCESS_VIOLATION, __builtin_return_address(0));
}

void ExRaiseDatatypeMisalignment(void)
{
    ntmem_seh_raise_status(STATUS_DATATYPE_MISALIGNMENT, __builtin_return_address(0));
}
