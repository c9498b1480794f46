/*
 * The variadic entry points of DbgPrint and DbgPrintEx. Drivers call them with
 * Microsoft x64 varargs, which Rust cannot define: these start the Microsoft
 * va_list (GCC's ms_abi variadics spill rcx, rdx, r8 and r9 to their home slots,
 * so the list is one run of 8-byte slots, as in Windows) and hand its address to
 * crates/wdk/src/dbg.rs, which formats the message with Windows' format language
 * and reads each argument slot itself. vDbgPrintEx and vDbgPrintExWithPrefix take
 * the list as a pointer and are plain Rust.
 */
typedef unsigned int ULONG;
typedef const char *PCSTR;

ULONG ntmem_wdk_dbg_print(PCSTR Format, const void *Args);
ULONG ntmem_wdk_dbg_print_ex(ULONG ComponentId, ULONG Level, PCSTR Format, const void *Args);

__attribute__((ms_abi)) ULONG ntmem_DbgPrint(PCSTR Format, ...)
{
    __builtin_ms_va_list args;
    __builtin_ms_va_start(args, Format);
    ULONG status = ntmem_wdk_dbg_print(Format, args);
    __builtin_ms_va_end(args);
    return status;
}

__attribute__((ms_abi)) ULONG ntmem_DbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, ...)
{
    __builtin_ms_va_list args;
    __builtin_ms_va_start(args, Format);
    ULONG status = ntmem_wdk_dbg_print_ex(ComponentId, Level, Format, args);
    __builtin_ms_va_end(args);
    return status;
}
