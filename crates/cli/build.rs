//! Links `ntmem` so drivers can call it: `--export-dynamic` puts the WDK routines
//! (crate `ntmem-wdk`) in the executable's dynamic symbol table, where a driver's
//! undefined symbols resolve when the driver host `dlopen`s it.

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic");
}
