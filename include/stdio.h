/*
 * stdio.h -- the C run time's bounded printf routines ntoskrnl.exe exports to
 * drivers (written for ntmem from Microsoft's C run-time documentation). The
 * format language is Windows' (as DbgPrint reads it: %wZ, %ws, %S, %I64x, ...);
 * wchar_t is 16 bits. The result is the count of characters written, NUL-terminated
 * when there is room; -1 when it was cut at Count characters (no NUL).
 * ntstrsafe.h's printf routines are the safer choice.
 */
#ifndef NTMEM_STDIO_H
#define NTMEM_STDIO_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

__declspec(dllimport) int _vsnprintf(char *Buffer, size_t Count, const char *Format, va_list ArgList);
__declspec(dllimport) int _vsnwprintf(wchar_t *Buffer, size_t Count, const wchar_t *Format, va_list ArgList);
__declspec(dllimport) int _snprintf(char *Buffer, size_t Count, const char *Format, ...);
__declspec(dllimport) int _snwprintf(wchar_t *Buffer, size_t Count, const wchar_t *Format, ...);
/* Unbounded: the buffer must hold the result and its NUL. swprintf is the legacy
 * form ntoskrnl exports (no count). */
__declspec(dllimport) int sprintf(char *Buffer, const char *Format, ...);
__declspec(dllimport) int swprintf(wchar_t *Buffer, const wchar_t *Format, ...);

#ifdef __cplusplus
}
#endif

#endif /* NTMEM_STDIO_H */
