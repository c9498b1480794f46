/*
 * DbgPrint: formats its arguments with the host's vsnprintf and hands the text to
 * the Rust sink (crates/wdk/src/dbg.rs). Windows truncates a DbgPrint message to
 * 512 bytes; so does ntmem. Runs on the simulated kernel stack: a 512-byte buffer.
 */
#include <stdarg.h>
#include <stdio.h>

#include <wdm.h>

void ntmem_wdk_debug_sink(const char *text, SIZE_T length);

ULONG DbgPrint(PCSTR Format, ...)
{
    char buffer[512];
    va_list args;
    va_start(args, Format);
    int n = vsnprintf(buffer, sizeof buffer, Format, args);
    va_end(args);
    if (n < 0) {
        return (ULONG)STATUS_INVALID_PARAMETER;
    }
    SIZE_T length = (SIZE_T)n < sizeof buffer ? (SIZE_T)n : sizeof buffer - 1;
    ntmem_wdk_debug_sink(buffer, length);
    return (ULONG)STATUS_SUCCESS;
}
