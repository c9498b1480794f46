//! Compiles the host layer's C glue (`c/guard.c`): the `sigsetjmp` landing point and the
//! stack switch of guarded calls. `_FORTIFY_SOURCE` is undefined because glibc's fortified
//! `longjmp` (`__longjmp_chk`) refuses jumps from one stack to another, which is exactly
//! what an escape from a kernel stack or the signal stack does.

fn main() {
    println!("cargo:rerun-if-changed=c/guard.c");
    cc::Build::new()
        .file("c/guard.c")
        .flag("-U_FORTIFY_SOURCE")
        .flag_if_supported("-fno-omit-frame-pointer")
        .warnings(true)
        .extra_warnings(true)
        .compile("ntmem_host_guard");
}
