/* The run-time library routines end to end (issue 11 item 1): bitmaps, counted
 * strings and their conversions, ntstrsafe.h, memory and version routines. Each
 * CHECK prints the line of a failed check; the last line counts them. */
#include <ntddk.h>
#include <string.h>
#include <ntstrsafe.h>

static ULONG checks, failures;

#define CHECK(cond)                                                       \
    do {                                                                  \
        checks++;                                                         \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            DbgPrint("rtl: FAIL line %d: %s\n", __LINE__, #cond);        \
        }                                                                 \
    } while (0)

static VOID Bitmaps(VOID)
{
    ULONG buffer[3];
    RTL_BITMAP map;
    RtlInitializeBitMap(&map, buffer, 70);
    CHECK(map.SizeOfBitMap == 70 && map.Buffer == buffer);
    RtlSetAllBits(&map);
    CHECK(buffer[2] == 0xFFFFFFFF);
    CHECK(RtlNumberOfSetBits(&map) == 70 && RtlNumberOfClearBits(&map) == 0);
    RtlClearAllBits(&map);
    CHECK(buffer[0] == 0 && buffer[1] == 0 && buffer[2] == 0);
    RtlSetBits(&map, 30, 5);
    CHECK(buffer[0] == 0xC0000000 && buffer[1] == 0x7);
    CHECK(RtlTestBit(&map, 34) && !RtlTestBit(&map, 35) && RtlCheckBit(&map, 30) == 1 && RtlCheckBit(&map, 29) == 0 &&
          RtlCheckBit(&map, 34) == 1);
    CHECK(RtlAreBitsSet(&map, 30, 5) && !RtlAreBitsSet(&map, 29, 2) && RtlAreBitsClear(&map, 35, 35));
    CHECK(!RtlAreBitsClear(&map, 60, 11));
    CHECK(RtlNumberOfSetBits(&map) == 5 && RtlNumberOfClearBits(&map) == 65);
    CHECK(RtlFindSetBits(&map, 5, 0) == 30 && RtlFindSetBits(&map, 6, 0) == 0xFFFFFFFF);
    CHECK(RtlFindClearBits(&map, 30, 0) == 0);
    CHECK(RtlFindClearBits(&map, 31, 0) == 35);
    /* From the hint to the end, then wrapped to the start. */
    CHECK(RtlFindClearBits(&map, 10, 65) == 0);
    CHECK(RtlFindClearBitsAndSet(&map, 4, 40) == 40 && RtlAreBitsSet(&map, 40, 4));
    CHECK(RtlFindSetBitsAndClear(&map, 5, 31) == 30 && RtlAreBitsClear(&map, 30, 5));
    RtlClearBits(&map, 40, 4);
    CHECK(RtlNumberOfSetBits(&map) == 0);
    DbgPrint("rtl: bitmaps done\n");
}

static VOID Strings(VOID)
{
    UNICODE_STRING device = RTL_CONSTANT_STRING(L"\\Device\\Sample");
    UNICODE_STRING prefix = RTL_CONSTANT_STRING(L"\\device\\");
    UNICODE_STRING upper, number, created;
    ANSI_STRING ansi, small;
    STRING a1 = RTL_CONSTANT_STRING("Hello"), a2 = RTL_CONSTANT_STRING("hELLO");
    WCHAR digits[12];
    CHAR tiny[4];
    ULONG value = 0xDEAD;
    CHECK(RtlPrefixUnicodeString(&prefix, &device, TRUE) && !RtlPrefixUnicodeString(&prefix, &device, FALSE));
    CHECK(!RtlPrefixUnicodeString(&device, &prefix, TRUE));
    CHECK(RtlUpcaseUnicodeString(&upper, &device, TRUE) == STATUS_SUCCESS);
    CHECK(upper.Length == device.Length && upper.MaximumLength == device.Length && upper.Buffer[1] == L'D' &&
          upper.Buffer[2] == L'E');
    RtlFreeUnicodeString(&upper);
    CHECK(upper.Buffer == NULL && upper.Length == 0);
    CHECK(RtlUnicodeStringToAnsiString(&ansi, &device, TRUE) == STATUS_SUCCESS);
    CHECK(ansi.Length == 14 && ansi.MaximumLength == 15 && strcmp(ansi.Buffer, "\\Device\\Sample") == 0);
    CHECK(RtlAnsiStringToUnicodeString(&upper, &ansi, TRUE) == STATUS_SUCCESS);
    CHECK(RtlEqualUnicodeString(&upper, &device, FALSE) && upper.MaximumLength == 30 && upper.Buffer[14] == 0);
    RtlFreeUnicodeString(&upper);
    RtlFreeAnsiString(&ansi);
    small.Buffer = tiny;
    small.Length = 0;
    small.MaximumLength = sizeof(tiny);
    CHECK(RtlUnicodeStringToAnsiString(&small, &device, FALSE) == STATUS_BUFFER_OVERFLOW);
    number.Buffer = digits;
    number.Length = 0;
    number.MaximumLength = sizeof(digits);
    CHECK(RtlIntegerToUnicodeString(0xBEEF, 16, &number) == STATUS_SUCCESS);
    CHECK(number.Length == 8 && digits[0] == L'B' && digits[3] == L'F' && digits[4] == 0);
    CHECK(RtlUnicodeStringToInteger(&number, 16, &value) == STATUS_SUCCESS && value == 0xBEEF);
    CHECK(RtlIntegerToUnicodeString(1, 7, &number) == STATUS_INVALID_PARAMETER);
    CHECK(RtlIntegerToUnicodeString(4294967295u, 2, &number) == STATUS_BUFFER_OVERFLOW);
    CHECK(RtlCreateUnicodeString(&created, L"  -0x10") && created.Length == 14 && created.MaximumLength == 16);
    CHECK(RtlUnicodeStringToInteger(&created, 0, &value) == STATUS_SUCCESS && value == (ULONG)-16);
    created.Buffer[2] = L'+';
    CHECK(RtlUnicodeStringToInteger(&created, 0, &value) == STATUS_SUCCESS && value == 16);
    created.Length = 0;
    CHECK(RtlUnicodeStringToInteger(&created, 0, &value) == STATUS_INVALID_PARAMETER && value == 16);
    RtlFreeUnicodeString(&created);
    CHECK(RtlUpcaseUnicodeChar(L'a') == L'A' && RtlDowncaseUnicodeChar(L'Z') == L'z' &&
          RtlDowncaseUnicodeChar(0xC9) == 0xE9);
    CHECK(RtlEqualString(&a1, &a2, TRUE) && !RtlEqualString(&a1, &a2, FALSE) && RtlCompareString(&a1, &a2, FALSE) < 0);
    DbgPrint("rtl: strings done\n");
}

static VOID MemoryAndVersion(VOID)
{
    UCHAR a[16], b[16];
    ULONG fill[5];
    ULONGLONG wide[2];
    RTL_OSVERSIONINFOEXW ex;
    RTL_OSVERSIONINFOW base;
    RtlFillMemory(a, sizeof(a), 0x5A);
    RtlCopyMemory(b, a, sizeof(b));
    b[9] = 0;
    CHECK(RtlCompareMemory(a, b, sizeof(a)) == 9 && RtlCompareMemory(a, b, 9) == 9 && RtlCompareMemory(a, b, 0) == 0);
    CHECK(RtlEqualMemory(a, b, 9) && !RtlEqualMemory(a, b, 10));
    RtlMoveMemory(a + 1, a, 8);
    RtlCopyBytes(b, a, 4);
    CHECK(b[3] == 0x5A);
    fill[4] = 7;
    RtlFillMemoryUlong(fill, 18, 0xA5A5F00D);
    CHECK(fill[0] == 0xA5A5F00D && fill[3] == 0xA5A5F00D && fill[4] == 7);
    RtlFillMemoryUlonglong(wide, sizeof(wide), 0x0123456789ABCDEFull);
    CHECK(wide[1] == 0x0123456789ABCDEFull);
    RtlSecureZeroMemory(a, sizeof(a));
    RtlZeroMemory(b, sizeof(b));
    CHECK(RtlCompareMemory(a, b, sizeof(a)) == sizeof(a));
    RtlZeroMemory(&ex, sizeof(ex));
    ex.dwOSVersionInfoSize = sizeof(ex);
    CHECK(RtlGetVersion((PRTL_OSVERSIONINFOW)&ex) == STATUS_SUCCESS);
    CHECK(ex.dwMajorVersion == 5 && ex.dwMinorVersion == 2 && ex.dwBuildNumber == 3790 &&
          ex.dwPlatformId == VER_PLATFORM_WIN32_NT);
    CHECK(ex.wServicePackMajor == 1 && ex.wProductType == VER_NT_SERVER && (ex.wSuiteMask & VER_SUITE_ENTERPRISE));
    CHECK(ex.szCSDVersion[0] == L'S' && ex.szCSDVersion[13] == L'1' && ex.szCSDVersion[14] == 0);
    RtlZeroMemory(&base, sizeof(base));
    base.dwOSVersionInfoSize = sizeof(base);
    CHECK(RtlGetVersion(&base) == STATUS_SUCCESS && base.dwBuildNumber == 3790);
    CHECK(RtlIsNtDdiVersionAvailable(NTDDI_WS03) && RtlIsNtDdiVersionAvailable(NTDDI_WIN2K) &&
          !RtlIsNtDdiVersionAvailable(NTDDI_VISTA));
    DbgPrint("rtl: memory and version done\n");
}

static VOID Strsafe(VOID)
{
    char a[8];
    wchar_t w[8];
    size_t n = 99;
    WCHAR storage[6];
    UNICODE_STRING u, src = RTL_CONSTANT_STRING(L"abcdefgh"), odd;
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"Dev");
    CHECK(RtlStringCchCopyA(a, sizeof(a), "hello") == STATUS_SUCCESS && strcmp(a, "hello") == 0);
    CHECK(RtlStringCbCopyA(a, sizeof(a), "overflowing") == STATUS_BUFFER_OVERFLOW && strcmp(a, "overflo") == 0);
    CHECK(RtlStringCchCopyA(a, 0, "x") == STATUS_INVALID_PARAMETER);
    CHECK(RtlStringCchCopyNA(a, sizeof(a), "abcdef", 2) == STATUS_SUCCESS && strcmp(a, "ab") == 0);
    CHECK(RtlStringCchCatA(a, sizeof(a), "cde") == STATUS_SUCCESS && strcmp(a, "abcde") == 0);
    CHECK(RtlStringCbCatA(a, sizeof(a), "fghij") == STATUS_BUFFER_OVERFLOW && strcmp(a, "abcdefg") == 0);
    a[7] = 'x';
    CHECK(RtlStringCchCatA(a, sizeof(a), "z") == STATUS_INVALID_PARAMETER);
    CHECK(RtlStringCchLengthA("four", 10, &n) == STATUS_SUCCESS && n == 4);
    CHECK(RtlStringCchLengthA("four", 4, &n) == STATUS_INVALID_PARAMETER && n == 0);
    CHECK(RtlStringCchLengthA(NULL, 4, NULL) == STATUS_INVALID_PARAMETER);
    CHECK(RtlStringCbLengthW(L"four", sizeof(w), &n) == STATUS_SUCCESS && n == 8);
    CHECK(RtlStringCbCopyW(w, sizeof(w), L"wide") == STATUS_SUCCESS && wcscmp(w, L"wide") == 0);
    CHECK(RtlStringCchCatW(w, 8, L"ning!") == STATUS_BUFFER_OVERFLOW && wcscmp(w, L"widenin") == 0);
    CHECK(RtlStringCchPrintfA(a, sizeof(a), "%d-%s", 42, "ok") == STATUS_SUCCESS && strcmp(a, "42-ok") == 0);
    CHECK(RtlStringCbPrintfA(a, sizeof(a), "%08x", 0xBEEFu) == STATUS_BUFFER_OVERFLOW && strcmp(a, "0000bee") == 0);
    CHECK(RtlStringCchPrintfA(a, sizeof(a), "%7s", "x") == STATUS_SUCCESS && strcmp(a, "      x") == 0);
    CHECK(RtlStringCchPrintfW(w, 8, L"%wZ:%u", &name, 7u) == STATUS_SUCCESS && wcscmp(w, L"Dev:7") == 0);
    CHECK(RtlStringCbPrintfW(w, sizeof(w), L"%ls%ls", L"abcd", L"efgh") == STATUS_BUFFER_OVERFLOW &&
          wcscmp(w, L"abcdefg") == 0);
    CHECK(_snprintf(a, 4, "%s", "abcd") == 4 && memcmp(a, "abcd", 4) == 0);
    CHECK(_snprintf(a, 4, "%s", "abcde") == -1);
    CHECK(_snwprintf(w, 8, L"%hs", "n") == 1 && w[0] == L'n' && w[1] == 0);
    CHECK(sprintf(a, "%c%03d", 'v', 7) == 4 && strcmp(a, "v007") == 0);
    CHECK(swprintf(w, L"%s=%X", L"k", 0xABu) == 4 && wcscmp(w, L"k=AB") == 0);
    u.Buffer = storage;
    u.Length = 0;
    u.MaximumLength = sizeof(storage);
    CHECK(RtlUnicodeStringCopy(&u, &src) == STATUS_BUFFER_OVERFLOW && u.Length == 12 && storage[5] == L'f');
    CHECK(RtlUnicodeStringCopyString(&u, L"ab") == STATUS_SUCCESS && u.Length == 4);
    CHECK(RtlUnicodeStringCatString(&u, L"cd") == STATUS_SUCCESS && u.Length == 8 && storage[3] == L'd');
    CHECK(RtlUnicodeStringCat(&u, &name) == STATUS_BUFFER_OVERFLOW && u.Length == 12 && storage[5] == L'e');
    CHECK(RtlUnicodeStringPrintf(&u, L"%d", 12345) == STATUS_SUCCESS && u.Length == 10 && storage[4] == L'5');
    CHECK(RtlUnicodeStringPrintf(&u, L"%d", 1234567) == STATUS_BUFFER_OVERFLOW && u.Length == 12);
    odd = u;
    odd.Length = 3;
    CHECK(RtlUnicodeStringCopy(&odd, &src) == STATUS_INVALID_PARAMETER);
    CHECK(RtlUnicodeStringInit(&odd, L"init") == STATUS_SUCCESS && odd.Length == 8 && odd.MaximumLength == 10);
    DbgPrint("rtl: strsafe done\n");
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    Bitmaps();
    Strings();
    MemoryAndVersion();
    Strsafe();
    DbgPrint("rtl: %lu checks, %lu failed\n", checks, failures);
    return STATUS_SUCCESS;
}
