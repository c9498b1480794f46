/*
 * The variadic entry points of _snprintf, _snwprintf, sprintf and swprintf (the
 * latter two unbounded: Count is SIZE_MAX): as c/dbgprint.c, they
 * start the Microsoft x64 va_list and hand its address to crates/wdk/src/crt_printf.rs.
 */
typedef unsigned long long size_t;
typedef unsigned short wchar16;

int ntmem_wdk_vsnprintf(char *Buffer, size_t Count, const char *Format, const void *Args);
int ntmem_wdk_vsnwprintf(wchar16 *Buffer, size_t Count, const wchar16 *Format, const void *Args);

__attribute__((ms_abi)) int ntmem__snprintf(char *Buffer, size_t Count, const char *Format, ...)
{
    __builtin_ms_va_list args;
    __builtin_ms_va_start(args, Format);
    int written = ntmem_wdk_vsnprintf(Buffer, Count, Format, args);
    __builtin_ms_va_end(args);
    return written;
}

__attribute__((ms_abi)) int ntmem__snwprintf(wchar16 *Buffer, size_t Count, const wchar16 *Format, ...)
{
    __builtin_ms_va_list args;
    __builtin_ms_va_start(args, Format);
    int written = ntmem_wdk_vsnwprintf(Buffer, Count, Format, args);
    __builtin_ms_va_end(args);
    return written;
}

__attribute__((ms_abi)) int ntmem_sprintf(char *Buffer, const char *Format, ...)
{
    __builtin_ms_va_list args;
    __builtin_ms_va_start(args, Format);
    int written = ntmem_wdk_vsnprintf(Buffer, (size_t)-1, Format, args);
    __builtin_ms_va_end(args);
    return written;
}

__attribute__((ms_abi)) int ntmem_swprintf(wchar16 *Buffer, const wchar16 *Format, ...)
{
    __builtin_ms_va_list args;
    __builtin_ms_va_start(args, Format);
    int written = ntmem_wdk_vsnwprintf(Buffer, (size_t)-1, Format, args);
    __builtin_ms_va_end(args);
    return written;
}
