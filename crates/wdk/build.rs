//! Builds the C half of the WDK boundary: `DbgPrint`, which formats C varargs.

fn main() {
    println!("cargo:rerun-if-changed=c/dbgprint.c");
    println!("cargo:rerun-if-changed=../../include/wdm.h");
    cc::Build::new()
        .file("c/dbgprint.c")
        .include("../../include")
        .warnings(true)
        .extra_warnings(true)
        .compile("ntmem_wdk_c");
}
