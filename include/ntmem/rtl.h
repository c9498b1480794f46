/*
 * ntmem: counted strings (the Rtl*String routines) and PAGED_CODE. Included by
 * wdm.h; declares only what ntmem implements.
 */
#ifndef NTMEM_RTL_H
#define NTMEM_RTL_H

/* Initialisers for a UNICODE_STRING / STRING over a string literal (wdm.h):
 * Length without the terminator, MaximumLength with it. */
#define RTL_CONSTANT_STRING(s) { sizeof(s) - sizeof((s)[0]), sizeof(s), (void *)(s) }
#define DECLARE_CONST_UNICODE_STRING(_var, _string) \
    const WCHAR _var##_buffer[] = _string;          \
    const UNICODE_STRING _var = { sizeof(_string) - sizeof(WCHAR), sizeof(_string), (PWCH)_var##_buffer }

typedef WCHAR *PWCH;
typedef const char *PCSZ;

/* Length = bytes before the NUL (cut at 0xFFFC), MaximumLength = Length + 2;
 * NULL gives 0, 0, NULL. */
NTSYSAPI VOID RtlInitUnicodeString(PUNICODE_STRING DestinationString, PCWSTR SourceString);
/* The narrow forms, cut at 0xFFFE bytes. */
NTSYSAPI VOID RtlInitAnsiString(PANSI_STRING DestinationString, PCSZ SourceString);
NTSYSAPI VOID RtlInitString(PSTRING DestinationString, PCSZ SourceString);
/* Cut to the destination's MaximumLength; NUL-terminated when there is room. */
NTSYSAPI VOID RtlCopyUnicodeString(PUNICODE_STRING DestinationString, PCUNICODE_STRING SourceString);
/* STATUS_BUFFER_TOO_SMALL when the result does not fit in MaximumLength. */
NTSYSAPI NTSTATUS RtlAppendUnicodeToString(PUNICODE_STRING Destination, PCWSTR Source);
NTSYSAPI NTSTATUS RtlAppendUnicodeStringToString(PUNICODE_STRING Destination, PCUNICODE_STRING Source);
/* PASSIVE_LEVEL (pageable on Windows). Case-insensitive comparison upcases with
 * Unicode's simple uppercase mapping (Windows' own table agrees nearly everywhere). */
NTSYSAPI LONG RtlCompareUnicodeString(PCUNICODE_STRING String1, PCUNICODE_STRING String2,
                                      BOOLEAN CaseInSensitive);
NTSYSAPI BOOLEAN RtlEqualUnicodeString(PCUNICODE_STRING String1, PCUNICODE_STRING String2,
                                       BOOLEAN CaseInSensitive);

/* Conversions, case and prefixes: PASSIVE_LEVEL (pageable on Windows). The
 * allocating forms take paged pool tagged "Ustr", freed by RtlFreeUnicodeString /
 * RtlFreeAnsiString (<= APC_LEVEL). The ANSI code page is Latin-1 (other
 * characters become '?'); case maps are Unicode's simple ones. */
NTSYSAPI BOOLEAN RtlPrefixUnicodeString(PCUNICODE_STRING String1, PCUNICODE_STRING String2,
                                        BOOLEAN CaseInSensitive);
/* STATUS_BUFFER_OVERFLOW when the caller's buffer is shorter than the source. */
NTSYSAPI NTSTATUS RtlUpcaseUnicodeString(PUNICODE_STRING DestinationString, PCUNICODE_STRING SourceString,
                                         BOOLEAN AllocateDestinationString);
/* NUL-terminated; STATUS_BUFFER_OVERFLOW (nothing converted) when the caller's
 * buffer cannot hold the result and its NUL. */
NTSYSAPI NTSTATUS RtlUnicodeStringToAnsiString(PANSI_STRING DestinationString, PCUNICODE_STRING SourceString,
                                               BOOLEAN AllocateDestinationString);
NTSYSAPI NTSTATUS RtlAnsiStringToUnicodeString(PUNICODE_STRING DestinationString, PCANSI_STRING SourceString,
                                               BOOLEAN AllocateDestinationString);
NTSYSAPI VOID RtlFreeUnicodeString(PUNICODE_STRING UnicodeString);
NTSYSAPI VOID RtlFreeAnsiString(PANSI_STRING AnsiString);
NTSYSAPI BOOLEAN RtlCreateUnicodeString(PUNICODE_STRING DestinationString, PCWSTR SourceString);
/* Base 0 (10), 2, 8, 10 or 16, else STATUS_INVALID_PARAMETER. */
NTSYSAPI NTSTATUS RtlIntegerToUnicodeString(ULONG Value, ULONG Base, PUNICODE_STRING String);
NTSYSAPI NTSTATUS RtlUnicodeStringToInteger(PCUNICODE_STRING String, ULONG Base, PULONG Value);
NTSYSAPI WCHAR RtlUpcaseUnicodeChar(WCHAR SourceCharacter);
NTSYSAPI WCHAR RtlDowncaseUnicodeChar(WCHAR SourceCharacter);
NTSYSAPI LONG RtlCompareString(const STRING *String1, const STRING *String2, BOOLEAN CaseInSensitive);
NTSYSAPI BOOLEAN RtlEqualString(const STRING *String1, const STRING *String2, BOOLEAN CaseInSensitive);

/* PAGED_CODE(): in the WDK, a checked build (DBG) asserts the IRQL is at most
 * APC_LEVEL and a free build compiles it to nothing. ntmem compiles it to nothing in
 * both; the checked-build assertion comes with breakpoint and ASSERT support. */
#define PAGED_CODE() ((void)0)
#define PAGED_CODE_LOCKED() ((void)0)

#endif /* NTMEM_RTL_H */
