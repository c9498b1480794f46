//! Builds the C half of the WDK boundary: `DbgPrint`, which formats C varargs, and
//! the structured-exception machinery behind `__try` (`c/seh.c`). `_FORTIFY_SOURCE`
//! is undefined because glibc's fortified `longjmp` refuses the jump from the
//! signal stack to a kernel stack that delivering a fault to a `__try` makes.

fn main() {
    // The c_vs_rust benchmark loads a C driver, whose WDK symbols resolve
    // against the benchmark executable's dynamic symbol table.
    println!("cargo:rustc-link-arg-benches=-Wl,--export-dynamic");
    println!("cargo:rerun-if-changed=c/dbgprint.c");
    println!("cargo:rerun-if-changed=c/seh.c");
    println!("cargo:rerun-if-changed=../../include/wdm.h");
    cc::Build::new()
        .file("c/dbgprint.c")
        .file("c/seh.c")
        .include("../../include")
        .flag("-U_FORTIFY_SOURCE")
        .warnings(true)
        .extra_warnings(true)
        .compile("ntmem_wdk_c");
}
