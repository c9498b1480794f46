/*
 * The C half of DbgPrint, DbgPrintEx, vDbgPrintEx and vDbgPrintExWithPrefix: C
 * varargs cannot be read from Rust, so these start the va_list and hand it to
 * ntmem_wdk_debug_print (crates/wdk/src/dbg.rs), which formats it with Windows'
 * format language and reads each argument back through ntmem_wdk_va_next. Every
 * integer or pointer argument takes one 8-byte slot in the x86-64 conventions, as
 * in Microsoft's x64 convention, so one slot read serves every size.
 */
#include <stdarg.h>

#include <wdm.h>

ULONG ntmem_wdk_debug_print(ULONG ComponentId, ULONG Level, PCSTR Prefix, PCSTR Format, va_list *Args);

unsigned long long ntmem_wdk_va_next(va_list *Args)
{
    return va_arg(*Args, unsigned long long);
}

ULONG DbgPrint(PCSTR Format, ...)
{
    va_list args;
    va_start(args, Format);
    ULONG status = ntmem_wdk_debug_print(DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL, NULL, Format, &args);
    va_end(args);
    return status;
}

ULONG DbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, ...)
{
    va_list args;
    va_start(args, Format);
    ULONG status = ntmem_wdk_debug_print(ComponentId, Level, NULL, Format, &args);
    va_end(args);
    return status;
}

ULONG vDbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, va_list arglist)
{
    va_list args;
    va_copy(args, arglist);
    ULONG status = ntmem_wdk_debug_print(ComponentId, Level, NULL, Format, &args);
    va_end(args);
    return status;
}

ULONG vDbgPrintExWithPrefix(PCSTR Prefix, ULONG ComponentId, ULONG Level, PCSTR Format, va_list arglist)
{
    va_list args;
    va_copy(args, arglist);
    ULONG status = ntmem_wdk_debug_print(ComponentId, Level, Prefix, Format, &args);
    va_end(args);
    return status;
}
