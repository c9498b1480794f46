/*
 * ntmem host glue: the landing point of guarded calls and their stack switch.
 *
 * Rust never calls sigsetjmp itself: a function that returns twice breaks the assumptions
 * of the Rust compiler. Instead ntmem_guard_run() sets the landing point in its own frame
 * and calls the Rust entry from there, optionally on another stack. When an escape
 * siglongjmp()s back, ntmem_guard_run() returns 1 and its epilogue restores the caller's
 * callee-saved registers, so to Rust it is an ordinary call that returned once.
 *
 * Built with -U_FORTIFY_SOURCE: __longjmp_chk rejects jumps between stacks.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <ucontext.h>

/* Must match JMPBUF_BYTES / the alignment of JmpBuf in src/guard.rs. */
#define NTMEM_JMPBUF_BYTES 512
_Static_assert(sizeof(sigjmp_buf) <= NTMEM_JMPBUF_BYTES, "sigjmp_buf larger than ntmem's buffer");
_Static_assert(_Alignof(sigjmp_buf) <= 16, "sigjmp_buf alignment larger than ntmem's buffer");

typedef void (*ntmem_entry)(void *arg);

struct ntmem_start {
    ntmem_entry entry;
    void *arg;
};

/* makecontext() passes int arguments only: the pointer travels as two halves. */
static void ntmem_start_on_stack(unsigned int hi, unsigned int lo)
{
    struct ntmem_start *start = (struct ntmem_start *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
    start->entry(start->arg);
    /* Returning resumes uc_link: the caller's context saved by swapcontext(). */
}

size_t ntmem_jmpbuf_size(void)
{
    return sizeof(sigjmp_buf);
}

/*
 * Sets a landing point in env (a buffer of NTMEM_JMPBUF_BYTES, 16-aligned), then runs
 * entry(arg): on the current stack if stack_base is NULL, else on [stack_base,
 * stack_base + stack_size). Returns 0 when entry returned, 1 when ntmem_guard_escape(env)
 * jumped back, -1 when the context switch could not be set up (entry did not run).
 */
int ntmem_guard_run(void *env, void *stack_base, size_t stack_size, ntmem_entry entry, void *arg)
{
    ucontext_t caller;
    ucontext_t callee;
    struct ntmem_start start = { entry, arg };

    if (sigsetjmp(*(sigjmp_buf *)env, 1) != 0)
        return 1;
    if (stack_base == NULL) {
        entry(arg);
        return 0;
    }
    if (getcontext(&callee) != 0)
        return -1;
    callee.uc_stack.ss_sp = stack_base;
    callee.uc_stack.ss_size = stack_size;
    callee.uc_stack.ss_flags = 0;
    callee.uc_link = &caller;
    makecontext(&callee, (void (*)(void))ntmem_start_on_stack, 2,
                (unsigned int)((uintptr_t)&start >> 32), (unsigned int)(uintptr_t)&start);
    if (swapcontext(&caller, &callee) != 0)
        return -1;
    return 0;
}

/* Jumps to the landing point set in env, restoring the signal mask saved there. */
__attribute__((noreturn)) void ntmem_guard_escape(void *env)
{
    siglongjmp(*(sigjmp_buf *)env, 1);
}
