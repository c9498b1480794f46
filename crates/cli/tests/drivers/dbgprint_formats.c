/*
 * DbgPrint speaks Windows' format language: counted strings, wide strings, LLP64
 * sizes, pointer-sized and 64-bit integers, %p without 0x, filtering by component
 * and level, and the 512-byte cut. Each line is checked byte for byte.
 */
#include <wdm.h>

static const WCHAR Wide[] = {'w', 'i', 'd', 'e', 0};

static void Cut(const char *Format, ...)
{
    va_list args;
    va_start(args, Format);
    vDbgPrintExWithPrefix("[p] ", DPFLTR_IHVDRIVER_ID, DPFLTR_ERROR_LEVEL, Format, args);
    va_end(args);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    char long_text[600];
    for (int i = 0; i < 599; i++) {
        long_text[i] = (char)('a' + i % 26);
    }
    long_text[599] = 0;
    ANSI_STRING ansi = {4, 4, "ansi-not-this"};
    ULONG ulong_value = 4000000000u;
    DbgPrint("1 %wZ|%Z\n", RegistryPath, &ansi);
    DbgPrint("2 %ws|%S|%ls|%hs|%s\n", Wide, Wide, Wide, "narrow", (char *)0);
    DbgPrint("3 %lu|%ld|%I64x|%I64d|%Ix|%Iu\n", ulong_value, -5L, 0x123456789abcdef0ULL, -2LL, (ULONG_PTR)-1, (SIZE_T)42);
    DbgPrint("4 %p|%p\n", (PVOID)0xfffff80000001230ULL, (PVOID)0);
    DbgPrint("5 %c%C|%-4d|%04x|%#x|%.3s\n", 'A', (WCHAR)'B', 7, 0xab, 255, "abcdef");
    DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_ERROR_LEVEL, "6 error level shown\n");
    DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_INFO_LEVEL, "never shown: info level of IHVDRIVER is filtered\n");
    KdPrintEx((DPFLTR_IHVDRIVER_ID, DPFLTR_MASK | 1, "7 a level above 31 is a mask\n"));
    KdPrint(("8 %s\n", "kdprint"));
    Cut("%s", long_text);
    DbgPrint("\n9 end\n");
    return STATUS_SUCCESS;
}
