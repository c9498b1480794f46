//! Builds the C half of the WDK boundary: the variadic entry points of
//! `DbgPrint` and `DbgPrintEx` (`c/dbgprint.c`), which Rust cannot define.

fn main() {
    println!("cargo:rerun-if-changed=c/dbgprint.c");
    cc::Build::new().file("c/dbgprint.c").warnings(true).extra_warnings(true).compile("ntmem_wdk_c");
}
