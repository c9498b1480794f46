//! Builds the C half of the WDK boundary: the variadic entry points of
//! `DbgPrint` and `DbgPrintEx` (`c/dbgprint.c`) and of `_snprintf` and
//! `_snwprintf` (`c/printf.c`), which Rust cannot define.

fn main() {
    println!("cargo:rerun-if-changed=c/dbgprint.c");
    println!("cargo:rerun-if-changed=c/printf.c");
    cc::Build::new().file("c/dbgprint.c").file("c/printf.c").warnings(true).extra_warnings(true).compile("ntmem_wdk_c");
}
