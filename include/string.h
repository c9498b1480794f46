/*
 * string.h -- the C run-time string routines ntoskrnl.exe exports to drivers
 * (written for ntmem from Microsoft's C run-time documentation). Wide strings are
 * wchar_t, 16 bits on Windows. Case-insensitive forms fold ASCII letters only, as
 * the kernel's "C" locale does. dontuse.h marks the unbounded ones deprecated in the
 * WDK; ntstrsafe.h's bounded routines are the safer choice.
 */
#ifndef NTMEM_STRING_H
#define NTMEM_STRING_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

__declspec(dllimport) void *memcpy(void *Destination, const void *Source, size_t Count);
__declspec(dllimport) void *memmove(void *Destination, const void *Source, size_t Count);
__declspec(dllimport) void *memset(void *Destination, int Value, size_t Count);
__declspec(dllimport) int memcmp(const void *Buffer1, const void *Buffer2, size_t Count);
__declspec(dllimport) void *memchr(const void *Buffer, int Value, size_t Count);

__declspec(dllimport) size_t strlen(const char *String);
__declspec(dllimport) size_t strnlen(const char *String, size_t MaxCount);
__declspec(dllimport) int strcmp(const char *String1, const char *String2);
__declspec(dllimport) int strncmp(const char *String1, const char *String2, size_t Count);
__declspec(dllimport) int _stricmp(const char *String1, const char *String2);
__declspec(dllimport) int _strnicmp(const char *String1, const char *String2, size_t Count);
__declspec(dllimport) char *strcpy(char *Destination, const char *Source);
__declspec(dllimport) char *strncpy(char *Destination, const char *Source, size_t Count);
__declspec(dllimport) char *strcat(char *Destination, const char *Source);
__declspec(dllimport) char *strncat(char *Destination, const char *Source, size_t Count);
__declspec(dllimport) char *strchr(const char *String, int Character);
__declspec(dllimport) char *strrchr(const char *String, int Character);
__declspec(dllimport) char *strstr(const char *String, const char *SubString);

__declspec(dllimport) size_t wcslen(const wchar_t *String);
__declspec(dllimport) size_t wcsnlen(const wchar_t *String, size_t MaxCount);
__declspec(dllimport) int wcscmp(const wchar_t *String1, const wchar_t *String2);
__declspec(dllimport) int wcsncmp(const wchar_t *String1, const wchar_t *String2, size_t Count);
__declspec(dllimport) int _wcsicmp(const wchar_t *String1, const wchar_t *String2);
__declspec(dllimport) int _wcsnicmp(const wchar_t *String1, const wchar_t *String2, size_t Count);
__declspec(dllimport) wchar_t *wcscpy(wchar_t *Destination, const wchar_t *Source);
__declspec(dllimport) wchar_t *wcsncpy(wchar_t *Destination, const wchar_t *Source, size_t Count);
__declspec(dllimport) wchar_t *wcscat(wchar_t *Destination, const wchar_t *Source);
__declspec(dllimport) wchar_t *wcsncat(wchar_t *Destination, const wchar_t *Source, size_t Count);
__declspec(dllimport) wchar_t *wcschr(const wchar_t *String, wchar_t Character);
__declspec(dllimport) wchar_t *wcsrchr(const wchar_t *String, wchar_t Character);
__declspec(dllimport) wchar_t *wcsstr(const wchar_t *String, const wchar_t *SubString);

__declspec(dllimport) int toupper(int Character);
__declspec(dllimport) int tolower(int Character);
__declspec(dllimport) wchar_t towupper(wchar_t Character);
__declspec(dllimport) wchar_t towlower(wchar_t Character);

#ifdef __cplusplus
}
#endif

#endif /* NTMEM_STRING_H */
