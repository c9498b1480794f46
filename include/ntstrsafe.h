/*
 * ntstrsafe.h -- ntmem's bounded string routines for drivers, written for ntmem
 * from Microsoft's documentation of ntstrsafe.h (learn.microsoft.com, "ntstrsafe.h
 * header" and the page of each routine). As in the WDK they are inline functions
 * compiled into the driver; the printf forms call the exported _vsnprintf and
 * _vsnwprintf (stdio.h).
 *
 * Cch forms count characters, Cb forms bytes; A forms are char, W forms wchar_t
 * (16 bits). Results:
 *   STATUS_SUCCESS          the whole result fit (NUL-terminated).
 *   STATUS_BUFFER_OVERFLOW  the result was cut to fit and NUL-terminated.
 *   STATUS_INVALID_PARAMETER a size of 0 or above NTSTRSAFE_MAX_CCH characters, a
 *                           destination (Cat) or a string (Length) with no NUL
 *                           within its size, a NULL string (Length), or a
 *                           malformed UNICODE_STRING.
 * The RtlUnicodeString* forms work on counted strings: Length is set, no NUL is
 * added, and a UNICODE_STRING is malformed when Length or MaximumLength is odd,
 * Length > MaximumLength, MaximumLength > NTSTRSAFE_UNICODE_STRING_MAX_CCH
 * characters, or Buffer is NULL with a nonzero size.
 */
#ifndef NTMEM_NTSTRSAFE_H
#define NTMEM_NTSTRSAFE_H

#include "wdm.h"
#include "stdio.h"

#define NTSTRSAFE_MAX_CCH 2147483647
#define NTSTRSAFE_UNICODE_STRING_MAX_CCH (0xffff / sizeof(wchar_t))

typedef char *NTSTRSAFE_PSTR;
typedef const char *NTSTRSAFE_PCSTR;
typedef wchar_t *NTSTRSAFE_PWSTR;
typedef const wchar_t *NTSTRSAFE_PCWSTR;

#define NTSTRSAFEDDI static __inline NTSTATUS

/* The generic workers, written once per character type. */
#define NTMEM_STRSAFE_WORKERS(T, S)                                                                    \
    static __inline NTSTATUS NtmemStrsafeLength##S(const T *psz, size_t cchMax, size_t *pcchLength)     \
    {                                                                                                  \
        size_t n = 0;                                                                                  \
        NTSTATUS status = STATUS_SUCCESS;                                                              \
        if (psz == NULL || cchMax > NTSTRSAFE_MAX_CCH) {                                               \
            status = STATUS_INVALID_PARAMETER;                                                         \
        } else {                                                                                       \
            while (n < cchMax && psz[n] != 0) n++;                                                     \
            if (n == cchMax) status = STATUS_INVALID_PARAMETER;                                        \
        }                                                                                              \
        if (pcchLength != NULL) *pcchLength = NT_SUCCESS(status) ? n : 0;                              \
        return status;                                                                                 \
    }                                                                                                  \
    static __inline NTSTATUS NtmemStrsafeCopy##S(T *pszDest, size_t cchDest, const T *pszSrc, size_t cchToCopy) \
    {                                                                                                  \
        size_t i = 0;                                                                                  \
        if (cchDest == 0 || cchDest > NTSTRSAFE_MAX_CCH) return STATUS_INVALID_PARAMETER;              \
        while (i + 1 < cchDest && i < cchToCopy && pszSrc[i] != 0) {                                   \
            pszDest[i] = pszSrc[i];                                                                    \
            i++;                                                                                       \
        }                                                                                              \
        pszDest[i] = 0;                                                                                \
        return (i < cchToCopy && pszSrc[i] != 0) ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS;           \
    }                                                                                                  \
    static __inline NTSTATUS NtmemStrsafeCat##S(T *pszDest, size_t cchDest, const T *pszSrc, size_t cchToAppend) \
    {                                                                                                  \
        size_t used;                                                                                   \
        if (cchDest == 0 || cchDest > NTSTRSAFE_MAX_CCH) return STATUS_INVALID_PARAMETER;              \
        if (!NT_SUCCESS(NtmemStrsafeLength##S(pszDest, cchDest, &used))) return STATUS_INVALID_PARAMETER; \
        return NtmemStrsafeCopy##S(pszDest + used, cchDest - used, pszSrc, cchToAppend);               \
    }

NTMEM_STRSAFE_WORKERS(char, A)
NTMEM_STRSAFE_WORKERS(wchar_t, W)
#undef NTMEM_STRSAFE_WORKERS

static __inline NTSTATUS NtmemStrsafeVPrintfA(char *pszDest, size_t cchDest, const char *pszFormat, va_list argList)
{
    int written;
    if (cchDest == 0 || cchDest > NTSTRSAFE_MAX_CCH) return STATUS_INVALID_PARAMETER;
    written = _vsnprintf(pszDest, cchDest - 1, pszFormat, argList);
    pszDest[cchDest - 1] = 0;
    return (written < 0 || (size_t)written > cchDest - 1) ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS;
}

static __inline NTSTATUS NtmemStrsafeVPrintfW(wchar_t *pszDest, size_t cchDest, const wchar_t *pszFormat,
                                              va_list argList)
{
    int written;
    if (cchDest == 0 || cchDest > NTSTRSAFE_MAX_CCH) return STATUS_INVALID_PARAMETER;
    written = _vsnwprintf(pszDest, cchDest - 1, pszFormat, argList);
    pszDest[cchDest - 1] = 0;
    return (written < 0 || (size_t)written > cchDest - 1) ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS;
}

/* A byte count as characters; 0 (invalid) when it is too large to be one. */
#define NTMEM_CB_TO_CCH(cb, T) ((cb) / sizeof(T) > NTSTRSAFE_MAX_CCH ? 0 : (cb) / sizeof(T))

/* ---- Copy ---- */
NTSTRSAFEDDI RtlStringCchCopyA(NTSTRSAFE_PSTR pszDest, size_t cchDest, NTSTRSAFE_PCSTR pszSrc)
{
    return NtmemStrsafeCopyA(pszDest, cchDest, pszSrc, NTSTRSAFE_MAX_CCH);
}
NTSTRSAFEDDI RtlStringCchCopyW(NTSTRSAFE_PWSTR pszDest, size_t cchDest, NTSTRSAFE_PCWSTR pszSrc)
{
    return NtmemStrsafeCopyW(pszDest, cchDest, pszSrc, NTSTRSAFE_MAX_CCH);
}
NTSTRSAFEDDI RtlStringCbCopyA(NTSTRSAFE_PSTR pszDest, size_t cbDest, NTSTRSAFE_PCSTR pszSrc)
{
    return NtmemStrsafeCopyA(pszDest, NTMEM_CB_TO_CCH(cbDest, char), pszSrc, NTSTRSAFE_MAX_CCH);
}
NTSTRSAFEDDI RtlStringCbCopyW(NTSTRSAFE_PWSTR pszDest, size_t cbDest, NTSTRSAFE_PCWSTR pszSrc)
{
    return NtmemStrsafeCopyW(pszDest, NTMEM_CB_TO_CCH(cbDest, wchar_t), pszSrc, NTSTRSAFE_MAX_CCH);
}
/* At most cchToCopy characters of the source. */
NTSTRSAFEDDI RtlStringCchCopyNA(NTSTRSAFE_PSTR pszDest, size_t cchDest, NTSTRSAFE_PCSTR pszSrc, size_t cchToCopy)
{
    if (cchToCopy > NTSTRSAFE_MAX_CCH) return STATUS_INVALID_PARAMETER;
    return NtmemStrsafeCopyA(pszDest, cchDest, pszSrc, cchToCopy);
}
NTSTRSAFEDDI RtlStringCchCopyNW(NTSTRSAFE_PWSTR pszDest, size_t cchDest, NTSTRSAFE_PCWSTR pszSrc, size_t cchToCopy)
{
    if (cchToCopy > NTSTRSAFE_MAX_CCH) return STATUS_INVALID_PARAMETER;
    return NtmemStrsafeCopyW(pszDest, cchDest, pszSrc, cchToCopy);
}

/* ---- Cat ---- */
NTSTRSAFEDDI RtlStringCchCatA(NTSTRSAFE_PSTR pszDest, size_t cchDest, NTSTRSAFE_PCSTR pszSrc)
{
    return NtmemStrsafeCatA(pszDest, cchDest, pszSrc, NTSTRSAFE_MAX_CCH);
}
NTSTRSAFEDDI RtlStringCchCatW(NTSTRSAFE_PWSTR pszDest, size_t cchDest, NTSTRSAFE_PCWSTR pszSrc)
{
    return NtmemStrsafeCatW(pszDest, cchDest, pszSrc, NTSTRSAFE_MAX_CCH);
}
NTSTRSAFEDDI RtlStringCbCatA(NTSTRSAFE_PSTR pszDest, size_t cbDest, NTSTRSAFE_PCSTR pszSrc)
{
    return NtmemStrsafeCatA(pszDest, NTMEM_CB_TO_CCH(cbDest, char), pszSrc, NTSTRSAFE_MAX_CCH);
}
NTSTRSAFEDDI RtlStringCbCatW(NTSTRSAFE_PWSTR pszDest, size_t cbDest, NTSTRSAFE_PCWSTR pszSrc)
{
    return NtmemStrsafeCatW(pszDest, NTMEM_CB_TO_CCH(cbDest, wchar_t), pszSrc, NTSTRSAFE_MAX_CCH);
}
NTSTRSAFEDDI RtlStringCchCatNA(NTSTRSAFE_PSTR pszDest, size_t cchDest, NTSTRSAFE_PCSTR pszSrc, size_t cchToAppend)
{
    if (cchToAppend > NTSTRSAFE_MAX_CCH) return STATUS_INVALID_PARAMETER;
    return NtmemStrsafeCatA(pszDest, cchDest, pszSrc, cchToAppend);
}
NTSTRSAFEDDI RtlStringCchCatNW(NTSTRSAFE_PWSTR pszDest, size_t cchDest, NTSTRSAFE_PCWSTR pszSrc, size_t cchToAppend)
{
    if (cchToAppend > NTSTRSAFE_MAX_CCH) return STATUS_INVALID_PARAMETER;
    return NtmemStrsafeCatW(pszDest, cchDest, pszSrc, cchToAppend);
}

/* ---- Printf (Windows' format language, as DbgPrint) ---- */
NTSTRSAFEDDI RtlStringCchVPrintfA(NTSTRSAFE_PSTR pszDest, size_t cchDest, NTSTRSAFE_PCSTR pszFormat, va_list argList)
{
    return NtmemStrsafeVPrintfA(pszDest, cchDest, pszFormat, argList);
}
NTSTRSAFEDDI RtlStringCchVPrintfW(NTSTRSAFE_PWSTR pszDest, size_t cchDest, NTSTRSAFE_PCWSTR pszFormat,
                                  va_list argList)
{
    return NtmemStrsafeVPrintfW(pszDest, cchDest, pszFormat, argList);
}
NTSTRSAFEDDI RtlStringCbVPrintfA(NTSTRSAFE_PSTR pszDest, size_t cbDest, NTSTRSAFE_PCSTR pszFormat, va_list argList)
{
    return NtmemStrsafeVPrintfA(pszDest, NTMEM_CB_TO_CCH(cbDest, char), pszFormat, argList);
}
NTSTRSAFEDDI RtlStringCbVPrintfW(NTSTRSAFE_PWSTR pszDest, size_t cbDest, NTSTRSAFE_PCWSTR pszFormat, va_list argList)
{
    return NtmemStrsafeVPrintfW(pszDest, NTMEM_CB_TO_CCH(cbDest, wchar_t), pszFormat, argList);
}
NTSTRSAFEDDI RtlStringCchPrintfA(NTSTRSAFE_PSTR pszDest, size_t cchDest, NTSTRSAFE_PCSTR pszFormat, ...)
{
    NTSTATUS status;
    va_list argList;
    va_start(argList, pszFormat);
    status = NtmemStrsafeVPrintfA(pszDest, cchDest, pszFormat, argList);
    va_end(argList);
    return status;
}
NTSTRSAFEDDI RtlStringCchPrintfW(NTSTRSAFE_PWSTR pszDest, size_t cchDest, NTSTRSAFE_PCWSTR pszFormat, ...)
{
    NTSTATUS status;
    va_list argList;
    va_start(argList, pszFormat);
    status = NtmemStrsafeVPrintfW(pszDest, cchDest, pszFormat, argList);
    va_end(argList);
    return status;
}
NTSTRSAFEDDI RtlStringCbPrintfA(NTSTRSAFE_PSTR pszDest, size_t cbDest, NTSTRSAFE_PCSTR pszFormat, ...)
{
    NTSTATUS status;
    va_list argList;
    va_start(argList, pszFormat);
    status = NtmemStrsafeVPrintfA(pszDest, NTMEM_CB_TO_CCH(cbDest, char), pszFormat, argList);
    va_end(argList);
    return status;
}
NTSTRSAFEDDI RtlStringCbPrintfW(NTSTRSAFE_PWSTR pszDest, size_t cbDest, NTSTRSAFE_PCWSTR pszFormat, ...)
{
    NTSTATUS status;
    va_list argList;
    va_start(argList, pszFormat);
    status = NtmemStrsafeVPrintfW(pszDest, NTMEM_CB_TO_CCH(cbDest, wchar_t), pszFormat, argList);
    va_end(argList);
    return status;
}

/* ---- Length (the length without the NUL; 0 on failure) ---- */
NTSTRSAFEDDI RtlStringCchLengthA(NTSTRSAFE_PCSTR psz, size_t cchMax, size_t *pcchLength)
{
    return NtmemStrsafeLengthA(psz, cchMax, pcchLength);
}
NTSTRSAFEDDI RtlStringCchLengthW(NTSTRSAFE_PCWSTR psz, size_t cchMax, size_t *pcchLength)
{
    return NtmemStrsafeLengthW(psz, cchMax, pcchLength);
}
NTSTRSAFEDDI RtlStringCbLengthA(NTSTRSAFE_PCSTR psz, size_t cbMax, size_t *pcbLength)
{
    return NtmemStrsafeLengthA(psz, cbMax > NTSTRSAFE_MAX_CCH ? (size_t)-1 : cbMax, pcbLength);
}
NTSTRSAFEDDI RtlStringCbLengthW(NTSTRSAFE_PCWSTR psz, size_t cbMax, size_t *pcbLength)
{
    size_t cch = 0;
    NTSTATUS status =
        NtmemStrsafeLengthW(psz, cbMax / sizeof(wchar_t) > NTSTRSAFE_MAX_CCH ? (size_t)-1 : cbMax / sizeof(wchar_t), &cch);
    if (pcbLength != NULL) *pcbLength = cch * sizeof(wchar_t);
    return status;
}

/* ---- UNICODE_STRING forms ---- */
static __inline NTSTATUS NtmemStrsafeValidateUnicode(PCUNICODE_STRING String)
{
    if (String == NULL || (String->Length % sizeof(wchar_t)) != 0 || (String->MaximumLength % sizeof(wchar_t)) != 0 ||
        String->Length > String->MaximumLength ||
        String->MaximumLength > NTSTRSAFE_UNICODE_STRING_MAX_CCH * sizeof(wchar_t) ||
        (String->Buffer == NULL && (String->Length != 0 || String->MaximumLength != 0))) {
        return STATUS_INVALID_PARAMETER;
    }
    return STATUS_SUCCESS;
}

/* Appends cchSrc characters at DestinationString->Length, cut to MaximumLength. */
static __inline NTSTATUS NtmemStrsafeUnicodeAppend(PUNICODE_STRING DestinationString, const wchar_t *pszSrc,
                                                   size_t cchSrc)
{
    size_t at = DestinationString->Length / sizeof(wchar_t);
    size_t room = DestinationString->MaximumLength / sizeof(wchar_t) - at;
    size_t n = cchSrc < room ? cchSrc : room;
    for (size_t i = 0; i < n; i++) DestinationString->Buffer[at + i] = pszSrc[i];
    DestinationString->Length = (USHORT)((at + n) * sizeof(wchar_t));
    return n < cchSrc ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS;
}

/* The characters of a NUL-terminated source, at most the largest counted string. */
static __inline NTSTATUS NtmemStrsafeUnicodeSourceLength(NTSTRSAFE_PCWSTR pszSrc, size_t *pcch)
{
    size_t n = 0;
    if (pszSrc == NULL) return STATUS_INVALID_PARAMETER;
    while (pszSrc[n] != 0 && n <= NTSTRSAFE_UNICODE_STRING_MAX_CCH) n++;
    *pcch = n;
    return STATUS_SUCCESS;
}

NTSTRSAFEDDI RtlUnicodeStringInit(PUNICODE_STRING DestinationString, NTSTRSAFE_PCWSTR pszSrc)
{
    size_t n = 0;
    if (DestinationString == NULL) return STATUS_INVALID_PARAMETER;
    DestinationString->Length = 0;
    DestinationString->MaximumLength = 0;
    DestinationString->Buffer = (PWCH)pszSrc;
    if (pszSrc == NULL) return STATUS_SUCCESS;
    while (pszSrc[n] != 0) {
        if (++n >= NTSTRSAFE_UNICODE_STRING_MAX_CCH) {
            DestinationString->Buffer = NULL;
            return STATUS_INVALID_PARAMETER;
        }
    }
    DestinationString->Length = (USHORT)(n * sizeof(wchar_t));
    DestinationString->MaximumLength = (USHORT)((n + 1) * sizeof(wchar_t));
    return STATUS_SUCCESS;
}
NTSTRSAFEDDI RtlUnicodeStringCopy(PUNICODE_STRING DestinationString, PCUNICODE_STRING SourceString)
{
    if (!NT_SUCCESS(NtmemStrsafeValidateUnicode(DestinationString)) ||
        !NT_SUCCESS(NtmemStrsafeValidateUnicode(SourceString))) {
        return STATUS_INVALID_PARAMETER;
    }
    DestinationString->Length = 0;
    return NtmemStrsafeUnicodeAppend(DestinationString, SourceString->Buffer, SourceString->Length / sizeof(wchar_t));
}
NTSTRSAFEDDI RtlUnicodeStringCat(PUNICODE_STRING DestinationString, PCUNICODE_STRING SourceString)
{
    if (!NT_SUCCESS(NtmemStrsafeValidateUnicode(DestinationString)) ||
        !NT_SUCCESS(NtmemStrsafeValidateUnicode(SourceString))) {
        return STATUS_INVALID_PARAMETER;
    }
    return NtmemStrsafeUnicodeAppend(DestinationString, SourceString->Buffer, SourceString->Length / sizeof(wchar_t));
}
NTSTRSAFEDDI RtlUnicodeStringCopyString(PUNICODE_STRING DestinationString, NTSTRSAFE_PCWSTR pszSrc)
{
    size_t n;
    if (!NT_SUCCESS(NtmemStrsafeValidateUnicode(DestinationString)) ||
        !NT_SUCCESS(NtmemStrsafeUnicodeSourceLength(pszSrc, &n))) {
        return STATUS_INVALID_PARAMETER;
    }
    DestinationString->Length = 0;
    return NtmemStrsafeUnicodeAppend(DestinationString, pszSrc, n);
}
NTSTRSAFEDDI RtlUnicodeStringCatString(PUNICODE_STRING DestinationString, NTSTRSAFE_PCWSTR pszSrc)
{
    size_t n;
    if (!NT_SUCCESS(NtmemStrsafeValidateUnicode(DestinationString)) ||
        !NT_SUCCESS(NtmemStrsafeUnicodeSourceLength(pszSrc, &n))) {
        return STATUS_INVALID_PARAMETER;
    }
    return NtmemStrsafeUnicodeAppend(DestinationString, pszSrc, n);
}
NTSTRSAFEDDI RtlUnicodeStringVPrintf(PUNICODE_STRING DestinationString, NTSTRSAFE_PCWSTR pszFormat, va_list argList)
{
    int written;
    size_t cchMax;
    if (!NT_SUCCESS(NtmemStrsafeValidateUnicode(DestinationString)) || pszFormat == NULL) {
        return STATUS_INVALID_PARAMETER;
    }
    cchMax = DestinationString->MaximumLength / sizeof(wchar_t);
    written = _vsnwprintf(DestinationString->Buffer, cchMax, pszFormat, argList);
    if (written < 0 || (size_t)written > cchMax) {
        DestinationString->Length = (USHORT)(cchMax * sizeof(wchar_t));
        return STATUS_BUFFER_OVERFLOW;
    }
    DestinationString->Length = (USHORT)((size_t)written * sizeof(wchar_t));
    return STATUS_SUCCESS;
}
NTSTRSAFEDDI RtlUnicodeStringPrintf(PUNICODE_STRING DestinationString, NTSTRSAFE_PCWSTR pszFormat, ...)
{
    NTSTATUS status;
    va_list argList;
    va_start(argList, pszFormat);
    status = RtlUnicodeStringVPrintf(DestinationString, pszFormat, argList);
    va_end(argList);
    return status;
}

#undef NTMEM_CB_TO_CCH
#endif /* NTMEM_NTSTRSAFE_H */
